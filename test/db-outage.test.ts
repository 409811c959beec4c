import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createHarness, databaseUrl, onRealPostgres, type Harness } from './support/harness.ts';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.ts';
import { freePort, SERVER_ARGS, spawnNode, stopAll } from './support/processes.ts';

// SPEC §2, SERVICE_UNAVAILABLE: while the database is away a request is answered 503 with Retry-After within
// DB_UNAVAILABLE_TIMEOUT_MS, whatever the driver is doing, and the service comes back by itself within about a
// second of the database's return. Driven through a real TCP proxy in front of the real Postgres (a Postgres
// server only: the embedded database cannot go away).

const DEADLINE_MS = 1000;
/** What a shared, busy CPU may add to a deadline. */
const SLACK_MS = 500;
/**
 * Restore → first 2xx: "within about a second". Typically 0.1–0.4 s here; the bound leaves room for a machine whose
 * load average is many times its cores (reconnecting the pool is CPU work), and still fails for a growing backoff
 * (seconds to tens of seconds).
 */
const RECOVERY_MS = 2000;

afterAll(() => stopAll());

function proxiedUrl(proxy: FaultProxy): string {
  const url = new URL(databaseUrl());
  url.port = String(proxy.port);
  return url.toString();
}

async function dbTarget(): Promise<{ host: string; port: number }> {
  const url = new URL(databaseUrl());
  return { host: url.hostname, port: Number(url.port || 5432) };
}

interface Timed {
  status: number;
  retryAfter: string | null;
  ms: number;
  startedAt: number;
  endedAt: number;
  id?: string;
}

async function timed(send: () => Promise<{ status: number; headers: Headers; body: any }>): Promise<Timed> {
  const startedAt = performance.now();
  const res = await send();
  const endedAt = performance.now();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), ms: endedAt - startedAt, startedAt, endedAt, id: res.body?.data?.id };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

