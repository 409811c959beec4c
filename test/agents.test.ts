import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, expectError, ok, type Harness } from './support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const agents = (key: string, action: string, rest: { id?: string; data?: Record<string, unknown> } = {}) =>
  h.invoke(key, { resource: 'agents', action, ...rest });
const create = (key: string, data: Record<string, unknown>) => agents(key, 'create', { data });
const tick = (ms = 3) => new Promise((r) => setTimeout(r, ms));

describe('agents CRUD', () => {
  it('creates an agent with 201 and answers the whole agent object', async () => {
    const alice = await h.user();
    const res = await create(alice.key, { name: 'Voice', description: 'Answers the phone' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      success: true,
      data: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'Voice',
        description: 'Answers the phone',
        is_active: true,
        attached_goal_id: null,
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
        updated_at: expect.stringMatching(/Z$/),
      },
    });
    expect(res.body.data.created_at).toBe(res.body.data.updated_at);
    const row = await h.db.selectFrom('agents').selectAll().where('id', '=', res.body.data.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ owner_id: alice.id, name: 'Voice', is_active: true });

    const minimal = ok(await create(alice.key, { name: '  Chat  ', is_active: false }), 201);
    expect(minimal).toMatchObject({ name: 'Chat', description: null, is_active: false });
  });

  it('gets an agent as create answered it', async () => {
    const alice = await h.user();
    const created = ok(await create(alice.key, { name: 'Voice' }), 201);
    const got = await agents(alice.key, 'get', { id: created.id });
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ success: true, data: created });
    expectError(await agents(alice.key, 'get', { id: randomUUID() }), 'NOT_FOUND', 404);
  });

  it('updates any subset of name, description and is_active, moving updated_at', async () => {
    const alice = await h.user();
    const created = ok(await create(alice.key, { name: 'Voice', description: 'old' }), 201);
    await tick();
    const renamed = ok(await agents(alice.key, 'update', { id: created.id, data: { name: 'Voice 2' } }));
    expect(renamed).toEqual({ ...created, name: 'Voice 2', updated_at: expect.any(String) });
    expect(Date.parse(renamed.updated_at)).toBeGreaterThan(Date.parse(created.updated_at));

    const cleared = ok(await agents(alice.key, 'update', { id: created.id, data: { description: null, is_active: false } }));
    expect(cleared).toMatchObject({ name: 'Voice 2', description: null, is_active: false, created_at: created.created_at });
    expect(ok(await agents(alice.key, 'get', { id: created.id }))).toEqual(cleared);

    // attached_goal_id is carried by update's answer too.
    const goal = ok(await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'G' } }), 201);
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'attach', data: { goalId: goal.id, agentId: created.id } }));
    expect(ok(await agents(alice.key, 'update', { id: created.id, data: { is_active: true } })).attached_goal_id).toBe(goal.id);

    expectError(await agents(alice.key, 'update', { id: randomUUID(), data: { name: 'X' } }), 'NOT_FOUND', 404);
  });

  it('deletes an agent once; afterwards it is NOT_FOUND', async () => {
    const alice = await h.user();
    const created = ok(await create(alice.key, { name: 'Voice' }), 201);
    const deleted = await agents(alice.key, 'delete', { id: created.id });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ success: true, data: { id: created.id, deleted: true } });
    expectError(await agents(alice.key, 'get', { id: created.id }), 'NOT_FOUND', 404);
    expectError(await agents(alice.key, 'delete', { id: created.id }), 'NOT_FOUND', 404);
    expect(await h.db.selectFrom('agents').select('id').where('id', '=', created.id).execute()).toEqual([]);
  });
});

