import WebSocket from 'ws';

export type Frame = Record<string, any>;

/**
 * A real WebSocket client (the `ws` package) that records every frame it receives and lets a test wait
 * for the ones it expects.
 *
 * @example const ws = await WsClient.open(server.wsUrl, { authorization: `Bearer ${key}` });
 *          ws.send({ request_id: 'r1', resource: 'goals', action: 'list' });
 *          const answer = await ws.result('r1');
 */
export class WsClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      const frame = JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString()) as Frame;
      this.frames.push(frame);
      for (const waiter of [...this.waiters]) {
        if (waiter.match(frame)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.resolve(frame);
        }
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { headers });
      const client = new WsClient(socket);
      socket.once('open', () => resolve(client));
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  send(frame: Frame | string | Buffer): void {
    this.socket.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** The first frame (already received or still to come) that matches; fails after `timeoutMs`. */
  next(match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const seen = this.frames.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames).slice(0, 2000)}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  result(requestId: string | number, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.type === 'result' && f.request_id === requestId, timeoutMs);
  }

  /** Sends a request frame and waits for its result. */
  async call(requestId: string | number, envelope: Frame): Promise<Frame> {
    this.send({ request_id: requestId, ...envelope });
    return this.result(requestId);
  }

  /** Every frame received for one request id, in order. */
  framesOf(requestId: string | number): Frame[] {
    return this.frames.filter((f) => f.request_id === requestId);
  }

  close(): Promise<{ code: number; reason: string }> {
    this.socket.close();
    return this.closed;
  }
}
