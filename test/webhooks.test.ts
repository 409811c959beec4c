import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, webhookSettings } from '../src/config.ts';
import { Kysely } from 'kysely';
import { openDatabase } from '../src/db/client.ts';
import { PostgresJsDialect } from '../src/db/dialect.ts';
import type { Database } from '../src/db/schema.ts';
import { failAbandoned } from '../src/resources/webhooks/queries.ts';
import { startWorker, type Worker } from '../src/jobs/worker.ts';
import { createLogger } from '../src/logger.ts';
import { createHarness, databaseUrl, expectError, ok, onRealPostgres, testWebhookSettings, type Harness } from './support/harness.ts';
import { freePort, SERVER_ARGS, spawnNode, stopAll, type Spawned } from './support/processes.ts';
import { createProxy } from './support/proxy.ts';
import { startReceiver, type Receiver } from './support/receiver.ts';
import { WsClient } from './support/ws-client.ts';

// Webhooks and reminders through the real app, a real worker polling the run's database, and a real loopback receiver;
// every signature is checked with the `standardwebhooks` library. The worker settings are the harness's
// (testWebhookSettings): 3 attempts, 100 ms backoff doubling, 1 s timeout here.

const SETTINGS = testWebhookSettings({ timeoutMs: 1000 });
let h: Harness;
let worker: Worker;
let receiver: Receiver;

beforeAll(async () => {
  h = await createHarness({ webhooks: SETTINGS });
  worker = startWorker({ db: h.db, settings: SETTINGS, logger: createLogger('silent'), pollMs: 50 });
  receiver = await startReceiver();
});

afterAll(async () => {
  await stopAll();
  await worker?.stop();
  await receiver?.close();
  await h?.close();
});

type User = Awaited<ReturnType<Harness['user']>>;

async function webhook(user: User, data: Record<string, unknown> = {}) {
  return ok(await h.invoke(user.key, { resource: 'webhooks', action: 'create', data: { url: receiver.url(`/${user.id}`), ...data } }), 201);
}

async function item(user: User, data: Record<string, unknown>) {
  return ok(await h.invoke(user.key, { resource: 'action-items', action: 'create', data: { description: 'Call back', ...data } }), 201);
}

const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** What `user`'s receiver path got, of `type`. */
const got = (user: User, type?: string) => receiver.received.filter((r) => r.path === `/${user.id}` && (!type || r.json?.type === type));
const waitFor = (user: User, count: number, type?: string, timeoutMs = 8000) =>
  receiver.waitFor(count, { filter: (r) => r.path === `/${user.id}` && (!type || r.json?.type === type), timeoutMs });

async function deliveries(user: User, webhookId: string, data: Record<string, unknown> = {}) {
  return ok(await h.invoke(user.key, { resource: 'webhooks', action: 'deliveries', id: webhookId, data })).items as any[];
}

/** Polls the delivery log until `check` passes (the worker records after the receiver answered). */
async function logSettles(user: User, webhookId: string, check: (rows: any[]) => boolean, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await deliveries(user, webhookId);
    if (check(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`delivery log did not settle: ${JSON.stringify(rows)}`);
    await sleep(50);
  }
}

