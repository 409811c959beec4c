import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './support/harness.ts';

// SPEC §2, PAYLOAD_TOO_LARGE: the 413 says `Connection: close` and the server closes only after the answer is written,
// having read the refused body out, so the client reads the 413 every time: on a reused keep-alive connection, with
// a Content-Length body or a chunked one, and with many clients uploading at once.

const LIMIT = 64 * 1024;
let h: Harness;
let port: number;

beforeAll(async () => {
  h = await createHarness({ bodyLimitBytes: LIMIT });
  ({ port } = await h.listen());
});
afterAll(() => h.close());

interface Exchange {
  /** Everything the server sent, as text. */
  received: string;
  /** The client socket's error (a reset, a broken pipe), if any. */
  error?: string;
  /** The server ended the connection. */
  ended: boolean;
}

/** One keep-alive connection: `GET /healthz`, then `head` + `body` written at once; reads until the server closes. */
function exchange(head: string, body: Buffer | Buffer[]): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let ended = false;
    let error: string | undefined;
    let sentSecond = false;
    const timer = setTimeout(() => socket.destroy(new Error('no close within 20 s')), 20_000);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n'));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (!sentSecond && /\r\n\r\n\{.*\}$/s.test(received)) {
        sentSecond = true;
        socket.write(head);
        for (const part of Array.isArray(body) ? body : [body]) socket.write(part);
      }
    });
    socket.on('end', () => {
      ended = true;
      socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received, error, ended });
    });
  });
}

function contentLengthRequest(size: number): [string, Buffer] {
  const head = `POST /v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\nConnection: keep-alive\r\n\r\n`;
  return [head, Buffer.alloc(size, 0x20)];
}

function chunkedRequest(size: number, chunk = 16 * 1024): [string, Buffer[]] {
  const head = `POST /v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n`;
  const parts: Buffer[] = [];
  for (let sent = 0; sent < size; sent += chunk) {
    const n = Math.min(chunk, size - sent);
    parts.push(Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), Buffer.alloc(n, 0x20), Buffer.from('\r\n')]));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return [head, parts];
}

/** The second answer of the connection: status, headers, envelope. */
function secondAnswer(received: string) {
  const at = received.indexOf('HTTP/1.1', 1);
  const text = received.slice(at);
  const [head, body] = text.split('\r\n\r\n', 2) as [string, string];
  const headers = Object.fromEntries(
    head.split('\r\n').slice(1).map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  return { status: Number(head.split(' ')[1]), headers, body: JSON.parse(body) };
}

function expectReadable413(result: Exchange) {
  expect(result.error).toBeUndefined();
  expect(result.received.startsWith('HTTP/1.1 200')).toBe(true);
  const answer = secondAnswer(result.received);
  expect(answer.status).toBe(413);
  expect(answer.headers.connection).toBe('close');
  expect(answer.body).toMatchObject({ success: false, error: { code: 'PAYLOAD_TOO_LARGE', status: 413 } });
  // The server closed the connection after the answer.
  expect(result.ended).toBe(true);
}

describe('413 on a reused keep-alive connection', () => {
  it('a Content-Length body many times the limit: the client reads the 413, then the server closes', async () => {
    expectReadable413(await exchange(...contentLengthRequest(5 * 1024 * 1024)));
  });

  it('a chunked body many times the limit: the client reads the 413, then the server closes', async () => {
    expectReadable413(await exchange(...chunkedRequest(2 * 1024 * 1024)));
  });

  it('64 clients uploading at once, Content-Length and chunked: every one reads its 413', async () => {
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => {
        const [head, body] = i % 2 ? contentLengthRequest(1024 * 1024) : chunkedRequest(1024 * 1024);
        return exchange(head, body);
      }),
    );
    const failed = results.filter((r) => r.error !== undefined || !r.received.includes('PAYLOAD_TOO_LARGE'));
    expect(failed.map((r) => r.error)).toEqual([]);
    for (const result of results) expectReadable413(result);
  });

  it('a chunked body within the limit is read and handled, and the connection stays open', async () => {
    const user = await h.user();
    const envelope = Buffer.from(JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'Chunked' } }));
    const head = chunkedRequest(0)[0].replace('\r\n\r\n', `\r\nAuthorization: Bearer ${user.key}\r\n\r\n`);
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(head);
    socket.write(`${envelope.length.toString(16)}\r\n`);
    socket.write(envelope);
    socket.write('\r\n0\r\n\r\n');
    const text = await new Promise<string>((resolve) => {
      let got = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => {
        got += chunk;
        if (/\r\n\r\n\{.*\}$/s.test(got)) resolve(got);
      });
    });
    expect(text.startsWith('HTTP/1.1 201')).toBe(true);
    expect(text).toContain('"name":"Chunked"');
    expect(text.toLowerCase()).toContain('connection: keep-alive');
    socket.destroy();
  });
});