describe.runIf(onRealPostgres())('database outage (fault proxy)', () => {
  it('blackhole: queued, sent and new requests answer 503 with Retry-After within the deadline; /readyz agrees; back within ~1 s', async () => {
    const target = await dbTarget();
    const proxy = await startFaultProxy(target.host, target.port);
    let h: Harness | undefined;
    try {
      h = await createHarness({ databaseUrl: proxiedUrl(proxy), unavailableTimeoutMs: DEADLINE_MS });
      const user = await h.user();
      const list = { resource: 'goals', action: 'list' };
      expect((await h.invoke(user.key, list)).status).toBe(200);

      proxy.blackhole();
      const blackholedAt = performance.now();
      // 30 at once on a pool of 10: some statements are sent (and held by the proxy), the rest wait in the driver;
      // a third are keyed creates, each a transaction whose BEGIN is held too.
      const request = (i: number) =>
        i % 3 === 0
          ? h!.invoke(user.key, list)
          : i % 3 === 1
            ? h!.invoke(user.key, { resource: 'goals', action: 'create', data: { name: `held ${i}` } })
            : h!.invoke(user.key, { resource: 'goals', action: 'create', data: { name: `held ${i}` } }, { 'idempotency-key': `held-${i}-${randomUUID()}` });
      const first = await Promise.all(Array.from({ length: 30 }, (_, i) => timed(() => request(i))));
      for (const r of first) {
        expect(r.status).toBe(503);
        expect(r.retryAfter).toBe('1');
        expect(r.ms, 'time to 503, ms').toBeLessThan(DEADLINE_MS + SLACK_MS);
      }
      // Now known to be away: new requests, one at a time, are answered at once, and so is /readyz.
      for (let i = 0; i < 6; i++) {
        const r = await timed(() => request(i));
        expect(r.status).toBe(503);
        expect(r.retryAfter).toBe('1');
        expect(r.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
      }
      const ready = await timed(() => h!.request('/readyz'));
      expect([ready.status, ready.retryAfter]).toEqual([503, '1']);
      expect(ready.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);

      await proxy.restore();
      const restoredAt = performance.now();
      let back: Timed | undefined;
      while (performance.now() - restoredAt < 10_000) {
        back = await timed(() => h!.invoke(user.key, list));
        if (back.status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(back?.status).toBe(200);
      expect(back!.endedAt - restoredAt, 'restore → first 200, ms').toBeLessThan(RECOVERY_MS);
      expect((await h.request('/readyz')).status).toBe(200);
      // Nothing given up on is left holding a connection: the held BEGINs and statements, delivered on restore, are
      // rolled back (or finish), and the pool serves more transactions at once than it has connections.
      const keyed = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          h!.invoke(user.key, { resource: 'goals', action: 'create', data: { name: `after ${i}` } }, { 'idempotency-key': randomUUID() }),
        ),
      );
      expect(keyed.map((r) => r.status)).toEqual(Array(15).fill(201));
      const direct = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
      try {
        let open = -1;
        for (let i = 0; i < 50 && open !== 0; i++) {
          if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
          const [row] = await direct`select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`;
          open = row!.n;
        }
        expect(open, 'transactions left open').toBe(0);
      } finally {
        await direct.end();
      }
      console.log(
        `blackhole: 30 requests at once → first 503 ${Math.round(Math.min(...first.map((r) => r.endedAt)) - blackholedAt)} ms, ` +
          `p99 time-to-503 ${Math.round(percentile(first.map((r) => r.ms), 99))} ms; restore → first 2xx ${Math.round(back!.endedAt - restoredAt)} ms`,
      );
    } finally {
      await h?.close();
      await proxy.close();
    }
  });

  it('a slow statement on a database that answers is not cut short by the deadline', async () => {
    const target = await dbTarget();
    const proxy = await startFaultProxy(target.host, target.port);
    let h: Harness | undefined;
    try {
      h = await createHarness({ databaseUrl: proxiedUrl(proxy), unavailableTimeoutMs: 300 });
      const started = performance.now();
      // Nothing else runs: only the probe, answering beside it, tells a slow statement from a database that is away.
      const rows = await sql<{ slept: number }>`select 1 as slept from pg_sleep(1)`.execute(h.db);
      expect(rows.rows).toEqual([{ slept: 1 }]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    } finally {
      await h?.close();
      await proxy.close();
    }
  });

  it('cut under steady load (a real server process): every 503 within the deadline with Retry-After, no 500, no acknowledged create lost, back within ~1 s without a restart', async () => {
    const target = await dbTarget();
    const proxy = await startFaultProxy(target.host, target.port);
    const direct = await createHarness();
    const port = await freePort();
    const server = spawnNode(SERVER_ARGS, {
      DATABASE_URL: proxiedUrl(proxy),
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      WORKER: 'false',
      RATE_LIMIT_PER_MINUTE: '1000000',
      DB_UNAVAILABLE_TIMEOUT_MS: String(DEADLINE_MS),
    });
    try {
      await server.waitFor(/listening on/, 60_000);
      const user = await direct.user();
      const base = `http://127.0.0.1:${port}`;
      const create = (name: string) => async () => {
        const res = await fetch(`${base}/v1/goals`, {
          method: 'POST',
          headers: { authorization: `Bearer ${user.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name }),
        });
        return { status: res.status, headers: res.headers, body: await res.json() };
      };

      const results: Timed[] = [];
      const start = performance.now();
      const phase = { cutAt: 0, restoredAt: 0 };
      const stopAt = start + 9500;
      // Each worker sends one create after another; after a 503 it waits 50 ms (a client honouring Retry-After would
      // wait a second: this keeps the measurement fine-grained without a busy loop of 503s starving the machine).
      const loop = async (worker: number) => {
        for (let i = 0; performance.now() < stopAt; i++) {
          const result = await timed(create(`load ${worker}-${i}-${randomUUID()}`));
          results.push(result);
          if (result.status === 503) await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      const workers = Array.from({ length: 8 }, (_, w) => loop(w));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await proxy.cut();
      phase.cutAt = performance.now();
      // Six seconds: long enough for a growing reconnect backoff (postgres.js's default) to show in the recovery.
      await new Promise((resolve) => setTimeout(resolve, 6000));
      await proxy.restore();
      phase.restoredAt = performance.now();
      await Promise.all(workers);

      const statuses = new Set(results.map((r) => r.status));
      expect([...statuses].sort()).toEqual([201, 503]);
      const unavailable = results.filter((r) => r.status === 503);
      for (const r of unavailable) {
        expect(r.retryAfter).toBe('1');
        expect(r.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
      }
      const firstUnavailable = Math.min(...unavailable.map((r) => r.endedAt)) - phase.cutAt;
      const firstBack = Math.min(...results.filter((r) => r.status === 201 && r.endedAt > phase.restoredAt).map((r) => r.endedAt)) - phase.restoredAt;
      const p99 = percentile(unavailable.map((r) => r.ms), 99);
      expect(firstUnavailable, 'cut → first 503, ms').toBeLessThan(DEADLINE_MS + SLACK_MS);
      expect(firstBack, 'restore → first 201, ms').toBeLessThan(RECOVERY_MS);
      console.log(
        `cut under load: ${results.length} creates, ${unavailable.length} answered 503; cut → first 503 ${Math.round(firstUnavailable)} ms, ` +
          `p99 time-to-503 ${Math.round(p99)} ms (max ${Math.round(Math.max(...unavailable.map((r) => r.ms)))} ms), restore → first 2xx ${Math.round(firstBack)} ms`,
      );

      // Every create answered 201 is in the database.
      const acknowledged = results.filter((r) => r.status === 201).map((r) => r.id!);
      expect(acknowledged.length).toBeGreaterThan(0);
      const stored = await direct.db.selectFrom('goals').select('id').where('id', 'in', acknowledged).execute();
      expect(stored.length).toBe(acknowledged.length);
      // The server is the same process, still serving.
      expect(server.child.exitCode).toBeNull();
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    } finally {
      await server.stop();
      await direct.close();
      await proxy.close();
    }
  });
});