describe('configuration', () => {
  it('defaults to the worker in the server, 10 s timeout and backoff, 8 attempts, public addresses only', () => {
    const config = loadConfig({});
    expect(config.WORKER).toBe(true);
    expect(config.WORKER_POLL_MS).toBe(1000);
    expect(webhookSettings(config)).toEqual({ timeoutMs: 10_000, backoffMs: 10_000, maxAttempts: 8, allowPrivateUrls: false });
    expect(loadConfig({ WORKER: 'false', WEBHOOK_ALLOW_PRIVATE_URLS: 'TRUE' })).toMatchObject({ WORKER: false, WEBHOOK_ALLOW_PRIVATE_URLS: true });
  });

  it.each([
    ['WORKER', 'maybe'],
    ['WEBHOOK_ALLOW_PRIVATE_URLS', 'yes please'],
    ['WEBHOOK_MAX_ATTEMPTS', '0'],
    ['WEBHOOK_TIMEOUT_MS', 'soon'],
    ['WEBHOOK_BACKOFF_MS', '-5'],
    ['WORKER_POLL_MS', '1'],
    ['WEBHOOK_TIMEOUT_MS', '300001'],
    ['WEBHOOK_MAX_ATTEMPTS', '31'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^\\s*${name}: `, 'm'));
  });
});

describe('the webhooks resource', () => {
  it('creates a webhook whose secret is answered once, and lists, gets, updates and deletes it', async () => {
    const alice = await h.user();
    const created = await webhook(alice, { description: 'CRM' });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(created.secret.slice('whsec_'.length), 'base64').length).toBeGreaterThanOrEqual(24);
    expect(created).toMatchObject({ url: receiver.url(`/${alice.id}`), events: ['action_item.due'], description: 'CRM', enabled: true });

    const got = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'get', id: created.id }));
    expect(got).not.toHaveProperty('secret');
    const listed = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'list' }));
    expect(listed.count).toBe(1);
    expect(listed.items[0]).not.toHaveProperty('secret');
    expect(JSON.stringify(listed)).not.toContain(created.secret);

    const updated = ok(
      await h.invoke(alice.key, {
        resource: 'webhooks',
        action: 'update',
        id: created.id,
        data: { events: ['goal.completed', 'action_item.completed', 'goal.completed'], enabled: false },
      }),
    );
    expect(updated).toMatchObject({ events: ['goal.completed', 'action_item.completed'], enabled: false });
    expect(updated).not.toHaveProperty('secret');

    // The REST routes come from the registry like every resource's.
    const rest = await h.request(`/v1/webhooks/${created.id}`, { key: alice.key });
    expect(ok(rest).id).toBe(created.id);

    ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'delete', id: created.id }));
    expectError(await h.invoke(alice.key, { resource: 'webhooks', action: 'get', id: created.id }), 'NOT_FOUND', 404);
  });

  it('works over the REST-style routes and the WebSocket like every resource', async () => {
    const alice = await h.user();
    const server = await h.listen();
    const headers = { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' };
    const res = await fetch(`${server.url}/v1/webhooks`, { method: 'POST', headers, body: JSON.stringify({ url: receiver.url(`/${alice.id}`) }) });
    expect(res.status).toBe(201);
    const created = ((await res.json()) as any).data;
    expect(created.secret).toMatch(/^whsec_/);
    const tested = await fetch(`${server.url}/v1/webhooks/test`, { method: 'POST', headers, body: JSON.stringify({ id: created.id }) });
    expect(((await tested.json()) as any).data).toMatchObject({ status: 'delivered', event_type: 'webhook.test' });
    const log = await fetch(`${server.url}/v1/webhooks/deliveries`, { method: 'POST', headers, body: JSON.stringify({ id: created.id, data: { status: 'delivered' } }) });
    expect(((await log.json()) as any).data.count).toBe(1);

    const ws = await WsClient.open(server.wsUrl, { authorization: `Bearer ${alice.key}` });
    const listed = await ws.call('w1', { resource: 'webhooks', action: 'list' });
    expect(listed).toMatchObject({ type: 'result', success: true, status: 200, data: { count: 1 } });
    expect(listed.data.items[0]).not.toHaveProperty('secret');
    const updated = await ws.call('w2', { resource: 'webhooks', action: 'update', id: created.id, data: { url: 'ftp://nope' } });
    expect(updated).toMatchObject({ success: false, error: { code: 'VALIDATION_ERROR' } });
    await ws.close();
  });

  it('refuses a bad URL, an unknown or empty event list, and an 11th webhook', async () => {
    const alice = await h.user();
    const bad = async (data: Record<string, unknown>, path: string) => {
      const error = expectError(await h.invoke(alice.key, { resource: 'webhooks', action: 'create', data }), 'VALIDATION_ERROR', 400) as any;
      expect(error.details.map((d: any) => d.path.join('.'))).toContain(path);
    };
    await bad({ url: 'ftp://example.com/hook' }, 'data.url');
    await bad({ url: 'not a url' }, 'data.url');
    await bad({ url: `https://example.com/${'a'.repeat(2000)}` }, 'data.url');
    await bad({ url: 'javascript:alert(1)' }, 'data.url');
    await bad({ url: receiver.url(), events: ['item.done'] }, 'data.events.0');
    await bad({ url: receiver.url(), events: [] }, 'data.events');
    await bad({ url: receiver.url(), secret: 'whsec_mine' }, 'data');

    for (let i = 0; i < 10; i++) await webhook(alice);
    const error = expectError(await h.invoke(alice.key, { resource: 'webhooks', action: 'create', data: { url: receiver.url() } }), 'CONFLICT', 409);
    expect(error.message).toMatch(/at most 10/);
  });

  it("answers NOT_FOUND for someone else's webhook or delivery, and lets an admin see every account's", async () => {
    const [alice, bob, admin, consumer] = [await h.user(), await h.user(), await h.user('internal_admin'), await h.user('consumer')];
    const hook = await webhook(alice);
    const tested = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'test', id: hook.id }));
    for (const [action, data] of [
      ['get', {}],
      ['update', { enabled: false }],
      ['delete', {}],
      ['deliveries', {}],
      ['test', {}],
      ['redeliver', { delivery_id: tested.id }],
    ] as const) {
      expectError(await h.invoke(bob.key, { resource: 'webhooks', action, id: hook.id, data }), 'NOT_FOUND', 404);
    }
    // Bob's own webhook does not open Alice's deliveries.
    const bobs = await webhook(bob);
    expectError(
      await h.invoke(bob.key, { resource: 'webhooks', action: 'redeliver', id: bobs.id, data: { delivery_id: tested.id } }),
      'NOT_FOUND',
      404,
    );
    expect(ok(await h.invoke(bob.key, { resource: 'webhooks', action: 'list' })).items.map((w: any) => w.id)).toEqual([bobs.id]);

    const all = ok(await h.invoke(admin.key, { resource: 'webhooks', action: 'list', data: { adminMode: true, limit: 100 } }));
    const seen = all.items.find((w: any) => w.id === hook.id);
    expect(seen.owner).toMatchObject({ id: alice.id, email: alice.email });
    expect(seen).not.toHaveProperty('secret');
    expectError(await h.invoke(bob.key, { resource: 'webhooks', action: 'list', data: { adminMode: true } }), 'FORBIDDEN', 403);
    // A consumer reads, and cannot create.
    ok(await h.invoke(consumer.key, { resource: 'webhooks', action: 'list' }));
    expectError(await h.invoke(consumer.key, { resource: 'webhooks', action: 'create', data: { url: receiver.url() } }), 'FORBIDDEN', 403);
  });
});