describe('agents.list', () => {
  it('pages newest first with a cursor and counts every agent', async () => {
    const alice = await h.user();
    const names = ['a1', 'a2', 'a3', 'a4', 'a5'];
    for (const name of names) {
      ok(await create(alice.key, { name }), 201);
      await tick();
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = ok(await agents(alice.key, 'list', { data: { limit: 2, ...(cursor && { cursor }) } }));
      pages++;
      expect(page.count).toBe(5);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((a: { name: string }) => a.name));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...names].reverse());

    const all = ok(await agents(alice.key, 'list'));
    expect(all).toMatchObject({ count: 5, next_cursor: null });
    expect(all.items.map((a: { name: string }) => a.name)).toEqual([...names].reverse());
    expect(all.items[0]).toEqual({
      id: expect.any(String),
      name: 'a5',
      description: null,
      is_active: true,
      attached_goal_id: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
  });

  it('searches name and description case-insensitively, wildcards taken literally, and counts the matches', async () => {
    const alice = await h.user();
    ok(await create(alice.key, { name: 'Sales 100%', description: 'Outbound' }), 201);
    ok(await create(alice.key, { name: 'Support', description: 'Handles 100 tickets' }), 201);
    ok(await create(alice.key, { name: 'Scheduler_bot', description: null }), 201);
    const search = async (s: string) => ok(await agents(alice.key, 'list', { data: { search: s } }));
    const names = (page: { items: { name: string }[] }) => page.items.map((a) => a.name).sort();

    expect(names(await search('SALES'))).toEqual(['Sales 100%']);
    expect(names(await search('outbound'))).toEqual(['Sales 100%']);
    expect(names(await search('100'))).toEqual(['Sales 100%', 'Support']);
    expect((await search('100')).count).toBe(2);
    expect(names(await search('100%'))).toEqual(['Sales 100%']);
    expect(names(await search('r_b'))).toEqual(['Scheduler_bot']);
    expect(await search('s_p')).toEqual({ items: [], count: 0, next_cursor: null });

    const page = ok(await agents(alice.key, 'list', { data: { search: '100', limit: 1 } }));
    expect(page.count).toBe(2);
    expect(page.items).toHaveLength(1);
    expect(page.next_cursor).toEqual(expect.any(String));
    const rest = ok(await agents(alice.key, 'list', { data: { search: '100', limit: 1, cursor: page.next_cursor } }));
    expect(rest).toMatchObject({ count: 2, next_cursor: null });
    expect(rest.items[0].id).not.toBe(page.items[0].id);
  });

  it('refuses an out-of-range limit, a foreign cursor and unknown filters', async () => {
    const alice = await h.user();
    for (const limit of [0, 101, 1.5]) {
      const res = await agents(alice.key, 'list', { data: { limit } });
      expect(expectError(res, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'limit'] }] });
    }
    expectError(await agents(alice.key, 'list', { data: { cursor: 'not-a-cursor' } }), 'VALIDATION_ERROR', 400);
    const unknown = await agents(alice.key, 'list', { data: { status: 'active' } });
    expect(expectError(unknown, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data'], type: 'unrecognized_keys' }] });
    expect(expectError(await agents(alice.key, 'list', { data: { search: '' } }), 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data', 'search'] }],
    });
  });
});

