import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, expectError, type Harness } from './support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const create = (key: string, data: Record<string, unknown>) => h.invoke(key, { resource: 'goals', action: 'create', data });

describe('goals CRUD', () => {
  it('creates a goal with 201 and answers the whole goal object', async () => {
    const alice = await h.user();
    const res = await create(alice.key, {
      name: 'Qualify leads',
      description: 'Collect contact details',
      priority: 10,
      lead_fields: [
        { key: 'email', label: 'Email', type: 'email', required: true },
        { key: 'plan', label: 'Plan', type: 'select', required: false, options: ['basic', 'pro'] },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      success: true,
      data: {
        id: expect.any(String),
        agent_id: null,
        name: 'Qualify leads',
        description: 'Collect contact details',
        status: 'active',
        is_active: true,
        priority: 10,
        lead_fields: [
          { key: 'email', label: 'Email', type: 'email', required: true },
          { key: 'plan', label: 'Plan', type: 'select', required: false, options: ['basic', 'pro'] },
        ],
        goal_type: 'scale',
        target_value: null,
        current_value: 0,
        min_value: 0,
        max_value: 10,
        unit: null,
        target_date: null,
        progress: 0,
        roadmap: null,
        created_at: expect.stringMatching(/Z$/),
        updated_at: expect.stringMatching(/Z$/),
      },
    });
  });

  it('stores every field it is given, and reads them back the same', async () => {
    const alice = await h.user();
    const agent = await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Agent' } });
    const roadmap = {
      nodes: [
        { id: 'a', label: 'Start', completed: true, position: { x: 0, y: 0 } },
        { id: 'b', label: 'Finish', completed: false, position: { x: 250, y: 0 } },
      ],
      edges: [{ id: 'e', source: 'a', target: 'b' }],
    };
    // Stored and answered as sent, but for the date (normalised to UTC).
    const same = {
      agent_id: agent.body.data.id,
      status: 'inactive',
      priority: 0,
      lead_fields: [],
      goal_type: 'numeric',
      target_value: 2.5,
      current_value: -1.25,
      min_value: -3,
      max_value: 1e6,
      unit: 'kW',
      roadmap,
    };
    const res = await create(alice.key, { ...same, name: 'Numeric', description: 'With everything', target_date: '2031-05-06T07:08:09.123+02:00' });
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ ...same, is_active: false, target_date: '2031-05-06T05:08:09.123Z', progress: 50 });
    const got = await h.invoke(alice.key, { resource: 'goals', action: 'get', id: res.body.data.id });
    expect(got.body.data).toEqual(res.body.data);
  });

  it("refuses an agent of somebody else (or none) with AGENT_NOT_FOUND, and writes nothing", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const bobsAgent = await h.invoke(bob.key, { resource: 'agents', action: 'create', data: { name: 'Bob’s' } });
    for (const status of ['active', 'inactive']) {
      for (const agent_id of [bobsAgent.body.data.id, '00000000-0000-4000-8000-000000000000']) {
        expectError(await create(alice.key, { name: 'Not mine', agent_id, status }), 'AGENT_NOT_FOUND', 404);
      }
    }
    const list = await h.invoke(alice.key, { resource: 'goals', action: 'list' });
    expect(list.body.data.count).toBe(0);
  });

  it('takes UUIDs in upper case as the same ids, and answers them in lower case', async () => {
    const alice = await h.user();
    const agent = (await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'A' } })).body.data;
    const up = (id: string) => id.toUpperCase();
    const goal = await create(alice.key, { name: 'G', agent_id: up(agent.id) });
    expect(goal.status).toBe(201);
    expect(goal.body.data.agent_id).toBe(agent.id);
    const got = await h.invoke(alice.key, { resource: 'goals', action: 'get', id: up(goal.body.data.id) });
    expect(got.body.data.id).toBe(goal.body.data.id);
    const other = await create(alice.key, { name: 'H' });
    const attach = (goalId: string) =>
      h.invoke(alice.key, { resource: 'goals', action: 'attach', data: { goalId: up(goalId), agentId: up(agent.id) } });
    expect((await attach(goal.body.data.id)).body.data).toMatchObject({ agent_id: agent.id, goal_id: goal.body.data.id });
    expect((await attach(other.body.data.id)).body.data.replaced_goal_id).toBe(goal.body.data.id);
    const item = await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', goal_id: up(goal.body.data.id) } });
    expect(item.status).toBe(201);
    expect(item.body.data.goal_id).toBe(goal.body.data.id);
    const batch = await h.invoke(alice.key, {
      resource: 'action-items',
      action: 'batch-create',
      data: { action_items: [{ description: 'y', goal_id: up(goal.body.data.id) }] },
    });
    expect(batch.status).toBe(201);
  });

  it('gets, updates and deletes a goal', async () => {
    const alice = await h.user();
    const { body } = await create(alice.key, { name: 'A' });
    const id = body.data.id;
    const got = await h.invoke(alice.key, { resource: 'goals', action: 'get', id });
    expect(got.status).toBe(200);
    expect(got.body.data).toEqual(body.data);

    const updated = await h.invoke(alice.key, { resource: 'goals', action: 'update', id, data: { name: 'B', status: 'completed' } });
    expect(updated.status).toBe(200);
    expect(updated.body.data).toMatchObject({ name: 'B', status: 'completed', is_active: false, progress: 100 });

    const deleted = await h.invoke(alice.key, { resource: 'goals', action: 'delete', id });
    expect(deleted.body).toEqual({ success: true, data: { id, deleted: true } });
    expectError(await h.invoke(alice.key, { resource: 'goals', action: 'get', id }), 'NOT_FOUND', 404);
  });

  it('refuses an empty update, unknown fields and bad lead fields with VALIDATION_ERROR details', async () => {
    const alice = await h.user();
    const { body } = await create(alice.key, { name: 'A' });
    const empty = expectError(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: body.data.id, data: {} }), 'VALIDATION_ERROR', 400);
    expect(empty.message).toMatch(/at least one field/);
    const extra = await create(alice.key, { name: 'A', colour: 'red' });
    expect(expectError(extra, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data'], type: 'unrecognized_keys' }] });
    const dup = await create(alice.key, {
      name: 'A',
      lead_fields: [
        { key: 'email', label: 'E', type: 'email', required: true },
        { key: 'email', label: 'E2', type: 'text', required: true },
      ],
    });
    expect(expectError(dup, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'lead_fields', 1, 'key'] }] });
    const select = await create(alice.key, { name: 'A', lead_fields: [{ key: 'plan', label: 'Plan', type: 'select', required: true }] });
    expect(expectError(select, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'lead_fields', 0, 'options'] }] });
    const badKey = await create(alice.key, { name: 'A', lead_fields: [{ key: 'Email', label: 'E', type: 'email' }] });
    expectError(badKey, 'VALIDATION_ERROR', 400);
  });

  it('applies the metric rules on the state an update would leave', async () => {
    const alice = await h.user();
    expectError(await create(alice.key, { name: 'A', min_value: 5, max_value: 5 }), 'VALIDATION_ERROR', 400);
    expectError(await create(alice.key, { name: 'A', target_value: 11 }), 'VALIDATION_ERROR', 400);
    expectError(await create(alice.key, { name: 'A', goal_type: 'boolean', current_value: 2 }), 'VALIDATION_ERROR', 400);
    const { body } = await create(alice.key, { name: 'A', target_value: 8 });
    const res = await h.invoke(alice.key, { resource: 'goals', action: 'update', id: body.data.id, data: { max_value: 6 } });
    expect(expectError(res, 'VALIDATION_ERROR', 400).message).toMatch(/target_value/);
  });

  it('computes progress from the metric, clamped, and from status without a target', async () => {
    const alice = await h.user();
    const scale = await create(alice.key, { name: 'A', min_value: 0, max_value: 10, target_value: 8, current_value: 2 });
    expect(scale.body.data.progress).toBe(25);
    const numeric = await create(alice.key, { name: 'B', goal_type: 'numeric', min_value: 100, target_value: 50, current_value: 20 });
    expect(numeric.body.data.progress).toBe(100);
    const bool = await create(alice.key, { name: 'C', goal_type: 'boolean', target_value: 1, current_value: 0 });
    expect(bool.body.data.progress).toBe(0);
    const done = await h.invoke(alice.key, { resource: 'goals', action: 'update', id: bool.body.data.id, data: { current_value: 1 } });
    expect(done.body.data.progress).toBe(100);
    const plain = await create(alice.key, { name: 'D', status: 'completed' });
    expect(plain.body.data.progress).toBe(100);
  });

  it('fails a stale expected_updated_at with CONFLICT and accepts the current one', async () => {
    const alice = await h.user();
    const { body } = await create(alice.key, { name: 'A' });
    const id = body.data.id;
    await new Promise((r) => setTimeout(r, 5)); // timestamps have millisecond precision
    const first = await h.invoke(alice.key, { resource: 'goals', action: 'update', id, data: { name: 'B', expected_updated_at: body.data.updated_at } });
    expect(first.status).toBe(200);
    expect(first.body.data.updated_at).not.toBe(body.data.updated_at);
    const second = await h.invoke(alice.key, { resource: 'goals', action: 'update', id, data: { name: 'C', expected_updated_at: body.data.updated_at } });
    expectError(second, 'CONFLICT', 409);
    const got = await h.invoke(alice.key, { resource: 'goals', action: 'get', id });
    expect(got.body.data.name).toBe('B');
  });
});