describe('the SSRF guard', () => {
  // The app's actions refuse private addresses for these tests (one harness: the embedded database takes one connection).
  const strict = {
    user: () => h.user(),
    invoke: async (key: string, envelope: unknown) => {
      h.webhookSettings.allowPrivateUrls = false;
      try {
        return await h.invoke(key, envelope);
      } finally {
        h.webhookSettings.allowPrivateUrls = true;
      }
    },
  };

  it('refuses loopback, private, link-local, multicast and unspecified hosts at create and update', async () => {
    const alice = await strict.user();
    const refused = [
      'http://127.0.0.1/hook',
      'http://127.1.2.3:8080/hook',
      'http://localhost:8787/hook',
      'http://10.0.0.1/hook',
      'http://172.16.5.4/hook',
      'http://192.168.1.1/hook',
      'http://169.254.169.254/latest/meta-data',
      'http://100.64.0.1/hook',
      'http://0.0.0.0/hook',
      'http://224.0.0.1/hook',
      'http://[::1]/hook',
      'http://[fc00::1]/hook',
      'http://[fe80::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://[::127.0.0.1]/hook',
      'http://[::a9fe:a9fe]/hook',
      'http://[64:ff9b::7f00:1]/hook',
      'http://[::]/hook',
    ];
    for (const url of refused) {
      const error = expectError(await strict.invoke(alice.key, { resource: 'webhooks', action: 'create', data: { url } }), 'VALIDATION_ERROR', 400) as any;
      expect(error.details[0].path).toEqual(['data', 'url']);
      expect(error.message, url).toMatch(/public address/);
    }
    // A public address is accepted (nothing is sent to it here).
    const hook = ok(await strict.invoke(alice.key, { resource: 'webhooks', action: 'create', data: { url: 'https://93.184.216.34/hook' } }), 201);
    expectError(
      await strict.invoke(alice.key, { resource: 'webhooks', action: 'update', id: hook.id, data: { url: 'http://localhost/hook' } }),
      'VALIDATION_ERROR',
      400,
    );
    expect(ok(await strict.invoke(alice.key, { resource: 'webhooks', action: 'list' })).count).toBe(1);
  });

  it('checks again when it sends: a webhook on a private address gets nothing', async () => {
    const alice = await h.user();
    // Made while private addresses were allowed (or before a DNS change): the send is still refused.
    const hook = await webhook(alice);
    const delivery = ok(await strict.invoke(alice.key, { resource: 'webhooks', action: 'test', id: hook.id }));
    // Before this file's worker (which allows private addresses) retries it.
    ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'delete', id: hook.id }));
    expect(delivery).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
    expect(delivery.last_error).toMatch(/refused: 127\.0\.0\.1 is a loopback address/);
    expect(got(alice)).toHaveLength(0);
  });

  it('checks the address the connection resolves a name to, not only literal addresses', async () => {
    const alice = await h.user();
    const hook = await webhook(alice, { url: receiver.url(`/${alice.id}`).replace('127.0.0.1', 'localhost') });
    const delivery = ok(await strict.invoke(alice.key, { resource: 'webhooks', action: 'test', id: hook.id }));
    ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'delete', id: hook.id }));
    expect(delivery).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
    expect(delivery.last_error).toMatch(/refused: localhost resolves to .* loopback address/);
    expect(got(alice)).toHaveLength(0);
  });
});

