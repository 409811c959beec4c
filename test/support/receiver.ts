import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request the receiver got. */
export interface Received {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
}

/** How the receiver answers one request: a status, or misbehaviour. */
export type Behaviour =
  | { status: number; location?: string }
  | { hang: true }
  | { close: true }
  | { status: number; afterMs: number };

/**
 * A real webhook receiver on loopback: records every request and answers as told (`answers` in order, then 200).
 *
 * @example const r = await startReceiver(); … await r.waitFor(1); r.verify(secret, r.received[0]!);
 */
export async function startReceiver() {
  const received: Received[] = [];
  const answers: Behaviour[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const waiters: (() => void)[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      received.push({ at: Date.now(), path: req.url ?? '', headers: req.headers, body, json });
      for (const wake of waiters.splice(0)) wake();
      const behaviour = answers.shift() ?? { status: 200 };
      if ('hang' in behaviour) return;
      if ('close' in behaviour) return req.socket.destroy();
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(behaviour.status, 'location' in behaviour && behaviour.location ? { location: behaviour.location } : {});
        res.end('ok');
      };
      if ('afterMs' in behaviour) setTimeout(answer, behaviour.afterMs);
      else answer();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    received,
    /** Queues how the next requests are answered. */
    answer(...behaviours: Behaviour[]) {
      answers.push(...behaviours);
    },
    /** Resolves once `count` requests (matching `filter`) have arrived; rejects after `timeoutMs`. */
    async waitFor(count: number, options: { timeoutMs?: number; filter?: (r: Received) => boolean } = {}): Promise<Received[]> {
      const deadline = Date.now() + (options.timeoutMs ?? 10_000);
      const matching = () => received.filter(options.filter ?? (() => true));
      while (matching().length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`the receiver got ${matching().length} of ${count} requests`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return matching();
    },
    /** Verifies a request's signature with the `standardwebhooks` library; answers the payload, or throws. */
    verify(secret: string, request: Received): any {
      return new Webhook(secret).verify(request.body, {
        'webhook-id': String(request.headers['webhook-id']),
        'webhook-timestamp': String(request.headers['webhook-timestamp']),
        'webhook-signature': String(request.headers['webhook-signature']),
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;
