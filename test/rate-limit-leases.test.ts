import { randomUUID } from 'node:crypto';
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { createRateLimiter, type RateLimiter } from '../src/auth/rate-limit.ts';
import { blockOf, DEFAULT_LEASE_SETTINGS, postgresLeaseStore } from '../src/auth/rate-limit-leases.ts';
import { AppError } from '../src/rpc/errors.ts';
import { createHarness, type Harness } from './support/harness.ts';

// The shared stores' leases (src/auth/rate-limit-leases.ts), in-process: several limiters on one database stand
// for several processes (each limiter keeps its own leases, as a process does). On the embedded database too.
// test/rate-limit-processes.test.ts does the same with real server processes over HTTP, and kills one.

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
const opened: RateLimiter[] = [];
afterAll(async () => {
  for (const limiter of opened) await limiter.close();
  await h.close();
});

function redisAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port: 6379 });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.on('error', () => finish(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => finish(data.toString().startsWith('+PONG')));
  });
}
const redisUp = await redisAnswers();

type Store = 'postgres' | 'redis';
/** A limiter standing for one process; Redis connected (else it would count in memory). */
async function limiter(store: Store, perMinute: number, keyPrefix: string, leases: Parameters<typeof createRateLimiter>[0]['leases'] = {}) {
  const l = createRateLimiter({ perMinute, store, sql: h.sql, redisUrl: 'redis://127.0.0.1:6379', keyPrefix, leases });
  opened.push(l);
  expect(await l.ready()).toBe(true);
  return l;
}

/** One consume: the verdict, or the 429's headers. */
async function attempt(l: RateLimiter, key: string) {
  try {
    return { ok: true as const, verdict: await l.consume(key) };
  } catch (error) {
    if (!(error instanceof AppError) || error.code !== 'RATE_LIMIT_EXCEEDED') throw error;
    return { ok: false as const, headers: error.headers! };
  }
}

const points = async (key: string) =>
  (await h.sql<{ points: number }[]>`select points from rate_limits where key = ${key}`)[0]?.points ?? 0;

const stores: Store[] = redisUp ? ['postgres', 'redis'] : ['postgres'];

describe.each(stores)('leases from the %s store', (store) => {
  it('admits exactly the limit over several limiters hammering one key at once, then refuses with Retry-After', async () => {
    const prefix = `rl-${randomUUID()}`;
    const limit = 150;
    const limiters = [await limiter(store, limit, prefix), await limiter(store, limit, prefix), await limiter(store, limit, prefix)];
    const results = await Promise.all(
      Array.from({ length: 450 }, (_, i) => attempt(limiters[i % 3]!, 'key:one')),
    );
    // Every limiter answered until it was refused; what one still holds it would admit later.
    let admitted = results.filter((r) => r.ok).length;
    for (const l of limiters) {
      for (;;) {
        const r = await attempt(l, 'key:one');
        if (!r.ok) break;
        admitted++;
      }
    }
    expect(admitted).toBe(limit);
    for (const r of results) {
      if (r.ok) {
        expect(r.verdict.limit).toBe(limit);
        expect(r.verdict.remaining).toBeGreaterThanOrEqual(0);
        expect(r.verdict.remaining).toBeLessThan(limit);
        expect(r.verdict.resetSeconds).toBeGreaterThanOrEqual(1);
        expect(r.verdict.resetSeconds).toBeLessThanOrEqual(60);
      } else {
        expect(r.headers['RateLimit-Remaining']).toBe('0');
        expect(Number(r.headers['Retry-After'])).toBeGreaterThanOrEqual(1);
        expect(Number(r.headers['Retry-After'])).toBeLessThanOrEqual(60);
      }
    }
    // Another key is untouched.
    expect((await limiters[0]!.consume('key:two')).remaining).toBeLessThan(limit);
  });

  it('reports remaining exactly with one process: limit − admitted, 0 on the last', async () => {
    const prefix = `rl-${randomUUID()}`;
    const l = await limiter(store, 20, prefix);
    for (let i = 1; i <= 20; i++) expect((await l.consume('key:a')).remaining).toBe(20 - i);
    const refused = await attempt(l, 'key:a');
    expect(refused.ok).toBe(false);
  });

  it('never spends a lease in the next window', async () => {
    const prefix = `rl-${randomUUID()}`;
    const leases = { windowMs: 1_500 };
    const a = await limiter(store, 40, prefix, leases);
    const b = await limiter(store, 40, prefix, leases);
    // A busy key: a's blocks grow until it holds some units it has not spent.
    for (let i = 0; i < 12; i++) await a.consume('key:w');
    const before = await attempt(a, 'key:w');
    expect(before.ok && before.verdict.remaining).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1_700));
    // The next window: b takes all of it.
    let byB = 0;
    while ((await attempt(b, 'key:w')).ok) byB++;
    expect(byB).toBe(40);
    // a's units of the window before are gone: nothing more is admitted in this window.
    expect((await attempt(a, 'key:w')).ok).toBe(false);
  });

  it('gives held units back when closed, and after they sit unused', async () => {
    const prefix = `rl-${randomUUID()}`;
    const settings = { idleMs: 300 };
    const a = await limiter(store, 80, prefix, settings);
    const b = await limiter(store, 80, prefix, settings);
    let admitted = 0;
    for (let i = 0; i < 10; i++) if ((await attempt(a, 'key:g')).ok) admitted++;
    // Idle: a's units return to the shared budget within a sweep or two.
    await new Promise((r) => setTimeout(r, 1_000));
    if (store === 'postgres') expect(await points(`${prefix}:key:g`)).toBe(admitted);
    // Closing: what b holds goes back too, so a (a fresh process) can spend all of the rest.
    for (let i = 0; i < 10; i++) if ((await attempt(b, 'key:g')).ok) admitted++;
    await b.close();
    if (store === 'postgres') expect(await points(`${prefix}:key:g`)).toBe(admitted);
    const c = await limiter(store, 80, prefix, settings);
    while ((await attempt(c, 'key:g')).ok) admitted++;
    expect(admitted).toBe(80);
  });
});