describe('the queue', () => {
  it('fails a delivery whose last attempt was claimed and never recorded (its process died)', async () => {
    const alice = await h.user();
    const hook = await webhook(alice, { events: ['action_item.completed'] });
    await worker.stop();
    try {
      ok(await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', completed: true } }), 201);
      // As a process that claimed the last attempt and died leaves it: pending, out of attempts, its lease over.
      await h.sql`update webhook_deliveries set attempts = ${SETTINGS.maxAttempts}, claim = gen_random_uuid(),
                  next_attempt_at = now() - interval '1 second' where webhook_id = ${hook.id}`;
      expect(await failAbandoned(h.db, SETTINGS.maxAttempts)).toBeGreaterThanOrEqual(1);
      const [row] = await deliveries(alice, hook.id);
      expect(row).toMatchObject({ status: 'failed', attempts: SETTINGS.maxAttempts, next_attempt_at: null });
      expect(row.last_error).toMatch(/no outcome was recorded/);
    } finally {
      worker = startWorker({ db: h.db, settings: SETTINGS, logger: createLogger('silent'), pollMs: 50 });
    }
  });

  it('an idle worker sleeps until the next thing is due, at most WORKER_POLL_MS, rather than polling', async () => {
    let statements = 0;
    const counted = new Kysely<Database>({ dialect: new PostgresJsDialect(h.sql), log: () => void statements++ });
    const idle = startWorker({ db: counted, settings: SETTINGS, logger: createLogger('silent'), pollMs: 500 });
    await sleep(1600);
    await idle.stop();
    // About 4 ticks in 1.6 s (at the start, then every 500 ms), 3–4 statements each, and room for a few wake-ups for
    // what other tests leave due meanwhile; a worker that polled every 10 ms would run ~500.
    expect(statements).toBeGreaterThan(0);
    expect(statements).toBeLessThanOrEqual(40);
  });
});

describe('delivery', () => {
  it('sends a test event now, signed as Standard Webhooks says', async () => {
    const alice = await h.user();
    const hook = await webhook(alice);
    const delivery = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'test', id: hook.id }));
    expect(delivery).toMatchObject({ webhook_id: hook.id, event_type: 'webhook.test', status: 'delivered', attempts: 1, last_status_code: 200 });
    const [request] = got(alice);
    const payload = receiver.verify(hook.secret, request!);
    expect(payload).toEqual({ id: delivery.event_id, type: 'webhook.test', created_at: expect.any(String), data: { webhook_id: hook.id } });
    expect(request!.headers['webhook-id']).toBe(delivery.event_id);
    expect(delivery.event_id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(Math.abs(Number(request!.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
    // Signed with this webhook's secret, not another's.
    const other = await webhook(alice);
    expect(() => receiver.verify(other.secret, request!)).toThrow();
  });

  it("delivers an item's reminder at its due date, signed, with the item as it is", async () => {
    const alice = await h.user();
    const hook = await webhook(alice);
    const due = inMs(1500);
    const created = await item(alice, { due_at: due });
    const [request] = await waitFor(alice, 1, 'action_item.due');
    const lag = request!.at - Date.parse(due);
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(3000);
    const payload = receiver.verify(hook.secret, request!);
    expect(payload).toMatchObject({ type: 'action_item.due', data: { ...created } });
    expect(request!.headers['webhook-id']).toBe(payload.id);
    const [row] = await logSettles(alice, hook.id, (rows) => rows[0]?.status === 'delivered');
    expect(row).toMatchObject({ event_id: payload.id, event_type: 'action_item.due', attempts: 1, last_status_code: 200 });
  });

  it('moves, cancels and reschedules reminders as the item changes, and schedules nothing for a past date', async () => {
    const alice = await h.user();
    await webhook(alice);
    const moved = await item(alice, { description: 'moved', due_at: inMs(800) });
    const completed = await item(alice, { description: 'completed', due_at: inMs(800) });
    const deleted = await item(alice, { description: 'deleted', due_at: inMs(800) });
    const cleared = await item(alice, { description: 'cleared', due_at: inMs(800) });
    const reopened = await item(alice, { description: 'reopened', due_at: inMs(1500) });
    await item(alice, { description: 'past', due_at: inMs(-60_000) });
    await item(alice, { description: 'created completed', due_at: inMs(800), completed: true });
    const update = (id: string, data: Record<string, unknown>) => h.invoke(alice.key, { resource: 'action-items', action: 'update', id, data });
    const movedTo = inMs(2500);
    ok(await update(moved.id, { due_at: movedTo }));
    ok(await update(completed.id, { completed: true }));
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'delete', id: deleted.id }));
    ok(await update(cleared.id, { due_at: null }));
    ok(await update(reopened.id, { completed: true }));
    ok(await update(reopened.id, { completed: false }));

    const arrived = await waitFor(alice, 2, 'action_item.due');
    await sleep(800);
    const dues = got(alice, 'action_item.due');
    expect(dues.map((r) => r.json.data.description).sort()).toEqual(['moved', 'reopened']);
    const movedAt = arrived.find((r) => r.json.data.description === 'moved')!.at;
    expect(movedAt).toBeGreaterThanOrEqual(Date.parse(movedTo));
  });

  it('sends nothing for a stale reminder: the item is checked again when it is due', async () => {
    const alice = await h.user();
    await webhook(alice);
    const later = await item(alice, { description: 'later', due_at: inMs(60_000) });
    // A reminder that no longer matches its item (set by hand to a time that is not the item's due date).
    await h.sql`update action_items set remind_at = now() - interval '1 second' where id = ${later.id}`;
    const control = await item(alice, { description: 'control', due_at: inMs(300) });
    await waitFor(alice, 1, 'action_item.due');
    await sleep(300);
    expect(got(alice, 'action_item.due').map((r) => r.json.data.id)).toEqual([control.id]);
    const [left] = await h.sql`select remind_at from action_items where id = ${later.id}`;
    expect(left!.remind_at).toBeNull();
  });

  it('keeps the reminder right whoever writes the item, SQL by hand included', async () => {
    const alice = await h.user();
    const remindAt = async (id: string) => ((await h.sql`select remind_at from action_items where id = ${id}`)[0]!.remind_at as Date | null)?.toISOString() ?? null;
    const future = new Date(Date.now() + 3_600_000);
    const [{ id }] = (await h.sql`insert into action_items (owner_id, description, due_at) values (${alice.id}, 'by hand', ${future}) returning id`) as any;
    expect(await remindAt(id)).toBe(future.toISOString());
    await h.sql`update action_items set completed = true, completed_at = now() where id = ${id}`;
    expect(await remindAt(id)).toBeNull();
    await h.sql`update action_items set completed = false, completed_at = null where id = ${id}`;
    expect(await remindAt(id)).toBe(future.toISOString());
    await h.sql`update action_items set description = 'renamed' where id = ${id}`;
    expect(await remindAt(id)).toBe(future.toISOString());
    await h.sql`update action_items set due_at = now() - interval '1 minute' where id = ${id}`;
    expect(await remindAt(id)).toBeNull();
    const [{ id: past }] = (await h.sql`insert into action_items (owner_id, description, due_at) values (${alice.id}, 'late', now() - interval '1 day') returning id`) as any;
    expect(await remindAt(past)).toBeNull();
    // A write that rolls back leaves nothing behind, its reminder included.
    await h.sql.begin(async (tx) => {
      await tx`insert into action_items (owner_id, description, due_at) values (${alice.id}, 'rolled back', ${future})`;
      await tx`select 1/0`;
    }).catch(() => {});
    const [left] = await h.sql`select count(*)::int as n from action_items where owner_id = ${alice.id} and remind_at is not null`;
    expect(left!.n).toBe(0);
  });

  it('fans events out to the enabled webhooks that subscribe to them: completions of items (directly or by their node) and goals', async () => {
    const alice = await h.user();
    const completions = await webhook(alice, { events: ['action_item.completed', 'goal.completed'] });
    const other = ok(
      await h.invoke(alice.key, { resource: 'webhooks', action: 'create', data: { url: receiver.url(`/${alice.id}-due-only`) } }),
      201,
    );
    const disabled = ok(
      await h.invoke(alice.key, {
        resource: 'webhooks',
        action: 'create',
        data: { url: receiver.url(`/${alice.id}-disabled`), events: ['action_item.completed'], enabled: false },
      }),
      201,
    );
    const direct = await item(alice, { description: 'direct' });
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'update', id: direct.id, data: { completed: true } }));
    // Sending the state it has already is no new completion.
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'update', id: direct.id, data: { completed: true } }));

    const goal = ok(
      await h.invoke(alice.key, {
        resource: 'goals',
        action: 'create',
        data: {
          name: 'Roadmap',
          roadmap: { nodes: [{ id: 'n1', label: 'Step', completed: false, position: { x: 0, y: 0 } }], edges: [] },
        },
      }),
      201,
    );
    const linked = await item(alice, { description: 'by node', goal_id: goal.id, roadmap_node_id: 'n1' });
    // Completing the only node completes the item (node sync) and takes the goal's progress to 100.
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update-node', id: goal.id, data: { node_id: 'n1', completed: true } }));
    // Then its status: the goal was done already, so no second goal.completed.
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: goal.id, data: { status: 'completed' } }));

    await waitFor(alice, 3);
    await sleep(300);
    const events = got(alice);
    expect(events.map((r) => `${r.json.type} ${r.json.data.description ?? r.json.data.name}`).sort()).toEqual([
      'action_item.completed by node',
      'action_item.completed direct',
      'goal.completed Roadmap',
    ]);
    for (const r of events) receiver.verify(completions.secret, r);
    const goalEvent = events.find((r) => r.json.type === 'goal.completed')!.json.data;
    expect(goalEvent).toMatchObject({ id: goal.id, progress: 100 });
    expect(goalEvent).not.toHaveProperty('roadmap');
    expect(events.find((r) => r.json.data.id === linked.id)!.json.data).toMatchObject({ completed: true, roadmap_node_id: 'n1' });
    expect(receiver.received.filter((r) => r.path.startsWith(`/${alice.id}-`))).toHaveLength(0);
    expect(await deliveries(alice, other.id)).toHaveLength(0);
    expect(await deliveries(alice, disabled.id)).toHaveLength(0);
  });

  it('retries with backoff, keeping the webhook-id, until the receiver answers 2xx', async () => {
    const alice = await h.user();
    const hook = await webhook(alice, { events: ['action_item.completed'] });
    receiver.answer({ status: 500 }, { status: 503 });
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'done', completed: true } }), 201);
    const requests = await waitFor(alice, 3);
    expect(new Set(requests.map((r) => r.headers['webhook-id'])).size).toBe(1);
    for (const r of requests) receiver.verify(hook.secret, r);
    // 100 ms, then 200 ms (the backoff doubles).
    expect(requests[1]!.at - requests[0]!.at).toBeGreaterThanOrEqual(90);
    expect(requests[2]!.at - requests[1]!.at).toBeGreaterThanOrEqual(190);
    const [row] = await logSettles(alice, hook.id, (rows) => rows[0]?.status === 'delivered');
    expect(row).toMatchObject({ attempts: 3, last_status_code: 200, next_attempt_at: null });
    expect(row.delivered_at).toEqual(expect.any(String));
    await sleep(300);
    expect(got(alice)).toHaveLength(3);
  });

  it('fails a delivery after the last attempt: a hanging receiver, a closed connection, a redirect, an answer after the timeout', async () => {
    const alice = await h.user();
    const hook = await webhook(alice, { events: ['action_item.completed'] });
    receiver.answer({ hang: true }, { close: true }, { status: 302, location: receiver.url('/elsewhere') });
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', completed: true } }), 201);
    const [row] = await logSettles(alice, hook.id, (rows) => rows[0]?.status === 'failed', 10_000);
    expect(row).toMatchObject({ attempts: 3, last_status_code: 302, next_attempt_at: null, delivered_at: null });
    expect(row.last_error).toMatch(/redirects are not followed/);
    expect(got(alice)).toHaveLength(3);
    expect(receiver.received.filter((r) => r.path === '/elsewhere')).toHaveLength(0);

    // 200, but after the timeout: not delivered; the next attempt is, once.
    const bob = await h.user();
    const bobs = await webhook(bob, { events: ['action_item.completed'] });
    receiver.answer({ status: 200, afterMs: 1500 });
    ok(await h.invoke(bob.key, { resource: 'action-items', action: 'create', data: { description: 'x', completed: true } }), 201);
    const [late] = await logSettles(bob, bobs.id, (rows) => rows[0]?.status === 'delivered', 10_000);
    expect(late).toMatchObject({ attempts: 2, last_status_code: 200 });
    expect(got(bob)).toHaveLength(2);
  });

  it('disables the webhook on 410 Gone; redeliver sends a failed delivery again once it is enabled', async () => {
    const alice = await h.user();
    const hook = await webhook(alice, { events: ['action_item.completed'] });
    receiver.answer({ status: 410 });
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', completed: true } }), 201);
    const [failed] = await logSettles(alice, hook.id, (rows) => rows[0]?.status === 'failed');
    expect(failed).toMatchObject({ attempts: 1, last_status_code: 410 });
    expect(ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'get', id: hook.id })).enabled).toBe(false);

    const redeliver = () => h.invoke(alice.key, { resource: 'webhooks', action: 'redeliver', id: hook.id, data: { delivery_id: failed.id } });
    expectError(await redeliver(), 'CONFLICT', 409);
    ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'update', id: hook.id, data: { enabled: true } }));
    const again = ok(await redeliver());
    // One more attempt, counted as the last: it does not start a new series of retries.
    expect(again).toMatchObject({ id: failed.id, status: 'delivered', attempts: SETTINGS.maxAttempts, last_status_code: 200 });
    const requests = got(alice);
    expect(requests).toHaveLength(2);
    expect(requests[1]!.headers['webhook-id']).toBe(requests[0]!.headers['webhook-id']);
    receiver.verify(hook.secret, requests[1]!);
    expectError(await redeliver(), 'CONFLICT', 409);
    expectError(
      await h.invoke(alice.key, { resource: 'webhooks', action: 'redeliver', id: hook.id, data: { delivery_id: crypto.randomUUID() } }),
      'NOT_FOUND',
      404,
    );
  });

  it('lists the delivery log newest first, by status, in pages', async () => {
    const alice = await h.user();
    const hook = await webhook(alice);
    for (let i = 0; i < 3; i++) ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'test', id: hook.id }));
    receiver.answer({ status: 410 });
    ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'test', id: hook.id }));
    const page = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'deliveries', id: hook.id, data: { limit: 2 } }));
    expect(page.count).toBe(4);
    expect(page.items).toHaveLength(2);
    expect(page.items[0].status).toBe('failed');
    const rest = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'deliveries', id: hook.id, data: { limit: 2, cursor: page.next_cursor } }));
    expect(rest.items).toHaveLength(2);
    expect(rest.next_cursor).toBeNull();
    const byStatus = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'deliveries', id: hook.id, data: { status: 'delivered' } }));
    expect(byStatus.count).toBe(3);
    expectError(
      await h.invoke(alice.key, { resource: 'webhooks', action: 'deliveries', id: hook.id, data: { status: 'lost' } }),
      'VALIDATION_ERROR',
      400,
    );
  });
});

