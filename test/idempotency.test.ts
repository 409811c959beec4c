import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeExpiredKeys } from '../src/rpc/idempotency.ts';
import { createHarness, databaseUrl, expectError, ok, onRealPostgres, type Harness } from './support/harness.ts';
import { freePort, SERVER_ARGS, spawnNode, stopAll, type Spawned } from './support/processes.ts';
import { readEvents } from './support/sse.ts';
import { WsClient } from './support/ws-client.ts';

// SPEC §1, Idempotency-Key: the first request with a key runs; a retry of the same request answers the stored status
// and body with `Idempotent-Replayed: true` and writes nothing; the key with another request is 422
// IDEMPOTENCY_KEY_REUSED; a retry while the first runs is 409 CONFLICT. Per user, 24 h, in Postgres, written in the
// transaction of the write itself.

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await stopAll();
  await h.close();
});

const createGoal = (name: string) => ({ resource: 'goals', action: 'create', data: { name } });

async function goalsNamed(name: string): Promise<number> {
  const row = await h.db.selectFrom('goals').select((eb) => eb.fn.countAll<string>().as('n')).where('name', '=', name).executeTakeFirstOrThrow();
  return Number(row.n);
}

async function storedKey(userId: string, key: string) {
  return h.db.selectFrom('idempotency_keys').selectAll().where('user_id', '=', userId).where('key', '=', key).executeTakeFirst();
}

