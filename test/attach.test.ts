import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, expectError, ok, type Harness } from './support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const newAgent = async (key: string, name = 'Agent') =>
  ok(await h.invoke(key, { resource: 'agents', action: 'create', data: { name } }), 201) as { id: string };
const newGoal = async (key: string, data: Record<string, unknown> = {}) =>
  ok(await h.invoke(key, { resource: 'goals', action: 'create', data: { name: 'Goal', status: 'inactive', ...data } }), 201) as {
    id: string;
  };
const attach = (key: string, goalId: string, agentId: string) =>
  h.invoke(key, { resource: 'goals', action: 'attach', data: { goalId, agentId } });
const detach = (key: string, data: { agentId: string; goalId?: string }) =>
  h.invoke(key, { resource: 'goals', action: 'detach', data });
const getAgent = (key: string, id: string) => h.invoke(key, { resource: 'agents', action: 'get', id });
const attachmentsOf = (agentId: string) =>
  h.db.selectFrom('agent_goal_attachments').selectAll().where('agent_id', '=', agentId).execute();

describe('goals.attach', () => {
  it('answers {agent_id, goal_id, attached_at, replaced_goal_id} and stores one attachment', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const goal = await newGoal(alice.key);
    const before = Date.now();
    const res = await attach(alice.key, goal.id, agent.id);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      data: { agent_id: agent.id, goal_id: goal.id, attached_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/), replaced_goal_id: null },
    });
    const attachedAt = Date.parse(res.body.data.attached_at);
    expect(Math.abs(attachedAt - before)).toBeLessThan(60_000);

    const rows = await attachmentsOf(agent.id);
    expect(rows).toEqual([{ agent_id: agent.id, goal_id: goal.id, owner_id: alice.id, attached_at: new Date(res.body.data.attached_at) }]);
    expect(ok(await getAgent(alice.key, agent.id)).attached_goal_id).toBe(goal.id);
  });

  it('replaces the existing attachment and names the goal it replaced', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const first = await newGoal(alice.key, { name: 'First' });
    const second = await newGoal(alice.key, { name: 'Second' });
    expect(ok(await getAgent(alice.key, agent.id)).attached_goal_id).toBeNull();

    expect(ok(await attach(alice.key, first.id, agent.id)).replaced_goal_id).toBeNull();
    expect(ok(await getAgent(alice.key, agent.id)).attached_goal_id).toBe(first.id);

    const replaced = ok(await attach(alice.key, second.id, agent.id));
    expect(replaced).toMatchObject({ agent_id: agent.id, goal_id: second.id, replaced_goal_id: first.id });
    expect((await attachmentsOf(agent.id)).map((r) => r.goal_id)).toEqual([second.id]);
    expect(ok(await getAgent(alice.key, agent.id)).attached_goal_id).toBe(second.id);
    const listed = ok(await h.invoke(alice.key, { resource: 'agents', action: 'list' }));
    expect(listed.items).toEqual([expect.objectContaining({ id: agent.id, attached_goal_id: second.id })]);

    // Attaching the goal that is already attached replaces nothing.
    const again = ok(await attach(alice.key, second.id, agent.id));
    expect(again).toMatchObject({ goal_id: second.id, replaced_goal_id: null });
    expect((await attachmentsOf(agent.id)).map((r) => r.goal_id)).toEqual([second.id]);

    // The replaced goal itself is untouched.
    expect(ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: first.id }))).toMatchObject({ id: first.id, name: 'First' });
  });

  it('keeps one attachment per agent: two agents may each have their own', async () => {
    const alice = await h.user();
    const voice = await newAgent(alice.key, 'Voice');
    const chat = await newAgent(alice.key, 'Chat');
    const g1 = await newGoal(alice.key);
    const g2 = await newGoal(alice.key);
    ok(await attach(alice.key, g1.id, voice.id));
    ok(await attach(alice.key, g2.id, chat.id));
    expect(ok(await getAgent(alice.key, voice.id)).attached_goal_id).toBe(g1.id);
    expect(ok(await getAgent(alice.key, chat.id)).attached_goal_id).toBe(g2.id);
  });

  it('refuses missing or malformed ids with VALIDATION_ERROR details, and unknown records with 404', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const goal = await newGoal(alice.key);
    const missing = await h.invoke(alice.key, { resource: 'goals', action: 'attach', data: { goalId: goal.id } });
    expect(expectError(missing, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'agentId'] }] });
    const bad = await h.invoke(alice.key, { resource: 'goals', action: 'attach', data: { goalId: 'nope', agentId: agent.id } });
    expect(expectError(bad, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'goalId'] }] });
    expectError(await attach(alice.key, randomUUID(), agent.id), 'NOT_FOUND', 404);
    expectError(await attach(alice.key, goal.id, randomUUID()), 'AGENT_NOT_FOUND', 404);
    expect(await attachmentsOf(agent.id)).toEqual([]);
  });

  it('leaves exactly one attachment when 20 attaches to one agent race', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const goals = [];
    for (let i = 0; i < 20; i++) goals.push(await newGoal(alice.key, { name: `G${i}` }));
    const answers = await Promise.all(goals.map((g) => attach(alice.key, g.id, agent.id)));
    for (const answer of answers) expect(answer.status).toBe(200);

    const rows = await attachmentsOf(agent.id);
    expect(rows).toHaveLength(1);
    expect(goals.map((g) => g.id)).toContain(rows[0]!.goal_id);
    expect(ok(await getAgent(alice.key, agent.id)).attached_goal_id).toBe(rows[0]!.goal_id);
  });

  it('names the exact replaced goal when 20 attaches to one agent race', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const goals = [];
    for (let i = 0; i < 20; i++) goals.push(await newGoal(alice.key, { name: `G${i}` }));
    const answers = await Promise.all(goals.map((g) => attach(alice.key, g.id, agent.id)));
    for (const answer of answers) expect(answer.status).toBe(200);
    const rows = await attachmentsOf(agent.id);
    expect(rows).toHaveLength(1);

    // The attaches took turns: each replaced the one before it, so the answers form one chain.
    const replaced = answers.map((a) => a.body.data.replaced_goal_id as string | null);
    expect(replaced.filter((r) => r === null)).toHaveLength(1);
    const replacedIds = replaced.filter((r): r is string => r !== null);
    expect(new Set(replacedIds).size).toBe(19);
    expect(replacedIds).not.toContain(rows[0]!.goal_id);
    expect(new Set([...replacedIds, rows[0]!.goal_id])).toEqual(new Set(goals.map((g) => g.id)));
  });
});

