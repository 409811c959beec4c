import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './support/harness.ts';

// The response headers: the security set of a JSON API (OWASP REST Security cheat sheet; README, Errors),
// the request id and the rate-limit headers — on answers, errors, the routes outside /v1 and the /docs page,
// in-process and over a real socket (where the hot path hands @hono/node-server a plain header object).

const LIMIT = 50;
const SECURITY = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'strict-transport-security': 'max-age=15552000; includeSubDomains',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

let h: Harness;
let alice: Awaited<ReturnType<Harness['user']>>;
beforeAll(async () => {
  h = await createHarness({ rateLimitPerMinute: LIMIT });
  alice = await h.user();
});
afterAll(async () => {
  await h.close();
});

type HeaderBag = { get(name: string): string | null };

function expectSecurityHeaders(headers: HeaderBag) {
  for (const [name, value] of Object.entries(SECURITY)) expect(headers.get(name), name).toBe(value);
}

function expectApiHeaders(headers: HeaderBag, requestId?: string) {
  expectSecurityHeaders(headers);
  expect(headers.get('content-type')).toMatch(/^application\/json/);
  expect(headers.get('cache-control')).toBe('no-store');
  if (requestId) expect(headers.get('x-request-id')).toBe(requestId);
  else expect(headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  expect(headers.get('ratelimit-limit')).toBe(String(LIMIT));
  expect(headers.get('ratelimit-remaining')).toMatch(/^\d+$/);
  expect(headers.get('ratelimit-reset')).toMatch(/^\d+$/);
}

/** The headers browsers need only for HTML documents are left out of the API's answers. */
function expectNoDocumentHeaders(headers: HeaderBag) {
  for (const name of ['cross-origin-opener-policy', 'origin-agent-cluster', 'x-xss-protection', 'x-dns-prefetch-control']) {
    expect(headers.get(name), name).toBeNull();
  }
}

describe('response headers', () => {
  it('an answer of /v1: security, no-store, request id and RateLimit-*', async () => {
    const res = await h.invoke(alice.key, { resource: 'goals', action: 'list' }, { 'x-request-id': 'headers-1' });
    expect(res.status).toBe(200);
    expectApiHeaders(res.headers, 'headers-1');
    expectNoDocumentHeaders(res.headers);
  });

  it('an error after the rate limit counted it carries the same, with the id in the envelope', async () => {
    const res = await h.invoke(alice.key, { resource: 'goals', action: 'nope' });
    expect(res.status).toBe(400);
    expectApiHeaders(res.headers);
    expect(res.body.error.request_id).toBe(res.headers.get('x-request-id'));
  });

  it('an error before authentication: security headers and request id, no RateLimit-*', async () => {
    const res = await h.invoke(undefined, { resource: 'goals', action: 'list' });
    expect(res.status).toBe(401);
    expectSecurityHeaders(res.headers);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('x-request-id')).toBe(res.body.error.request_id);
    expect(res.headers.get('ratelimit-limit')).toBeNull();
  });

  it('routes outside /v1 and unknown routes carry the security headers and the request id', async () => {
    for (const path of ['/healthz', '/openapi.json', '/nowhere']) {
      const res = await h.request(path, { headers: { 'x-request-id': `outside-${path.length}` } });
      expectSecurityHeaders(res.headers);
      expect(res.headers.get('x-request-id')).toBe(`outside-${path.length}`);
    }
  });

  it('the /docs page, an HTML document, also gets the headers for documents', async () => {
    const res = await h.request('/docs');
    expect(res.status).toBe(200);
    expectSecurityHeaders(res.headers);
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('x-xss-protection')).toBe('0');
    const script = await h.request('/docs/scalar.js');
    expect(script.headers.get('cache-control')).toBe('public, max-age=86400');
    expectSecurityHeaders(script.headers);
  });

  it('a Server-Sent Events answer carries them too', async () => {
    const res = await h.request('/v1', {
      method: 'POST',
      key: alice.key,
      headers: { accept: 'text/event-stream', 'x-request-id': 'sse-1' },
      body: JSON.stringify({ resource: 'goals', action: 'generate', data: { description: 'Collect name and email' } }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expectSecurityHeaders(res.headers);
    expect(res.headers.get('x-request-id')).toBe('sse-1');
    expect(res.headers.get('ratelimit-limit')).toBe(String(LIMIT));
  });

  it('over a real socket: each header once, and a body of the declared length', async () => {
    const server = await h.listen();
    const body = JSON.stringify({ resource: 'goals', action: 'list' });
    const answer = await new Promise<{ status: number; rawHeaders: string[]; text: string }>((resolve, reject) => {
      const req = httpRequest(
        `${server.url}/v1`,
        { method: 'POST', headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json', 'x-request-id': 'socket-1' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, rawHeaders: res.rawHeaders, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(answer.status).toBe(200);
    const names = answer.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(new Set(names).size, names.join(', ')).toBe(names.length);
    const headers = new Headers();
    for (let i = 0; i < answer.rawHeaders.length; i += 2) headers.append(answer.rawHeaders[i]!, answer.rawHeaders[i + 1]!);
    expectApiHeaders(headers, 'socket-1');
    expect(Number(headers.get('content-length'))).toBe(Buffer.byteLength(answer.text));
    expect(JSON.parse(answer.text)).toMatchObject({ success: true, data: { items: [], count: 0 } });
  });
});