describe('agents validation', () => {
  it('refuses a name too long, empty or missing, and a description too long', async () => {
    const alice = await h.user();
    expect(ok(await create(alice.key, { name: 'x'.repeat(200) }), 201).name).toHaveLength(200);

    const long = expectError(await create(alice.key, { name: 'x'.repeat(201) }), 'VALIDATION_ERROR', 400);
    expect(long).toMatchObject({ message: expect.stringMatching(/^data\.name: /), details: [{ path: ['data', 'name'], type: 'too_big' }] });
    expect(expectError(await create(alice.key, { name: '   ' }), 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data', 'name'], type: 'too_small' }],
    });
    expect(expectError(await create(alice.key, {}), 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data', 'name'], type: 'invalid_type' }],
    });
    expect(expectError(await create(alice.key, { name: 42 }), 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data', 'name'], type: 'invalid_type' }],
    });
    expect(expectError(await create(alice.key, { name: 'A', description: 'd'.repeat(5001) }), 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data', 'description'], type: 'too_big' }],
    });
    expect(expectError(await create(alice.key, { name: 'A', is_active: 'yes' }), 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data', 'is_active'], type: 'invalid_type' }],
    });
    // Nothing was stored by the refused calls.
    expect(ok(await agents(alice.key, 'list')).count).toBe(1);
  });

  it('refuses unknown fields, on create and update', async () => {
    const alice = await h.user();
    const created = await create(alice.key, { name: 'A', colour: 'red' });
    expect(expectError(created, 'VALIDATION_ERROR', 400)).toMatchObject({
      details: [{ path: ['data'], type: 'unrecognized_keys' }],
    });
    expect((created.body.error.details as { message: string }[])[0]!.message).toMatch(/colour/);

    const agent = ok(await create(alice.key, { name: 'A' }), 201);
    const updated = await agents(alice.key, 'update', { id: agent.id, data: { attached_goal_id: randomUUID() } });
    const unknownError = expectError(updated, 'VALIDATION_ERROR', 400) as unknown as { details: unknown[] };
    expect(unknownError.details).toEqual([
      { path: ['data'], type: 'unrecognized_keys', message: expect.stringMatching(/attached_goal_id/) },
    ]);
    const tooLong = await agents(alice.key, 'update', { id: agent.id, data: { name: 'y'.repeat(201) } });
    expect(expectError(tooLong, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'name'], type: 'too_big' }] });
    expect(ok(await agents(alice.key, 'get', { id: agent.id })).name).toBe('A');
  });

  it('refuses an empty update and an id that is not a UUID', async () => {
    const alice = await h.user();
    const agent = ok(await create(alice.key, { name: 'A' }), 201);
    const empty = expectError(await agents(alice.key, 'update', { id: agent.id, data: {} }), 'VALIDATION_ERROR', 400);
    expect(empty.message).toMatch(/at least one field/);
    const badId = await agents(alice.key, 'get', { id: 'agent-1' });
    expect(expectError(badId, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['id'] }] });
    const noId = await agents(alice.key, 'delete', {});
    expect(expectError(noId, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['id'] }] });
    const idOnCreate = await h.invoke(alice.key, { resource: 'agents', action: 'create', id: randomUUID(), data: { name: 'A' } });
    expect(expectError(idOnCreate, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['id'] }] });
    expectError(await agents(alice.key, 'rename', { id: agent.id }), 'INVALID_ACTION', 400);
  });
});