describe('the worker', () => {
  it('finishes the attempts in flight when stopped', async () => {
    const alice = await h.user();
    const hook = await webhook(alice, { events: ['action_item.completed'] });
    const own = startWorker({ db: h.db, settings: SETTINGS, logger: createLogger('silent'), pollMs: 50 });
    await worker.stop();
    try {
      receiver.answer({ status: 200, afterMs: 400 });
      ok(await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', completed: true } }), 201);
      await waitFor(alice, 1);
      await own.stop();
      const [row] = await deliveries(alice, hook.id);
      expect(row).toMatchObject({ status: 'delivered', attempts: 1 });
    } finally {
      worker = startWorker({ db: h.db, settings: SETTINGS, logger: createLogger('silent'), pollMs: 50 });
    }
  });
});

/** Resolves once the process's stderr (its JSON log) says `text`. */
async function logged(p: Spawned, text: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!p.stderr().includes(text)) {
    if (Date.now() > deadline || p.child.exitCode !== null) throw new Error(`no "${text}" in the log:\n${p.stderr()}`);
    await sleep(50);
  }
}

const workerEnv = (extra: Record<string, string> = {}) => ({
  WORKER_POLL_MS: '50',
  WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
  WEBHOOK_BACKOFF_MS: '100',
  LOG_LEVEL: 'info',
  ...extra,
});