describe('goals.attach racing the active limit', () => {
  it("attaching an agent's oldest active goal while a create for that agent deactivates it: both succeed", async () => {
    for (let round = 0; round < 10; round++) {
      const alice = await h.user();
      const agent = await newAgent(alice.key);
      const goals = [];
      for (let i = 0; i < 3; i++) {
        goals.push(await newGoal(alice.key, { name: `G${i}`, agent_id: agent.id, status: 'active' }));
        await new Promise((r) => setTimeout(r, 3));
      }
      const [attached, created] = await Promise.all([
        attach(alice.key, goals[0]!.id, agent.id),
        h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'G3', agent_id: agent.id } }),
      ]);
      expect([attached.status, attached.body.error?.code]).toEqual([200, undefined]);
      expect([created.status, created.body.error?.code]).toEqual([201, undefined]);
      expect((await attachmentsOf(agent.id)).map((r) => r.goal_id)).toEqual([goals[0]!.id]);
    }
  });
});

describe('goals.attach racing goals.update', () => {
  it('attaching a goal while it is reactivated into the same agent: both succeed, no deadlock', async () => {
    const alice = await h.user();
    for (let round = 0; round < 10; round++) {
      const agent = await newAgent(alice.key);
      const goal = await newGoal(alice.key, { agent_id: agent.id });
      const [attached, updated] = await Promise.all([
        attach(alice.key, goal.id, agent.id),
        h.invoke(alice.key, { resource: 'goals', action: 'update', id: goal.id, data: { status: 'active' } }),
      ]);
      expect(attached.status, JSON.stringify(attached.body)).toBe(200);
      expect(updated.status, JSON.stringify(updated.body)).toBe(200);
    }
  });
});