describe('agents in admin mode', () => {
  it("adminMode lists and gets every account's agents, each carrying owner {id, email, name}", async () => {
    const admin = await h.user('internal_admin', 'Ada Admin');
    const alice = await h.user('standard_user', 'Alice');
    const bob = await h.user('standard_user');
    const token = randomUUID().slice(0, 8);
    const aliceAgent = ok(await create(alice.key, { name: `${token} alice` }), 201);
    await tick(); // newest first: keep the two creations in distinct milliseconds
    const bobAgent = ok(await create(bob.key, { name: `${token} bob` }), 201);

    const listed = ok(await agents(admin.key, 'list', { data: { adminMode: true, search: token } }));
    expect(listed.count).toBe(2);
    expect(listed.items).toEqual([
      { ...bobAgent, owner: { id: bob.id, email: bob.email, name: null } },
      { ...aliceAgent, owner: { id: alice.id, email: alice.email, name: 'Alice' } },
    ]);

    const got = ok(await agents(admin.key, 'get', { id: aliceAgent.id, data: { adminMode: true } }));
    expect(got).toEqual({ ...aliceAgent, owner: { id: alice.id, email: alice.email, name: 'Alice' } });

    // Without adminMode the admin is an ordinary user: no access, no owner field.
    expectError(await agents(admin.key, 'get', { id: aliceAgent.id }), 'NOT_FOUND', 404);
    expect(ok(await agents(admin.key, 'list', { data: { search: token } }))).toEqual({ items: [], count: 0, next_cursor: null });
    const own = ok(await create(admin.key, { name: 'Admin agent' }), 201);
    expect(own).not.toHaveProperty('owner');
  });

  it("adminMode updates and deletes another account's agent; the owner does not change", async () => {
    const admin = await h.user('internal_admin', 'Ada Admin');
    const alice = await h.user('standard_user', 'Alice');
    const agent = ok(await create(alice.key, { name: 'Voice' }), 201);
    const updated = ok(await agents(admin.key, 'update', { id: agent.id, data: { adminMode: true, name: 'Renamed' } }));
    expect(updated).toMatchObject({ id: agent.id, name: 'Renamed', owner: { id: alice.id, email: alice.email, name: 'Alice' } });
    expect(ok(await agents(alice.key, 'get', { id: agent.id }))).toMatchObject({ name: 'Renamed' });
    expect(ok(await agents(alice.key, 'get', { id: agent.id }))).not.toHaveProperty('owner');

    ok(await agents(admin.key, 'delete', { id: agent.id, data: { adminMode: true } }));
    expectError(await agents(alice.key, 'get', { id: agent.id }), 'NOT_FOUND', 404);
  });

  it('adminMode create makes an agent owned by the admin; userId acts as that user', async () => {
    const admin = await h.user('internal_admin', 'Ada Admin');
    const alice = await h.user('standard_user', 'Alice');
    const mine = ok(await create(admin.key, { name: 'Admin agent', adminMode: true }), 201);
    expect(mine.owner).toEqual({ id: admin.id, email: admin.email, name: 'Ada Admin' });

    const forAlice = ok(await create(admin.key, { name: 'For Alice', userId: alice.id }), 201);
    expect(forAlice.owner).toEqual({ id: alice.id, email: alice.email, name: 'Alice' });
    const { owner: _owner, ...plain } = forAlice;
    expect(ok(await agents(alice.key, 'get', { id: forAlice.id }))).toEqual(plain);

    const asAlice = ok(await agents(admin.key, 'list', { data: { userId: alice.id } }));
    expect(asAlice.count).toBe(1);
    expect(asAlice.items.map((a: { id: string }) => a.id)).toEqual([forAlice.id]);

    expectError(await agents(admin.key, 'list', { data: { userId: randomUUID() } }), 'NOT_FOUND', 404);
    const badUserId = await agents(admin.key, 'list', { data: { userId: 'alice' } });
    expect(expectError(badUserId, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'userId'] }] });
  });

  it('a standard user or a consumer passing adminMode or userId gets FORBIDDEN, and nothing happens', async () => {
    const alice = await h.user('standard_user', 'Alice');
    const bob = await h.user();
    const consumer = await h.user('consumer');
    const agent = ok(await create(alice.key, { name: 'Voice' }), 201);

    expectError(await agents(bob.key, 'list', { data: { adminMode: true } }), 'FORBIDDEN', 403);
    expectError(await agents(bob.key, 'get', { id: agent.id, data: { adminMode: true } }), 'FORBIDDEN', 403);
    expectError(await agents(bob.key, 'update', { id: agent.id, data: { adminMode: true, name: 'X' } }), 'FORBIDDEN', 403);
    expectError(await agents(bob.key, 'delete', { id: agent.id, data: { adminMode: true } }), 'FORBIDDEN', 403);
    expectError(await create(bob.key, { name: 'X', adminMode: true }), 'FORBIDDEN', 403);
    expectError(await agents(bob.key, 'list', { data: { userId: alice.id } }), 'FORBIDDEN', 403);
    expectError(await agents(consumer.key, 'list', { data: { adminMode: true } }), 'FORBIDDEN', 403);
    expectError(await agents(alice.key, 'list', { data: { adminMode: true } }), 'FORBIDDEN', 403);

    expect(ok(await agents(alice.key, 'get', { id: agent.id }))).toEqual(agent);
    expect(ok(await agents(bob.key, 'list'))).toEqual({ items: [], count: 0, next_cursor: null });
  });

  it('a consumer may list and get but not write', async () => {
    const consumer = await h.user('consumer');
    expect(ok(await agents(consumer.key, 'list'))).toEqual({ items: [], count: 0, next_cursor: null });
    expectError(await create(consumer.key, { name: 'X' }), 'FORBIDDEN', 403);
    expectError(await agents(consumer.key, 'get', { id: randomUUID() }), 'NOT_FOUND', 404);
    expectError(await agents(consumer.key, 'delete', { id: randomUUID() }), 'FORBIDDEN', 403);
    expect(await h.db.selectFrom('agents').select('id').where('owner_id', '=', consumer.id).execute()).toEqual([]);
  });
});
