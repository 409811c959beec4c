import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import { createHarness, databaseUrl, expectError, onRealPostgres, type Answer, type Harness } from './support/harness.ts';
import { freePort, SERVER_ARGS, spawnNode, stopAll, type Spawned } from './support/processes.ts';

const LIMIT = 60;
const REDIS_URL = 'redis://127.0.0.1:6379';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ rateLimitPerMinute: LIMIT });
});
afterAll(async () => {
  await stopAll();
  await h.close();
});

const list = { resource: 'goals', action: 'list' };

/** Whether a Redis answers PING at `REDIS_URL` (within a second). */
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

function expectRateHeaders(res: Answer, remaining: number) {
  expect(res.headers.get('ratelimit-limit')).toBe(String(LIMIT));
  expect(res.headers.get('ratelimit-remaining')).toBe(String(remaining));
  const reset = Number(res.headers.get('ratelimit-reset'));
  expect(Number.isInteger(reset)).toBe(true);
  expect(reset).toBeGreaterThanOrEqual(1);
  expect(reset).toBeLessThanOrEqual(60);
}

function expectLimited(res: Answer) {
  const error = expectError(res, 'RATE_LIMIT_EXCEEDED', 429);
  expect(error.message).toMatch(/60 requests per minute/);
  const retryAfter = res.headers.get('retry-after');
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(60);
  expect(res.headers.get('ratelimit-remaining')).toBe('0');
  expect(res.headers.get('ratelimit-limit')).toBe(String(LIMIT));
}

describe('rate limit in one process', () => {
  it('passes 60 requests a minute with RateLimit-* headers and refuses the 61st with 429 and Retry-After', async () => {
    const alice = await h.user();
    for (let i = 1; i <= LIMIT; i++) {
      const res = await h.invoke(alice.key, list);
      expect(res.status).toBe(200);
      expectRateHeaders(res, LIMIT - i);
    }
    const refused = await h.invoke(alice.key, list);
    expectLimited(refused);
    expect(refused.body).toEqual({
      success: false,
      error: {
        code: 'RATE_LIMIT_EXCEEDED',
        message: expect.any(String),
        status: 429,
        request_id: refused.headers.get('x-request-id'),
      },
    });
    // Still refused: writes too, not only the action that crossed the line.
    expectLimited(await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'x' } }));
    const written = await h.db.selectFrom('goals').select('id').where('owner_id', '=', alice.id).execute();
    expect(written).toEqual([]);
  });

  it('counts per credential: another user and another key have their own budget', async () => {
    const alice = await h.user();
    const bob = await h.user();
    const second = await h.invoke(alice.key, { resource: 'api-keys', action: 'create', data: { name: 'second' } });
    expect(second.status).toBe(201);
    for (let i = 2; i <= LIMIT; i++) expect((await h.invoke(alice.key, list)).status).toBe(200);
    expectLimited(await h.invoke(alice.key, list));

    const other = await h.invoke(bob.key, list);
    expect(other.status).toBe(200);
    expectRateHeaders(other, LIMIT - 1);
    const otherKey = await h.invoke(second.body.data.key, list);
    expect(otherKey.status).toBe(200);
    expectRateHeaders(otherKey, LIMIT - 1);
  });

  it('does not count requests refused before authentication against anyone', async () => {
    const alice = await h.user();
    for (let i = 0; i < 5; i++) expectError(await h.invoke(undefined, list), 'UNAUTHORIZED', 401);
    const res = await h.invoke(alice.key, list);
    expectRateHeaders(res, LIMIT - 1);
  });
});

/**
 * Two real server processes sharing one store: the limit must hold across them. Only on a real
 * Postgres server: the embedded database is served by the test run's main process to one
 * connection, and a server process cannot open a second embedded instance of it.
 */