describe('goals.detach', () => {
  it('detaches, then answers detached: false the second time', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const goal = await newGoal(alice.key);
    ok(await attach(alice.key, goal.id, agent.id));

    const first = await detach(alice.key, { agentId: agent.id });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ success: true, data: { agent_id: agent.id, goal_id: goal.id, detached: true } });
    expect(await attachmentsOf(agent.id)).toEqual([]);
    expect(ok(await getAgent(alice.key, agent.id)).attached_goal_id).toBeNull();

    const second = await detach(alice.key, { agentId: agent.id });
    expect(second.status).toBe(200);
    expect(second.body).toEqual({ success: true, data: { agent_id: agent.id, goal_id: null, detached: false } });

    // With goalId too: still idempotent.
    const third = await detach(alice.key, { agentId: agent.id, goalId: goal.id });
    expect(third.body).toEqual({ success: true, data: { agent_id: agent.id, goal_id: goal.id, detached: false } });
    // The goal lives on.
    expect(ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goal.id })).id).toBe(goal.id);
  });

  it('detaches a named goal only when it is the attached one', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const attached = await newGoal(alice.key, { name: 'Attached' });
    const other = await newGoal(alice.key, { name: 'Other' });
    ok(await attach(alice.key, attached.id, agent.id));

    const wrong = await detach(alice.key, { agentId: agent.id, goalId: other.id });
    expect(wrong.status).toBe(200);
    expect(wrong.body.data).toEqual({ agent_id: agent.id, goal_id: other.id, detached: false });
    expect((await attachmentsOf(agent.id)).map((r) => r.goal_id)).toEqual([attached.id]);

    const right = await detach(alice.key, { agentId: agent.id, goalId: attached.id });
    expect(right.body.data).toEqual({ agent_id: agent.id, goal_id: attached.id, detached: true });
    expect(await attachmentsOf(agent.id)).toEqual([]);
  });

  it('answers AGENT_NOT_FOUND for an unknown agent and NOT_FOUND for an unknown goal', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    expectError(await detach(alice.key, { agentId: randomUUID() }), 'AGENT_NOT_FOUND', 404);
    expectError(await detach(alice.key, { agentId: agent.id, goalId: randomUUID() }), 'NOT_FOUND', 404);
    const bad = await h.invoke(alice.key, { resource: 'goals', action: 'detach', data: {} });
    expect(expectError(bad, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data', 'agentId'] }] });
  });
});

describe('deleting attached records', () => {
  it("in admin mode attaches across accounts, but never one owner's goal to another owner's agent", async () => {
    const admin = await h.user('internal_admin');
    const alice = await h.user();
    const bob = await h.user();
    const agent = await newAgent(alice.key);
    const goal = await newGoal(alice.key);
    const bobsGoal = await newGoal(bob.key);
    const asAdmin = (goalId: string) =>
      h.invoke(admin.key, { resource: 'goals', action: 'attach', data: { goalId, agentId: agent.id, adminMode: true } });
    expect(ok(await asAdmin(goal.id))).toMatchObject({ agent_id: agent.id, goal_id: goal.id, replaced_goal_id: null });
    expectError(await asAdmin(bobsGoal.id), 'AGENT_NOT_FOUND', 404);
    expect(await attachmentsOf(agent.id)).toMatchObject([{ goal_id: goal.id, owner_id: alice.id }]);
  });

  it('a goal deleted while it is attached: the attach answers or is NOT_FOUND, never a 500, and nothing dangles', async () => {
    const alice = await h.user();
    for (let i = 0; i < 10; i++) {
      const agent = await newAgent(alice.key);
      const goal = await newGoal(alice.key);
      const [attached, deleted] = await Promise.all([
        attach(alice.key, goal.id, agent.id),
        h.invoke(alice.key, { resource: 'goals', action: 'delete', id: goal.id }),
      ]);
      expect(deleted.status).toBe(200);
      if (attached.status !== 200) expectError(attached, 'NOT_FOUND', 404);
      expect(await attachmentsOf(agent.id)).toEqual([]);
    }
  });

  it('deleting the goal removes its attachment', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const goal = await newGoal(alice.key);
    ok(await attach(alice.key, goal.id, agent.id));

    expect(ok(await h.invoke(alice.key, { resource: 'goals', action: 'delete', id: goal.id }))).toEqual({ id: goal.id, deleted: true });
    expect(await attachmentsOf(agent.id)).toEqual([]);
    const got = ok(await getAgent(alice.key, agent.id));
    expect(got).toMatchObject({ id: agent.id, attached_goal_id: null });
    expect(ok(await detach(alice.key, { agentId: agent.id }))).toMatchObject({ detached: false });
  });

  it('deleting the agent removes its attachment and keeps its goals with agent_id null', async () => {
    const alice = await h.user();
    const agent = await newAgent(alice.key);
    const pursued = await newGoal(alice.key, { name: 'Pursued', agent_id: agent.id, status: 'active' });
    const other = await newGoal(alice.key, { name: 'Other', agent_id: agent.id });
    ok(await attach(alice.key, pursued.id, agent.id));

    expect(ok(await h.invoke(alice.key, { resource: 'agents', action: 'delete', id: agent.id }))).toEqual({ id: agent.id, deleted: true });
    expect(await attachmentsOf(agent.id)).toEqual([]);
    expectError(await getAgent(alice.key, agent.id), 'NOT_FOUND', 404);
    for (const id of [pursued.id, other.id]) {
      const goal = ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id }));
      expect(goal).toMatchObject({ id, agent_id: null });
    }
    expect(ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: pursued.id })).status).toBe('active');
  });
});
