import net, { type AddressInfo } from 'node:net';

/**
 * A TCP proxy between Goalpost and the real Postgres that a test can break the way networks and servers break:
 *
 * - `cut()`: every connection is dropped and new ones are refused, as when the server is stopped
 *   (`pg_ctlcluster … stop -m immediate`);
 * - `blackhole()`: connections stay open and new ones are accepted, but nothing gets through either way, as in a
 *   network partition or a server that hangs: no error ever reaches the driver;
 * - `restore()`: traffic flows again on the same port; after a blackhole, what was held back is delivered.
 *
 * @example const proxy = await startFaultProxy('127.0.0.1', 5432); // postgres://…@127.0.0.1:${proxy.port}/…
 *          proxy.blackhole(); … await proxy.restore(); … await proxy.close();
 */
export async function startFaultProxy(host: string, targetPort: number) {
  const pairs = new Set<Pair>();
  let mode: 'open' | 'cut' | 'blackhole' = 'open';
  let server: net.Server | undefined;
  let port = 0;

  const listen = async () => {
    const s = net.createServer((client) => pairs.add(new Pair(client, net.connect(targetPort, host), () => mode === 'blackhole', pairs)));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    server = s;
    port = (s.address() as AddressInfo).port;
  };
  const unlisten = async () => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();

  return {
    get port() {
      return port;
    },
    get mode() {
      return mode;
    },
    /** Drops every connection (a reset) and refuses new ones. */
    async cut() {
      mode = 'cut';
      for (const pair of pairs) pair.destroy();
      await unlisten();
    },
    /** Holds every byte, both ways, on open and new connections; nothing fails. */
    blackhole() {
      mode = 'blackhole';
    },
    /** Lets traffic through again (delivering what a blackhole held), and takes connections on the same port. */
    async restore() {
      const was = mode;
      mode = 'open';
      if (was === 'cut') await listen();
      for (const pair of pairs) pair.flush();
    },
    async close() {
      for (const pair of pairs) pair.destroy();
      await unlisten();
    },
  };
}

export type FaultProxy = Awaited<ReturnType<typeof startFaultProxy>>;

/** One client connection and its upstream connection, forwarding chunks unless held. */
class Pair {
  readonly #held: { to: net.Socket; chunk: Buffer }[] = [];

  constructor(
    private readonly client: net.Socket,
    private readonly upstream: net.Socket,
    private readonly holding: () => boolean,
    private readonly pairs: Set<Pair>,
  ) {
    const forward = (to: net.Socket) => (chunk: Buffer) => {
      if (this.holding() || this.#held.length > 0) this.#held.push({ to, chunk });
      else to.write(chunk);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
    const drop = () => this.destroy();
    for (const socket of [client, upstream]) socket.on('error', drop).on('close', drop);
  }

  flush(): void {
    for (const { to, chunk } of this.#held.splice(0)) to.write(chunk);
  }

  destroy(): void {
    if (!this.client.destroyed) this.client.resetAndDestroy();
    this.upstream.destroy();
    this.pairs.delete(this);
  }
}