async function startServers(env: Record<string, string>): Promise<{ urls: string[]; servers: Spawned[] }> {
  const ports = [await freePort(), await freePort()];
  const servers = ports.map((port) =>
    spawnNode(SERVER_ARGS, {
      DATABASE_URL: databaseUrl(),
      PORT: String(port),
      HOST: '127.0.0.1',
      RATE_LIMIT_PER_MINUTE: String(LIMIT),
      LOG_LEVEL: 'silent',
      ...env,
    }),
  );
  await Promise.all(servers.map((s) => s.waitFor(/listening/, 60_000)));
  return { urls: ports.map((p) => `http://127.0.0.1:${p}/v1`), servers };
}

async function post(url: string, key: string, body: unknown): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

async function expectSharedLimit(env: Record<string, string>) {
  const { urls, servers } = await startServers(env);
  try {
    const alice = await h.user();
    // Alternate between the processes until each has refused in turn: with leases a process may hold units the
    // other has not seen handed out, so a refusal can come before the last unit is spent elsewhere — but once both
    // have refused, every unit of the window has been spent, and exactly LIMIT were admitted.
    let admitted = 0;
    let refusedInTurn = 0;
    for (let i = 0; refusedInTurn < 2 && i < 3 * LIMIT; i++) {
      const res = await post(urls[i % 2]!, alice.key, list);
      if (res.status === 200) {
        admitted++;
        refusedInTurn = 0;
        // Remaining: what this process holds plus what the store had not handed out at its last lease.
        const remaining = Number(res.headers.get('ratelimit-remaining'));
        expect(remaining).toBeGreaterThanOrEqual(0);
        expect(remaining).toBeLessThan(LIMIT);
      } else {
        expectLimited(res);
        refusedInTurn++;
      }
    }
    expect(admitted).toBe(LIMIT);
    expectLimited(await post(urls[0]!, alice.key, list));
    expectLimited(await post(urls[1]!, alice.key, list));
    // Another user's budget is untouched on either process.
    const bob = await h.user();
    expect((await post(urls[0]!, bob.key, list)).status).toBe(200);
    expect((await post(urls[1]!, bob.key, list)).status).toBe(200);
  } finally {
    const exits = await Promise.all(servers.map((s) => s.stop('SIGTERM')));
    expect(exits).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
  }
}

describe('rate limit across processes', () => {
  // Embedded database: one process only (see startServers), so these run on real Postgres only.
  it.runIf(onRealPostgres())('holds across two server processes with the Postgres store', async () => {
    await expectSharedLimit({ RATE_LIMIT_STORE: 'postgres' });
  }, 120_000);

  // Also needs a Redis: skipped when none answers PING at 127.0.0.1:6379.
  it.runIf(onRealPostgres() && redisUp)('holds across two server processes with the Redis store', async () => {
    await expectSharedLimit({ RATE_LIMIT_STORE: 'redis', REDIS_URL });
  }, 120_000);
});

describe('a shared store at start', () => {
  // A fresh process's Redis client connects in the background; until it has, the in-memory insurance limiter counts
  // alone. `ready()` (awaited by the server before it listens) is what makes its first request count in Redis.
  it.runIf(redisUp)("counts a fresh limiter's first request in Redis once ready() has resolved", async () => {
    const keyPrefix = `rl-ready-${Date.now()}`;
    const first = createRateLimiter({ perMinute: LIMIT, store: 'redis', redisUrl: REDIS_URL, keyPrefix });
    const second = createRateLimiter({ perMinute: LIMIT, store: 'redis', redisUrl: REDIS_URL, keyPrefix });
    try {
      expect(await first.ready()).toBe(true);
      expect((await first.consume('key:a')).remaining).toBe(LIMIT - 1);
      expect(await second.ready()).toBe(true);
      expect((await second.consume('key:a')).remaining).toBe(LIMIT - 2);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('answers false after its timeout when the store does not answer, and the limiter still counts (in memory)', async () => {
    const limiter = createRateLimiter({ perMinute: LIMIT, store: 'redis', redisUrl: 'redis://127.0.0.1:1' });
    try {
      expect(await limiter.ready(300)).toBe(false);
      expect((await limiter.consume('key:b')).remaining).toBe(LIMIT - 1);
    } finally {
      await limiter.close();
    }
  });
});