describe('processes', () => {
  // This file's own worker pauses, so that the processes below do the work.
  beforeAll(async () => {
    await worker.stop();
  });
  afterAll(() => {
    worker = startWorker({ db: h.db, settings: SETTINGS, logger: createLogger('silent'), pollMs: 50 });
  });

  it.runIf(onRealPostgres())('two worker processes send each event once', async () => {
    const workers = [0, 1].map(() => spawnNode(['bin/goalpost.mjs', 'worker'], workerEnv({ DATABASE_URL: databaseUrl() })));
    await Promise.all(workers.map((w) => logged(w, 'worker started')));
    const alice = await h.user();
    const hook = await webhook(alice, { events: ['action_item.due', 'action_item.completed'] });
    const due = inMs(1500);
    ok(
      await h.invoke(alice.key, {
        resource: 'action-items',
        action: 'batch-create',
        data: { action_items: Array.from({ length: 40 }, (_, i) => ({ description: `due ${i}`, due_at: due })) },
      }),
      201,
    );
    ok(
      await h.invoke(alice.key, {
        resource: 'action-items',
        action: 'batch-create',
        data: { action_items: Array.from({ length: 20 }, (_, i) => ({ description: `done ${i}`, completed: true })) },
      }),
      201,
    );
    await waitFor(alice, 60, undefined, 15_000);
    await sleep(500);
    const requests = got(alice);
    expect(requests).toHaveLength(60);
    expect(new Set(requests.map((r) => r.headers['webhook-id'])).size).toBe(60);
    for (const r of requests) receiver.verify(hook.secret, r);
    const log = ok(await h.invoke(alice.key, { resource: 'webhooks', action: 'deliveries', id: hook.id, data: { limit: 100 } }));
    expect(log.count).toBe(60);
    expect(log.items.every((d: any) => d.status === 'delivered' && d.attempts === 1)).toBe(true);
    await Promise.all(workers.map((w) => w.stop()));
    for (const w of workers) expect(w.stderr()).toContain('worker stopping');
  });

  it('runs `goalpost worker` alone on the embedded database, and stops cleanly on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'goalpost-worker-'));
    try {
      const alone = spawnNode(['bin/goalpost.mjs', 'worker'], workerEnv({ DATA_DIR: dataDir }));
      await logged(alone, 'worker started');
      const exit = await alone.stop('SIGTERM');
      expect(exit.code).toBe(0);
      expect(alone.stderr()).toContain('"signal":"SIGTERM"');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('delivers a reminder acknowledged just before the server was killed, from the next process', async () => {
    // On the embedded database the servers have a data directory of their own (PGlite is one process's).
    const dataDir = onRealPostgres() ? undefined : mkdtempSync(join(tmpdir(), 'goalpost-kill-'));
    const env = async () => workerEnv({ PORT: String(await freePort()), ...(dataDir ? { DATA_DIR: dataDir } : { DATABASE_URL: databaseUrl() }) });
    try {
      const first = spawnNode(SERVER_ARGS, await env());
      const [, base] = await first.waitFor(/listening on (http:\/\/localhost:\d+)/);
      const key = dataDir ? (await first.waitFor(/(gp_live_[A-Za-z0-9_-]+)\s/))[1]! : (await h.user()).key;
      const call = async (envelope: object) => {
        const res = await fetch(`${base}/v1`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(envelope) });
        return { status: res.status, body: (await res.json()) as any };
      };
      const hook = (await call({ resource: 'webhooks', action: 'create', data: { url: receiver.url('/killed') } })).body.data;
      const answer = await call({ resource: 'action-items', action: 'create', data: { description: 'survives', due_at: inMs(1500) } });
      expect(answer.status).toBe(201);
      first.child.kill('SIGKILL');
      await first.exited;
      expect(receiver.received.filter((r) => r.path === '/killed')).toHaveLength(0);

      const second = spawnNode(SERVER_ARGS, await env());
      await second.waitFor(/listening/);
      const [request] = await receiver.waitFor(1, { filter: (r) => r.path === '/killed', timeoutMs: 15_000 });
      expect(receiver.verify(hook.secret, request!)).toMatchObject({ type: 'action_item.due', data: { id: answer.body.data.id } });
      await second.stop();
    } finally {
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000); // two servers start one after the other, each on a fresh embedded database: slow on a loaded machine

  it.runIf(onRealPostgres())('delivers a reminder that came due while the database was away, once it is back', async () => {
    const target = new URL(databaseUrl());
    const proxy = createProxy(target.hostname, Number(target.port || 5432));
    await proxy.start();
    const proxied = new URL(databaseUrl());
    proxied.port = String(proxy.port);
    const database = await openDatabase({ databaseUrl: proxied.toString(), poolMax: 2 });
    const own = startWorker({ db: database.db, settings: SETTINGS, logger: createLogger('silent'), pollMs: 50 });
    try {
      const alice = await h.user();
      await webhook(alice);
      const due = inMs(800);
      await item(alice, { due_at: due });
      await proxy.stop();
      await sleep(2500);
      expect(got(alice)).toHaveLength(0);
      const back = Date.now();
      await proxy.start();
      const [request] = await waitFor(alice, 1, 'action_item.due', 15_000);
      expect(request!.at).toBeGreaterThanOrEqual(back);
    } finally {
      await own.stop();
      await database.close();
      await proxy.stop();
    }
  });
});