describe('Idempotency-Key over HTTP', () => {
  it('a retry answers the stored status and body with Idempotent-Replayed: true, and writes nothing', async () => {
    const user = await h.user();
    const name = `Once ${randomUUID()}`;
    const key = randomUUID();
    const first = await h.invoke(user.key, createGoal(name), { 'idempotency-key': key });
    const goal = ok(first, 201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();

    const again = await h.invoke(user.key, createGoal(name), { 'idempotency-key': key });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    // The REST route builds the same request: the same answer again.
    const rest = await h.request('/v1/goals', { method: 'POST', key: user.key, headers: { 'idempotency-key': key }, body: JSON.stringify({ name }) });
    expect([rest.status, rest.headers.get('idempotent-replayed'), rest.body.data.id]).toEqual([201, 'true', goal.id]);
    expect(await goalsNamed(name)).toBe(1);

    const row = await storedKey(user.id, key);
    expect(row).toMatchObject({ status: 201 });
    expect(row!.expires_at.getTime() - row!.created_at.getTime()).toBe(24 * 3600 * 1000);
  });

  it('the same key with a different request is 422 IDEMPOTENCY_KEY_REUSED, and writes nothing', async () => {
    const user = await h.user();
    const key = randomUUID();
    const name = `First ${randomUUID()}`;
    ok(await h.invoke(user.key, createGoal(name), { 'idempotency-key': key }), 201);
    const other = `Other ${randomUUID()}`;
    expectError(await h.invoke(user.key, createGoal(other), { 'idempotency-key': key }), 'IDEMPOTENCY_KEY_REUSED', 422);
    expectError(await h.invoke(user.key, { resource: 'agents', action: 'create', data: { name } }, { 'idempotency-key': key }), 'IDEMPOTENCY_KEY_REUSED', 422);
    expect(await goalsNamed(other)).toBe(0);
    expect((await storedKey(user.id, key))?.status).toBe(201);
  });

  it('keys are per user; without a key every request runs; a malformed key is refused', async () => {
    const [alice, bob] = [await h.user(), await h.user()];
    const key = randomUUID();
    const name = `Shared ${randomUUID()}`;
    ok(await h.invoke(alice.key, createGoal(name), { 'idempotency-key': key }), 201);
    const bobs = await h.invoke(bob.key, createGoal(name), { 'idempotency-key': key });
    expect([bobs.status, bobs.headers.get('idempotent-replayed')]).toEqual([201, null]);
    ok(await h.invoke(alice.key, createGoal(name)), 201);
    ok(await h.invoke(alice.key, createGoal(name)), 201);
    expect(await goalsNamed(name)).toBe(4);
    expectError(await h.invoke(alice.key, createGoal(name), { 'idempotency-key': 'k'.repeat(256) }), 'VALIDATION_ERROR', 400);
    expectError(await h.invoke(alice.key, createGoal(name), { 'idempotency-key': 'tab\there' }), 'VALIDATION_ERROR', 400);
    // A read ignores a key.
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'list' }, { 'idempotency-key': key }));
  });

  it('a failed request keeps no key: its retry runs again', async () => {
    const user = await h.user();
    const key = randomUUID();
    const missing = randomUUID();
    const remove = { resource: 'agents', action: 'delete', id: missing };
    expectError(await h.invoke(user.key, remove, { 'idempotency-key': key }), 'NOT_FOUND', 404);
    expect(await storedKey(user.id, key)).toBeUndefined();
    expectError(await h.invoke(user.key, remove, { 'idempotency-key': key }), 'NOT_FOUND', 404);
  });

  it('handlers that open their own transaction run inside the keyed one, and are replayed', async () => {
    const user = await h.user();
    const agent = ok(await h.invoke(user.key, { resource: 'agents', action: 'create', data: { name: 'Doomed' } }), 201);
    const goal = ok(await h.invoke(user.key, { resource: 'goals', action: 'create', data: { name: 'Kept', agent_id: agent.id } }), 201);
    const key = randomUUID();
    const remove = { resource: 'agents', action: 'delete', id: agent.id };
    const first = ok(await h.invoke(user.key, remove, { 'idempotency-key': key }));
    const again = await h.invoke(user.key, remove, { 'idempotency-key': key });
    expect([again.status, again.headers.get('idempotent-replayed'), again.body.data]).toEqual([200, 'true', first]);
    // Without the key the agent is gone: NOT_FOUND, as the replay did not run the delete again.
    expectError(await h.invoke(user.key, remove), 'NOT_FOUND', 404);
    expect(ok(await h.invoke(user.key, { resource: 'goals', action: 'get', id: goal.id })).agent_id).toBeNull();

    const items = {
      resource: 'action-items',
      action: 'batch-create',
      data: { action_items: [{ description: 'one', goal_id: goal.id }, { description: 'two' }] },
    };
    const created = ok(await h.invoke(user.key, items, { 'idempotency-key': `${key}-items` }), 201);
    ok(await h.invoke(user.key, items, { 'idempotency-key': `${key}-items` }), 201);
    const count = await h.db.selectFrom('action_items').select((eb) => eb.fn.countAll<string>().as('n')).where('owner_id', '=', user.id).executeTakeFirstOrThrow();
    expect([created.created_count, Number(count.n)]).toEqual([2, 2]);
  });

  it('an api key created with a key is replayed without the secret, which is never stored', async () => {
    const user = await h.user();
    const key = randomUUID();
    const first = ok(await h.invoke(user.key, { resource: 'api-keys', action: 'create', data: { name: 'ci' } }, { 'idempotency-key': key }), 201);
    expect(first.key).toMatch(/^gp_live_/);
    const again = await h.invoke(user.key, { resource: 'api-keys', action: 'create', data: { name: 'ci' } }, { 'idempotency-key': key });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const { key: _secret, ...record } = first;
    expect(again.body.data).toEqual(record);
    expect(JSON.stringify((await storedKey(user.id, key))!.body)).not.toContain(first.key);
  });

  it('an expired key is a new key, and the purge deletes expired keys in bounded batches', async () => {
    const user = await h.user();
    const key = randomUUID();
    ok(await h.invoke(user.key, createGoal(`Old ${key}`), { 'idempotency-key': key }), 201);
    await h.db.updateTable('idempotency_keys').set({ expires_at: sql<Date>`now() - interval '1 second'` }).where('user_id', '=', user.id).execute();
    // Past 24 h the same key with another request runs (no 422), and with the first request it runs again.
    const fresh = await h.invoke(user.key, createGoal(`New ${key}`), { 'idempotency-key': key });
    expect([fresh.status, fresh.headers.get('idempotent-replayed')]).toEqual([201, null]);
    expect((await storedKey(user.id, key))!.expires_at.getTime()).toBeGreaterThan(Date.now());

    for (let i = 0; i < 3; i++) ok(await h.invoke(user.key, createGoal(`Purged ${i}`), { 'idempotency-key': `${key}-${i}` }), 201);
    await h.db
      .updateTable('idempotency_keys')
      .set({ expires_at: sql<Date>`now() - interval '1 hour'` })
      .where('user_id', '=', user.id)
      .where('key', 'like', `${key}-%`)
      .execute();
    const mine = () => h.db.selectFrom('idempotency_keys').select('key').where('user_id', '=', user.id).execute();
    // Other tests' expired keys may be purged too; this user's three go, its live one stays.
    let purged = 0;
    while ((await mine()).length > 1) {
      const n = await purgeExpiredKeys(h.db, 2);
      expect(n).toBeLessThanOrEqual(2);
      purged += n;
      if (n === 0) break;
    }
    expect(purged).toBeGreaterThanOrEqual(3);
    expect((await mine()).map((r) => r.key)).toEqual([key]);
  });
});

