import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, databaseUrl, onRealPostgres, type Harness } from './support/harness.ts';
import { freePort, SERVER_ARGS, spawnNode, stopAll, type Spawned } from './support/processes.ts';

// The default deployment's rate limit (DATABASE_URL, no Redis: the Postgres store's leases) over real server
// processes and real HTTP: one key hammered through three processes at once is admitted exactly LIMIT times in
// its window; with one process killed (SIGKILL) while it holds a lease, exactly LIMIT minus what it held, and what
// it held is at most a block and a quarter. Real Postgres only: the embedded database serves one process.

const LIMIT = 200;
/**
 * The most one process holds (src/auth/rate-limit-leases.ts): a block is at most ⌊left ÷ 8⌋, and the next one is
 * asked for when a quarter of the last is left, so at most a block and a quarter of one.
 */
const MAX_HELD = Math.floor(LIMIT / 8) + Math.floor(LIMIT / 32);

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await stopAll();
  await h.close();
});

async function startServers(n: number): Promise<{ urls: string[]; servers: Spawned[] }> {
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  const servers = ports.map((port) =>
    spawnNode(SERVER_ARGS, {
      DATABASE_URL: databaseUrl(),
      PORT: String(port),
      HOST: '127.0.0.1',
      RATE_LIMIT_PER_MINUTE: String(LIMIT),
      LOG_LEVEL: 'silent',
      WORKER: 'false',
    }),
  );
  await Promise.all(servers.map((s) => s.waitFor(/listening/, 60_000)));
  return { urls: ports.map((p) => `http://127.0.0.1:${p}/v1`), servers };
}

async function get(url: string, key: string): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ resource: 'goals', action: 'list', data: { limit: 1 } }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** `workers` loops at once, each sending `perWorker` requests round-robin over `urls`; the 200s and 429s. */
async function hammer(urls: string[], key: string, workers: number, perWorker: number) {
  const counts = { 200: 0, 429: 0 } as Record<number, number>;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < perWorker; i++) {
        const status = await get(urls[(w + i) % urls.length]!, key);
        counts[status] = (counts[status] ?? 0) + 1;
      }
    }),
  );
  expect(Object.keys(counts).sort()).toEqual(['200', '429']);
  return counts;
}

/**
 * After the hammering: one request to each process in turn until every one has refused in a row. A process that
 * refuses holds nothing; once all have, every unit handed out has been spent. Returns the 200s on the way.
 */
async function drain(urls: string[], key: string): Promise<number> {
  let admitted = 0;
  let refusedInRow = 0;
  for (let i = 0; refusedInRow < urls.length; i++) {
    if ((await get(urls[i % urls.length]!, key)) === 200) {
      admitted++;
      refusedInRow = 0;
    } else refusedInRow++;
  }
  return admitted;
}

const row = async (credential: string) =>
  (await h.sql<{ points: number; expire: string }[]>`select points, expire::text from rate_limits where key = ${`rl:${credential}`}`)[0];

const credentialOf = async (userId: string) =>
  `key:${(await h.sql<{ id: string }[]>`select id from api_keys where user_id = ${userId}`)[0]!.id}`;

describe.runIf(onRealPostgres())('the Postgres store across three processes', () => {
  it('admits exactly the limit of one key hammered through three processes, and loses only what a process killed holding a lease held', async () => {
    const { urls, servers } = await startServers(3);
    try {
      // 1. All three alive: 16 connections at once, round-robin, three times the limit.
      const alice = await h.user();
      const aliceCredential = await credentialOf(alice.id);
      const counts = await hammer(urls, alice.key, 16, Math.ceil((3 * LIMIT) / 16));
      const window = (await row(aliceCredential))!.expire;
      const admitted = counts[200]! + (await drain(urls, alice.key));
      expect(admitted).toBe(LIMIT);
      // All in one window (it starts at the first lease and lasts a minute).
      expect((await row(aliceCredential))!.expire).toBe(window);

      // 2. One process killed while it holds a lease. Only it serves the key until it holds units it has not spent
      // (points handed out − 200s it answered), then SIGKILL: nothing goes back.
      const bob = await h.user();
      const bobCredential = await credentialOf(bob.id);
      let byVictim = 0;
      let held = 0;
      for (let round = 0; round < 20 && held === 0; round++) {
        const statuses = await Promise.all(Array.from({ length: 4 }, () => get(urls[0]!, bob.key)));
        byVictim += statuses.filter((s) => s === 200).length;
        held = (await row(bobCredential))!.points - byVictim;
      }
      expect(held).toBeGreaterThan(0);
      expect(held).toBeLessThanOrEqual(MAX_HELD);
      const bobWindow = (await row(bobCredential))!.expire;
      const killed = await servers[0]!.stop('SIGKILL');
      expect(killed.signal).toBe('SIGKILL');
      const survivors = urls.slice(1);
      const after = await hammer(survivors, bob.key, 16, Math.ceil((2 * LIMIT) / 16));
      const total = byVictim + after[200]! + (await drain(survivors, bob.key));
      // Never above the limit; below it by exactly what the dead process held, at most one block.
      expect(total).toBe(LIMIT - held);
      expect((await row(bobCredential))!.expire).toBe(bobWindow);
    } finally {
      await Promise.all(servers.map((s) => s.stop('SIGTERM')));
    }
  }, 180_000);
});
