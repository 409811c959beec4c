import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sign } from 'hono/jwt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { createAuthenticator } from '../src/auth/authenticate.ts';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import type { Db } from '../src/db/client.ts';
import { createLogger } from '../src/logger.ts';
import {
  createHarness,
  expectError,
  ok,
  TEST_JWT_SECRET,
  TEST_SERVICE_KEY,
  type Answer,
  type Harness,
  appServices,
} from './support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

type User = Awaited<ReturnType<Harness['user']>>;

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const listGoals = (key: string) => h.invoke(key, { resource: 'goals', action: 'list' });
const createKey = (key: string, name = 'k') => h.invoke(key, { resource: 'api-keys', action: 'create', data: { name } });
const revokeKey = (key: string, id: string) => h.invoke(key, { resource: 'api-keys', action: 'delete', id });
const createGoal = (key: string, data: Record<string, unknown>) => h.invoke(key, { resource: 'goals', action: 'create', data });
const activeKeys = async (userId: string) =>
  Number(
    (
      await h.db
        .selectFrom('api_keys')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .executeTakeFirstOrThrow()
    ).n,
  );

/**
 * Another server process on the same database: its own authenticator (own key cache) and app.
 * Built over the harness's connection because the embedded test database accepts one connection only;
 * what matters here is that the two authenticators share nothing but the database.
 */
function otherProcess(db: Db, keyCacheTtlMs: number, cacheMax?: number) {
  const authenticator = createAuthenticator({
    db,
    cacheTtlMs: keyCacheTtlMs,
    cacheMax,
    jwtSecret: TEST_JWT_SECRET,
    serviceKey: TEST_SERVICE_KEY,
  });
  const app = createApp({
    db,
    authenticator,
    rateLimiter: createRateLimiter({ perMinute: 1_000_000, store: 'memory' }),
    logger: createLogger('silent'),
    maxActiveGoals: 3,
    bodyLimitBytes: 1024 * 1024,
    ...appServices(),
  });
  return {
    async invoke(key: string, envelope: unknown): Promise<Answer> {
      const res = await app.request('/v1', {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(envelope),
      });
      return { status: res.status, body: await res.json(), headers: res.headers };
    },
  };
}