describe('Idempotency-Key over WebSocket and SSE', () => {
  it('a WebSocket frame carries it as idempotencyKey; the replay says replayed: true', async () => {
    const server = await h.listen();
    const user = await h.user();
    const ws = await WsClient.open(server.wsUrl, { authorization: `Bearer ${user.key}` });
    try {
      const name = `Socket ${randomUUID()}`;
      const key = randomUUID();
      ws.send({ request_id: 1, idempotencyKey: key, ...createGoal(name) });
      const first = await ws.next((f) => f.request_id === 1 && f.type === 'result');
      ws.send({ request_id: 2, idempotencyKey: key, ...createGoal(name) });
      const again = await ws.next((f) => f.request_id === 2 && f.type === 'result');
      expect(first).toMatchObject({ success: true, status: 201 });
      expect(first.replayed).toBeUndefined();
      expect(again).toMatchObject({ success: true, status: 201, replayed: true, data: first.data });
      ws.send({ request_id: 3, idempotencyKey: key, ...createGoal(`${name} other`) });
      expect(await ws.next((f) => f.request_id === 3 && f.type === 'result')).toMatchObject({ success: false, error: { code: 'IDEMPOTENCY_KEY_REUSED', status: 422 } });
      // Over HTTP, the same key is the same key.
      const http = await h.invoke(user.key, createGoal(name), { 'idempotency-key': key });
      expect(http.headers.get('idempotent-replayed')).toBe('true');
      expect(await goalsNamed(name)).toBe(1);
    } finally {
      ws.socket.close();
    }
  });

  it('a streamed generate-roadmap runs once; its replay is one result event marked replayed', async () => {
    const server = await h.listen();
    const user = await h.user();
    const goal = ok(await h.invoke(user.key, createGoal('Launch a podcast')), 201);
    const key = randomUUID();
    const stream = async () => {
      const res = await fetch(`${server.url}/v1`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.key}`, 'content-type': 'application/json', accept: 'text/event-stream', 'idempotency-key': key },
        body: JSON.stringify({ resource: 'goals', action: 'generate-roadmap', id: goal.id }),
      });
      return readEvents(res.body!);
    };
    const first = await stream();
    const result = first.find((e) => e.event === 'result')!;
    expect(first.some((e) => e.event === 'progress')).toBe(true);
    const again = await stream();
    expect(again.map((e) => e.event)).toEqual(['result']);
    expect(again[0]!.data).toEqual({ ...result.data, replayed: true });
    const history = await h.db.selectFrom('goals').select('updated_at').where('id', '=', goal.id).executeTakeFirstOrThrow();
    expect(history.updated_at.toISOString()).toBe(result.data.data.updated_at);
  });
});

describe.runIf(onRealPostgres())('Idempotency-Key under concurrency, across processes, and through a crash', () => {
  it('20 identical requests at once: one write; the rest replay it or are 409 CONFLICT', async () => {
    const user = await h.user();
    const name = `Twenty ${randomUUID()}`;
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 20 }, () => h.invoke(user.key, createGoal(name), { 'idempotency-key': key })));
    const firsts = answers.filter((a) => a.status === 201 && a.headers.get('idempotent-replayed') === null);
    const replays = answers.filter((a) => a.status === 201 && a.headers.get('idempotent-replayed') === 'true');
    const conflicts = answers.filter((a) => a.status === 409);
    expect(firsts).toHaveLength(1);
    expect(replays.length + conflicts.length).toBe(19);
    for (const replay of replays) expect(replay.body).toEqual(firsts[0]!.body);
    for (const conflict of conflicts) expectError(conflict, 'CONFLICT', 409);
    expect(await goalsNamed(name)).toBe(1);
  });

  async function startServer(): Promise<{ server: Spawned; url: string }> {
    const port = await freePort();
    const server = spawnNode(SERVER_ARGS, {
      DATABASE_URL: databaseUrl(),
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      WORKER: 'false',
      RATE_LIMIT_PER_MINUTE: '1000000',
    });
    await server.waitFor(/listening on/, 60_000);
    return { server, url: `http://127.0.0.1:${port}` };
  }

  const post = (url: string, apiKey: string, key: string, body: unknown) =>
    fetch(`${url}/v1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });

  it('two server processes share the keys: a retry on the other one replays, duplicates at once on both write once', async () => {
    const [a, b] = await Promise.all([startServer(), startServer()]);
    try {
      const user = await h.user();
      const name = `Two ${randomUUID()}`;
      const key = randomUUID();
      const first = await post(a.url, user.key, key, createGoal(name));
      const again = await post(b.url, user.key, key, createGoal(name));
      expect([first.status, again.status, again.headers.get('idempotent-replayed')]).toEqual([201, 201, 'true']);
      expect(await again.json()).toEqual(await first.json());
      expect((await post(b.url, user.key, key, createGoal(`${name}!`))).status).toBe(422);

      const both = `Both ${randomUUID()}`;
      const bothKey = randomUUID();
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(i % 2 ? a.url : b.url, user.key, bothKey, createGoal(both))));
      const statuses = answers.map((r) => `${r.status}${r.headers.get('idempotent-replayed') ? ' replayed' : ''}`);
      expect(statuses.filter((s) => s === '201')).toHaveLength(1);
      expect(statuses.every((s) => s === '201' || s === '201 replayed' || s === '409')).toBe(true);
      expect(await goalsNamed(both)).toBe(1);
    } finally {
      await Promise.all([a.server.stop(), b.server.stop()]);
    }
  });

  it('a server killed between the write and its key leaves neither; the retry then writes both', async () => {
    const user = await h.user();
    const name = `Crash ${randomUUID()}`;
    const key = randomUUID();
    const { server, url } = await startServer();
    // A lock that lets the goal's insert through and holds the key's insert, in the same transaction.
    const blocker = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const holding = blocker.begin(async (tx) => {
        await tx`lock table idempotency_keys in share mode`;
        await released;
      });
      const request = post(url, user.key, key, createGoal(name)).catch((error: Error) => error);
      // The goal is inserted and the key's insert is waiting on the lock: the request is in the middle.
      const admin = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
      try {
        for (let i = 0; i < 200; i++) {
          const waiting = await admin`select count(*)::int as n from pg_locks where relation = 'idempotency_keys'::regclass and not granted`;
          if (waiting[0]!.n > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        const [waitingNow] = await admin`select count(*)::int as n from pg_locks where relation = 'idempotency_keys'::regclass and not granted`;
        expect(waitingNow!.n).toBe(1);
      } finally {
        await admin.end();
      }
      await server.stop('SIGKILL');
      expect(await request).toBeInstanceOf(Error);
      release();
      await holding;
      // The backend now inserts the key, then finds its client gone at its next read and rolls back: nothing of it is
      // ever committed (the COMMIT was never sent).
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await goalsNamed(name)).toBe(0);
      expect(await storedKey(user.id, key)).toBeUndefined();

      const second = await startServer();
      try {
        const retry = await post(second.url, user.key, key, createGoal(name));
        expect([retry.status, retry.headers.get('idempotent-replayed')]).toEqual([201, null]);
        expect(await goalsNamed(name)).toBe(1);
        expect((await storedKey(user.id, key))?.status).toBe(201);
      } finally {
        await second.server.stop();
      }
    } finally {
      await server.stop('SIGKILL');
      await blocker.end();
    }
  });
});