describe('dates out of range', () => {
  it('refuses years Postgres cannot store or JavaScript cannot read back, as VALIDATION_ERROR', async () => {
    const alice = await h.user();
    for (const target_date of ['0000-01-01T00:00:00Z', '0050-06-01T00:00:00Z', '0001-01-01T00:00:00+01:00']) {
      const res = await create(alice.key, { name: 'A', target_date });
      expect(expectError(res, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'target_date'] }] });
    }
    const ok = await create(alice.key, { name: 'A', target_date: '1999-12-31T23:00:00-01:00' });
    expect(ok.body.data.target_date).toBe('2000-01-01T00:00:00.000Z');
    const item = await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', due_at: '0000-01-01T00:00:00Z' } });
    expectError(item, 'VALIDATION_ERROR', 400);
  });

  it('refuses a crafted cursor with a year 0 or 10000 timestamp', async () => {
    const alice = await h.user();
    for (const iso of ['0000-01-01T00:00:00.000Z', '+010000-01-01T00:00:00.000Z']) {
      const cursor = Buffer.from(`${iso}|${crypto.randomUUID()}`).toString('base64url');
      expectError(await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { cursor } }), 'VALIDATION_ERROR', 400);
    }
  });
});

describe('goals.list', () => {
  it('pages newest first with a cursor and counts every match', async () => {
    const alice = await h.user();
    const names = ['g1', 'g2', 'g3', 'g4', 'g5'];
    for (const name of names) {
      await create(alice.key, { name, status: 'inactive' });
      // Distinct milliseconds: goals created in the same one are ordered by id, not by when they came.
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { limit: 2, ...(cursor && { cursor }) } });
      expect(res.status).toBe(200);
      expect(res.body.data.count).toBe(5);
      expect(res.body.data.items.length).toBeLessThanOrEqual(2);
      expect(res.body.data.items[0]).not.toHaveProperty('roadmap');
      seen.push(...res.body.data.items.map((g: { name: string }) => g.name));
      cursor = res.body.data.next_cursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...names].reverse());
  });

  it('filters by status, agent and search (wildcards taken literally)', async () => {
    const alice = await h.user();
    const agent = await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Voice' } });
    await create(alice.key, { name: '100% done', status: 'completed' });
    await create(alice.key, { name: '100 percent', description: 'x' });
    await create(alice.key, { name: 'With agent', agent_id: agent.body.data.id });
    const list = (data: Record<string, unknown>) => h.invoke(alice.key, { resource: 'goals', action: 'list', data });
    expect((await list({ status: 'completed' })).body.data.items.map((g: any) => g.name)).toEqual(['100% done']);
    expect((await list({ search: '100%' })).body.data.count).toBe(1);
    expect((await list({ search: 'PERCENT' })).body.data.count).toBe(1);
    expect((await list({ agentId: agent.body.data.id })).body.data.items.map((g: any) => g.name)).toEqual(['With agent']);
  });

  it('rejects a cursor it did not issue', async () => {
    const alice = await h.user();
    expectError(await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { cursor: 'garbage' } }), 'VALIDATION_ERROR', 400);
  });
});