describe('API key lifecycle', () => {
  it('creates a key (201, shown once) that works at once', async () => {
    const alice = await h.user();
    const res = await createKey(alice.key, 'ci');
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      success: true,
      data: {
        id: expect.any(String),
        name: 'ci',
        prefix: expect.any(String),
        created_at: expect.stringMatching(/Z$/),
        last_used_at: null,
        revoked_at: null,
        key: expect.stringMatching(/^gp_live_[A-Za-z0-9_-]+$/),
      },
    });
    const key: string = res.body.data.key;
    expect(key.length).toBeGreaterThanOrEqual(40);
    expect(key.startsWith(res.body.data.prefix)).toBe(true);
    expect(res.body.data.prefix.length).toBeLessThan(key.length - 20);
    expect(key).not.toBe(alice.key);

    const used = await listGoals(key);
    expect(used.status).toBe(200);
    expect(used.body).toEqual({ success: true, data: { items: [], count: 0, next_cursor: null } });
  });

  it('lists keys with their prefix and never the key itself', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key, 'second');
    const key: string = created.body.data.key;
    const list = await h.invoke(alice.key, { resource: 'api-keys', action: 'list' });
    expect(list.status).toBe(200);
    expect(list.body.data.count).toBe(2);
    expect(list.body.data.items).toHaveLength(2);
    const { key: _shownOnce, ...withoutKey } = created.body.data;
    expect(list.body.data.items[0]).toEqual(withoutKey); // newest first
    expect(list.body.data.items[1]).toMatchObject({ name: 'default', prefix: alice.key.slice(0, withoutKey.prefix.length) });
    for (const item of list.body.data.items) expect(item).not.toHaveProperty('key');
    const text = JSON.stringify(list.body);
    expect(text).not.toContain(key);
    expect(text).not.toContain(alice.key);
    expect(text).not.toContain(key.slice(withoutKey.prefix.length));
  });

  it('stores only the SHA-256 of the key, in no column the key text itself', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key);
    const key: string = created.body.data.key;
    const row = await h.db.selectFrom('api_keys').selectAll().where('id', '=', created.body.data.id).executeTakeFirstOrThrow();
    expect(row.key_hash).toBe(sha256(key));
    expect(row.user_id).toBe(alice.id);
    const secret = key.slice('gp_live_'.length);
    for (const [column, value] of Object.entries(row)) {
      const text = value instanceof Date ? value.toISOString() : String(value);
      expect(text, column).not.toContain(key);
      expect(text, column).not.toContain(secret);
    }
    // The first key, made outside the API, is stored the same way.
    const first = await h.db.selectFrom('api_keys').select('key_hash').where('key_hash', '=', sha256(alice.key)).executeTakeFirst();
    expect(first).toEqual({ key_hash: sha256(alice.key) });
  });

  it('revoking a key refuses it at once in the same process with KEY_NOT_FOUND', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key);
    const key: string = created.body.data.key;
    expect((await listGoals(key)).status).toBe(200); // now cached by the authenticator

    const revoked = await revokeKey(alice.key, created.body.data.id);
    expect(revoked.status).toBe(200);
    expect(revoked.body.data).toMatchObject({ id: created.body.data.id, revoked_at: expect.stringMatching(/Z$/) });
    expect(revoked.body.data).not.toHaveProperty('key');

    const refused = await listGoals(key);
    expect(expectError(refused, 'KEY_NOT_FOUND', 401).message).toMatch(/revoked|does not exist/);
    expect((await listGoals(alice.key)).status).toBe(200); // the other key is untouched

    // Revoking again changes nothing; the list shows it revoked.
    const again = await revokeKey(alice.key, created.body.data.id);
    expect(again.body.data.revoked_at).toBe(revoked.body.data.revoked_at);
    const list = await h.invoke(alice.key, { resource: 'api-keys', action: 'list' });
    const listed = list.body.data.items.find((k: { id: string }) => k.id === created.body.data.id);
    expect(listed.revoked_at).toBe(revoked.body.data.revoked_at);
  });

  it('a user can revoke only their own keys (NOT_FOUND otherwise)', async () => {
    const alice = await h.user();
    const mallory = await h.user();
    const created = await createKey(alice.key);
    expectError(await revokeKey(mallory.key, created.body.data.id), 'NOT_FOUND', 404);
    expect((await listGoals(created.body.data.key)).status).toBe(200);
    const row = await h.db.selectFrom('api_keys').select('revoked_at').where('id', '=', created.body.data.id).executeTakeFirstOrThrow();
    expect(row.revoked_at).toBeNull();
  });

  it('refuses a sixth active key with CONFLICT; revoking one makes room', async () => {
    const alice = await h.user(); // holds one key already
    const ids: string[] = [];
    for (let i = 2; i <= 5; i++) {
      const res = await createKey(alice.key, `k${i}`);
      expect(res.status).toBe(201);
      ids.push(res.body.data.id);
    }
    expect(await activeKeys(alice.id)).toBe(5);
    const sixth = await createKey(alice.key, 'k6');
    expect(expectError(sixth, 'CONFLICT', 409).message).toMatch(/5/);
    expect(await activeKeys(alice.id)).toBe(5);

    expect((await revokeKey(alice.key, ids[0]!)).status).toBe(200);
    const again = await createKey(alice.key, 'k6');
    expect(again.status).toBe(201);
    expect((await listGoals(again.body.data.key)).status).toBe(200);
    expect(await activeKeys(alice.id)).toBe(5);
    expectError(await createKey(alice.key, 'k7'), 'CONFLICT', 409);
  });

  it('a key revoked by another process keeps working here until the cache TTL, then stops', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key);
    const key: string = created.body.data.key;
    const shortTtl = otherProcess(h.db, 200);
    const revoker = otherProcess(h.db, 30_000);

    // Both this process (TTL 30 s) and the short-TTL one have verified the key.
    expect((await listGoals(key)).status).toBe(200);
    expect((await shortTtl.invoke(key, { resource: 'goals', action: 'list' })).status).toBe(200);

    const revoked = await revoker.invoke(alice.key, { resource: 'api-keys', action: 'delete', id: created.body.data.id });
    expect(revoked.status).toBe(200);
    expectError(await revoker.invoke(key, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);

    // This process has not heard of it: its cache (30 s) still trusts the key.
    expect((await listGoals(key)).status).toBe(200);

    // Past the 200 ms TTL, the other one asks the database again and refuses it.
    await sleep(250);
    expectError(await shortTtl.invoke(key, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
  });

  it('a refused key is refused from memory until the cache TTL: a key restored by hand works only after it', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key);
    const key: string = created.body.data.key;
    const here = otherProcess(h.db, 200);
    ok(await revokeKey(alice.key, created.body.data.id));
    expectError(await here.invoke(key, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
    // Restored behind the process's back: within the TTL it does not ask the database again...
    await h.db.updateTable('api_keys').set({ revoked_at: null }).where('id', '=', created.body.data.id).execute();
    expectError(await here.invoke(key, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
    // ...and past it, it does.
    await sleep(250);
    expect((await here.invoke(key, { resource: 'goals', action: 'list' })).status).toBe(200);
  });

  it('refused keys are kept apart: a flood of made-up keys pushes no verified key out of the cache', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key);
    const key: string = created.body.data.key;
    const here = otherProcess(h.db, 30_000, 2);
    ok(await here.invoke(key, { resource: 'goals', action: 'list' }));
    for (let i = 0; i < 5; i++) {
      expectError(await here.invoke(`gp_live_${randomBytes(32).toString('base64url')}`, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
    }
    // Revoked behind the process's back: a key still in the cache is still trusted here (until the TTL).
    await h.db.updateTable('api_keys').set({ revoked_at: new Date() }).where('id', '=', created.body.data.id).execute();
    ok(await here.invoke(key, { resource: 'goals', action: 'list' }));
  });

  it('keeps last_used_at null until the authenticator flushes, then sets it', async () => {
    const alice = await h.user();
    const created = await createKey(alice.key);
    const id: string = created.body.data.id;
    const lastUsed = async () =>
      (await h.db.selectFrom('api_keys').select('last_used_at').where('id', '=', id).executeTakeFirstOrThrow()).last_used_at;

    const before = Date.now();
    expect((await listGoals(created.body.data.key)).status).toBe(200);
    expect((await listGoals(created.body.data.key)).status).toBe(200);
    expect(await lastUsed()).toBeNull();

    await h.authenticator.flushLastUsed();
    const at = await lastUsed();
    expect(at).toBeInstanceOf(Date);
    expect((at as Date).getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect((at as Date).getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    const list = await h.invoke(alice.key, { resource: 'api-keys', action: 'list' });
    expect(list.body.data.items.find((k: { id: string }) => k.id === id).last_used_at).toBe((at as Date).toISOString());
  });
});

describe('credentials', () => {
  it('answers UNAUTHORIZED without credentials or with a non-Bearer Authorization', async () => {
    expectError(await h.invoke(undefined, { resource: 'goals', action: 'list' }), 'UNAUTHORIZED', 401);
    const basic = await h.invoke(undefined, { resource: 'goals', action: 'list' }, { authorization: 'Basic dXNlcjpwYXNz' });
    expectError(basic, 'UNAUTHORIZED', 401);
    expectError(await h.request('/v1/goals', { method: 'GET' }), 'UNAUTHORIZED', 401);
  });

  it('answers INVALID_KEY_PREFIX for a key without a known prefix', async () => {
    const res = await h.invoke('sk_foo', { resource: 'goals', action: 'list' });
    expect(expectError(res, 'INVALID_KEY_PREFIX', 401).message).toContain('gp_live_');
    expectError(await h.invoke(undefined, { resource: 'goals', action: 'list' }, { 'x-api-key': 'sk_foo' }), 'INVALID_KEY_PREFIX', 401);
  });

  it('answers KEY_NOT_FOUND for an unknown gp_live_ key', async () => {
    const key = `gp_live_${randomBytes(32).toString('base64url')}`;
    expectError(await h.invoke(key, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
  });

  it('accepts the key in X-API-Key', async () => {
    const alice = await h.user();
    await createGoal(alice.key, { name: 'Mine' });
    const res = await h.invoke(undefined, { resource: 'goals', action: 'list' }, { 'x-api-key': alice.key });
    expect(res.status).toBe(200);
    expect(res.body.data.items.map((g: { name: string }) => g.name)).toEqual(['Mine']);
  });
});

describe('session JWTs', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const jwtFor = (sub: unknown, options: { exp?: number; secret?: string } = {}) =>
    sign({ sub, iat: now(), exp: options.exp ?? now() + 300 } as Record<string, unknown> as never, options.secret ?? TEST_JWT_SECRET);

  it('a valid token acts as its user', async () => {
    const alice = await h.user();
    await createGoal(alice.key, { name: 'Alice goal' });
    const token = await jwtFor(alice.id);
    const res = await listGoals(token);
    expect(res.status).toBe(200);
    expect(res.body.data.items.map((g: { name: string }) => g.name)).toEqual(['Alice goal']);
    const created = await createGoal(token, { name: 'Via session' });
    expect(created.status).toBe(201);
    const row = await h.db.selectFrom('goals').select('owner_id').where('id', '=', created.body.data.id).executeTakeFirstOrThrow();
    expect(row.owner_id).toBe(alice.id);
  });

  it('refuses expired, badly signed, malformed and sub-less tokens with INVALID_TOKEN', async () => {
    const alice = await h.user();
    const cases: [string, string][] = [
      ['expired', await jwtFor(alice.id, { exp: now() - 60 })],
      ['bad signature', await jwtFor(alice.id, { secret: 'another-secret-that-is-at-least-32-characters!' })],
      ['garbage', 'aaaa.bbbb.cccc'],
      ['sub not a uuid', await jwtFor('alice')],
      ['sub missing', await jwtFor(undefined)],
      ['unknown user', await jwtFor(randomUUID())],
      ['alg none', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: alice.id, exp: now() + 300 })}.`],
      ['another algorithm', await sign({ sub: alice.id, exp: now() + 300 }, TEST_JWT_SECRET, 'HS512')],
      ['no expiry', await sign({ sub: alice.id, iat: now() }, TEST_JWT_SECRET, 'HS256')],
    ];
    for (const [label, token] of cases) {
      const res = await listGoals(token);
      expect(res.status, label).toBe(401);
      expectError(res, 'INVALID_TOKEN', 401);
    }
    // Alice's token with its payload swapped for Bob's.
    const bob = await h.user();
    const [head, , sig] = (await jwtFor(alice.id)).split('.');
    const forged = `${head}.${b64url({ sub: bob.id, iat: now(), exp: now() + 300 })}.${sig}`;
    expectError(await listGoals(forged), 'INVALID_TOKEN', 401);
  });
});

describe('service key', () => {
  const asService = (userId: string | undefined, envelope: unknown) =>
    h.invoke(TEST_SERVICE_KEY, envelope, userId === undefined ? {} : { 'x-user-id': userId });

  it('acts as the user named in x-user-id', async () => {
    const alice = await h.user();
    const bob = await h.user();
    await createGoal(alice.key, { name: 'Alice goal' });
    await createGoal(bob.key, { name: 'Bob goal' });
    const res = await asService(alice.id, { resource: 'goals', action: 'list' });
    expect(res.status).toBe(200);
    expect(res.body.data.items.map((g: { name: string }) => g.name)).toEqual(['Alice goal']);
    const created = await asService(bob.id, { resource: 'goals', action: 'create', data: { name: 'For Bob' } });
    expect(created.status).toBe(201);
    const row = await h.db.selectFrom('goals').select('owner_id').where('id', '=', created.body.data.id).executeTakeFirstOrThrow();
    expect(row.owner_id).toBe(bob.id);
  });

  it('needs a UUID in x-user-id (VALIDATION_ERROR) naming a user who exists (NOT_FOUND)', async () => {
    const missing = expectError(await asService(undefined, { resource: 'goals', action: 'list' }), 'VALIDATION_ERROR', 400);
    expect(missing.message).toMatch(/x-user-id/);
    const bad = expectError(await asService('not-a-uuid', { resource: 'goals', action: 'list' }), 'VALIDATION_ERROR', 400);
    expect(bad).toMatchObject({ details: [{ path: ['headers', 'x-user-id'] }] });
    expectError(await asService(randomUUID(), { resource: 'goals', action: 'list' }), 'NOT_FOUND', 404);
  });
});

describe('roles', () => {
  /** A goal and an agent owned by `user`, written straight to the database. */
  async function seed(user: User) {
    const goal = await h.db
      .insertInto('goals')
      .values({ owner_id: user.id, name: 'Seeded goal', lead_fields: [] as never })
      .returning('id')
      .executeTakeFirstOrThrow();
    const agent = await h.db
      .insertInto('agents')
      .values({ owner_id: user.id, name: 'Seeded agent' })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { goalId: goal.id, agentId: agent.id };
  }

  it('consumer reads (list, get) but every write is FORBIDDEN and writes nothing', async () => {
    const reader = await h.user('consumer');
    const { goalId, agentId } = await seed(reader);

    const list = await listGoals(reader.key);
    expect(list.status).toBe(200);
    expect(list.body.data.items.map((g: { id: string }) => g.id)).toEqual([goalId]);
    const got = await h.invoke(reader.key, { resource: 'goals', action: 'get', id: goalId });
    expect(got.status).toBe(200);
    expect(got.body.data).toMatchObject({ id: goalId, name: 'Seeded goal' });
    expect((await h.invoke(reader.key, { resource: 'agents', action: 'list' })).status).toBe(200);
    expect((await h.invoke(reader.key, { resource: 'api-keys', action: 'list' })).status).toBe(200);

    const writes = [
      { resource: 'goals', action: 'create', data: { name: 'Nope' } },
      { resource: 'goals', action: 'update', id: goalId, data: { name: 'Changed' } },
      { resource: 'goals', action: 'delete', id: goalId },
      { resource: 'goals', action: 'attach', data: { goalId, agentId } },
      { resource: 'agents', action: 'create', data: { name: 'Nope' } },
      { resource: 'api-keys', action: 'create', data: { name: 'Nope' } },
    ];
    for (const envelope of writes) {
      const res = await h.invoke(reader.key, envelope);
      expect(res.status, `${envelope.resource}.${envelope.action}`).toBe(403);
      expect(expectError(res, 'FORBIDDEN', 403).message).toMatch(/read-only/);
    }

    const goals = await h.db.selectFrom('goals').select(['id', 'name']).where('owner_id', '=', reader.id).execute();
    expect(goals).toEqual([{ id: goalId, name: 'Seeded goal' }]);
    const agents = await h.db.selectFrom('agents').select('id').where('owner_id', '=', reader.id).execute();
    expect(agents).toEqual([{ id: agentId }]);
    const attachments = await h.db.selectFrom('agent_goal_attachments').select('goal_id').where('agent_id', '=', agentId).execute();
    expect(attachments).toEqual([]);
    expect(await activeKeys(reader.id)).toBe(1);
  });

  it('internal_admin in adminMode sees every account, with owner', async () => {
    const admin = await h.user('internal_admin');
    const alice = await h.user('standard_user', 'Alice Example');
    const marker = `admin-visible-${randomUUID()}`;
    const created = await createGoal(alice.key, { name: marker });
    const goalId: string = created.body.data.id;
    const owner = { id: alice.id, email: alice.email, name: 'Alice Example' };

    // Without adminMode the admin is an ordinary user.
    expectError(await h.invoke(admin.key, { resource: 'goals', action: 'get', id: goalId }), 'NOT_FOUND', 404);
    const own = await h.invoke(admin.key, { resource: 'goals', action: 'list', data: { search: marker } });
    expect(own.body.data).toEqual({ items: [], count: 0, next_cursor: null });

    const list = await h.invoke(admin.key, { resource: 'goals', action: 'list', data: { adminMode: true, search: marker } });
    expect(list.status).toBe(200);
    expect(list.body.data.count).toBe(1);
    const { roadmap: _roadmap, ...listed } = created.body.data;
    expect(list.body.data.items).toEqual([{ ...listed, owner }]);

    const got = await h.invoke(admin.key, { resource: 'goals', action: 'get', id: goalId, data: { adminMode: true } });
    expect(got.status).toBe(200);
    expect(got.body.data).toEqual({ ...created.body.data, owner });

    // The owner's own answers carry no owner.
    const mine = await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goalId });
    expect(mine.body.data).not.toHaveProperty('owner');
  });

  it('internal_admin with data.userId acts as that user', async () => {
    const admin = await h.user('internal_admin');
    const alice = await h.user('standard_user', 'Alice');
    const created = await h.invoke(admin.key, { resource: 'goals', action: 'create', data: { userId: alice.id, name: 'Made for Alice' } });
    expect(created.status).toBe(201);
    expect(created.body.data.owner).toEqual({ id: alice.id, email: alice.email, name: 'Alice' });
    const row = await h.db.selectFrom('goals').select('owner_id').where('id', '=', created.body.data.id).executeTakeFirstOrThrow();
    expect(row.owner_id).toBe(alice.id);
    const seen = await listGoals(alice.key);
    expect(seen.body.data.items.map((g: { id: string }) => g.id)).toEqual([created.body.data.id]);
    const adminOwn = await listGoals(admin.key);
    expect(adminOwn.body.data.count).toBe(0);

    const asAlice = await h.invoke(admin.key, { resource: 'goals', action: 'list', data: { userId: alice.id } });
    expect(asAlice.body.data.items.map((g: { id: string }) => g.id)).toEqual([created.body.data.id]);

    const nobody = await h.invoke(admin.key, { resource: 'goals', action: 'list', data: { userId: randomUUID() } });
    expectError(nobody, 'NOT_FOUND', 404);
  });

  it('internal_admin acting as a user lists their keys but cannot mint or revoke them', async () => {
    const admin = await h.user('internal_admin');
    const bob = await h.user();
    const listed = await h.invoke(admin.key, { resource: 'api-keys', action: 'list', data: { userId: bob.id } });
    expect(listed.status).toBe(200);
    expect(listed.body.data.count).toBe(1);
    const minted = await h.invoke(admin.key, { resource: 'api-keys', action: 'create', data: { userId: bob.id, name: 'x' } });
    expectError(minted, 'FORBIDDEN', 403);
    const keyId = listed.body.data.items[0].id;
    const revoked = await h.invoke(admin.key, { resource: 'api-keys', action: 'delete', id: keyId, data: { userId: bob.id } });
    expectError(revoked, 'FORBIDDEN', 403);
    const rows = await h.db.selectFrom('api_keys').select(['id', 'revoked_at']).where('user_id', '=', bob.id).execute();
    expect(rows).toEqual([{ id: keyId, revoked_at: null }]);
    const adminOwn = await h.invoke(admin.key, { resource: 'api-keys', action: 'list', data: { adminMode: true } });
    expect(adminOwn.body.data.items.every((k: { id: string }) => k.id !== keyId)).toBe(true);
  });

  it('anyone but internal_admin passing adminMode or userId is FORBIDDEN', async () => {
    const alice = await h.user();
    const bob = await h.user();
    const reader = await h.user('consumer');
    await createGoal(bob.key, { name: 'Bob goal' });
    for (const user of [alice, reader]) {
      const admin = await h.invoke(user.key, { resource: 'goals', action: 'list', data: { adminMode: true } });
      expect(expectError(admin, 'FORBIDDEN', 403).message).toMatch(/internal_admin/);
      const actAs = await h.invoke(user.key, { resource: 'goals', action: 'list', data: { userId: bob.id } });
      expectError(actAs, 'FORBIDDEN', 403);
      // Passing the field at all is for admins, even to say no.
      const off = await h.invoke(user.key, { resource: 'goals', action: 'list', data: { adminMode: false } });
      expectError(off, 'FORBIDDEN', 403);
    }
    const write = await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { userId: bob.id, name: 'Sneaky' } });
    expectError(write, 'FORBIDDEN', 403);
    const bobGoals = await h.db.selectFrom('goals').select('name').where('owner_id', '=', bob.id).execute();
    expect(bobGoals).toEqual([{ name: 'Bob goal' }]);
    const aliceGoals = await h.db.selectFrom('goals').select('name').where('owner_id', '=', alice.id).execute();
    expect(aliceGoals).toEqual([]);
  });
});