describe('the postgres leasing statement', () => {
  it('hands out min(want, left, max(1, ⌊left ÷ 8⌋)): blocks shrink toward single units near the limit', async () => {
    const settings = { ...DEFAULT_LEASE_SETTINGS, limit: 100 };
    const store = postgresLeaseStore(h.sql, settings);
    const key = `rl-${randomUUID()}:key:blocks`;
    const grants: number[] = [];
    let left = 100;
    for (;;) {
      const lease = await store.take(key, 1_000);
      expect(lease.granted).toBe(blockOf(1_000, left, 8));
      left -= lease.granted;
      expect(lease.unleased).toBe(left);
      expect(lease.msLeft).toBeGreaterThan(55_000);
      expect(lease.msLeft).toBeLessThanOrEqual(60_000);
      if (lease.granted === 0) break;
      grants.push(lease.granted);
    }
    expect(grants.reduce((a, b) => a + b, 0)).toBe(100);
    expect(grants.slice(0, 3)).toEqual([12, 11, 9]);
    expect(grants.slice(-15)).toEqual(Array(15).fill(1));
    // A small want is a small block whatever is left.
    const other = `rl-${randomUUID()}:key:small`;
    expect((await store.take(other, 3)).granted).toBe(3);
    // Units go back only to the window they came from.
    const lease = await store.take(other, 2);
    await store.giveBack([{ key: other, units: 2, windowEnd: String(Number(lease.windowEnd) - 60_000) }]);
    expect(await points(other)).toBe(5);
    await store.giveBack([{ key: other, units: 2, windowEnd: lease.windowEnd }]);
    expect(await points(other)).toBe(3);
  });

  it('answers leases asked for together in one statement, each its own, a key twice in turn', async () => {
    const settings = { ...DEFAULT_LEASE_SETTINGS, limit: 100 };
    const store = postgresLeaseStore(h.sql, settings);
    const prefix = `rl-${randomUUID()}`;
    const wants = [1, 2, 3, 50, 7];
    const leases = await Promise.all([
      ...wants.map((want, i) => store.take(`${prefix}:key:${i}`, want)),
      store.take(`${prefix}:key:0`, 4),
    ]);
    expect(leases.map((l) => l.granted)).toEqual([1, 2, 3, 12, 7, blockOf(4, 99, 8)]);
    expect(leases.map((l) => l.unleased)).toEqual([99, 98, 97, 88, 93, 99 - blockOf(4, 99, 8)]);
    expect(await points(`${prefix}:key:0`)).toBe(1 + blockOf(4, 99, 8));
    expect(await points(`${prefix}:key:3`)).toBe(12);
  });

  it('counts in memory while the database does not answer', async () => {
    const dead = postgres('postgres://postgres@127.0.0.1:1/none', { max: 1, connect_timeout: 1 });
    const l = createRateLimiter({ perMinute: 3, store: 'postgres', sql: dead });
    try {
      expect((await l.consume('key:x')).remaining).toBe(2);
      expect((await l.consume('key:x')).remaining).toBe(1);
      expect((await l.consume('key:x')).remaining).toBe(0);
      expect((await attempt(l, 'key:x')).ok).toBe(false);
    } finally {
      await l.close();
      await dead.end();
    }
  });
});
