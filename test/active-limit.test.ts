import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, ok, type Harness } from './support/harness.ts';

/**
 * The active limit (MAX_ACTIVE_GOALS, 3 in the harness): per agent, and per owner for goals without
 * an agent. One more active goal deactivates the oldest active one in its scope, atomically.
 */

// The embedded database serves one connection at a time, so each describe opens its own harness
// and closes it before the next one starts.
let h: Harness;
function useHarness(options: Parameters<typeof createHarness>[0] = {}) {
  beforeAll(async () => {
    h = await createHarness(options);
  });
  afterAll(() => h.close());
}

// Timestamps have millisecond precision: sequential creates wait a little so "oldest" is unambiguous.
const tick = () => new Promise((r) => setTimeout(r, 3));

const newAgent = async (hh: Harness, key: string) =>
  ok(await hh.invoke(key, { resource: 'agents', action: 'create', data: { name: 'Agent' } }), 201) as { id: string };

async function createGoal(hh: Harness, key: string, data: Record<string, unknown>) {
  const goal = ok(await hh.invoke(key, { resource: 'goals', action: 'create', data }), 201);
  await tick();
  return goal as { id: string; status: string; is_active: boolean; agent_id: string | null };
}

/** Status by goal id, straight from the table. */
async function statuses(ownerId: string, agentId: string | null | undefined = undefined) {
  const rows = await h.db
    .selectFrom('goals')
    .select(['id', 'status', 'agent_id', 'created_at'])
    .where('owner_id', '=', ownerId)
    .$if(agentId === null, (qb) => qb.where('agent_id', 'is', null))
    .$if(typeof agentId === 'string', (qb) => qb.where('agent_id', '=', agentId!))
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows;
}

const activeIds = async (ownerId: string, agentId: string | null) =>
  (await statuses(ownerId, agentId)).filter((r) => r.status === 'active').map((r) => r.id);

describe('active limit, sequential', () => {
  useHarness();

  it('the 4th active goal of an agent deactivates the oldest; exactly 3 stay active', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const goals = [];
    for (let i = 1; i <= 3; i++) goals.push(await createGoal(h, alice.key, { name: `G${i}`, agent_id: agent.id }));
    expect(await activeIds(alice.id, agent.id)).toEqual(goals.map((g) => g.id));

    const fourth = await createGoal(h, alice.key, { name: 'G4', agent_id: agent.id });
    expect(fourth).toMatchObject({ status: 'active', is_active: true, agent_id: agent.id });
    const first = ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goals[0]!.id }));
    expect(first).toMatchObject({ status: 'inactive', is_active: false });
    expect(await activeIds(alice.id, agent.id)).toEqual([goals[1]!.id, goals[2]!.id, fourth.id]);

    const listed = ok(await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { agentId: agent.id, status: 'active' } }));
    expect(listed.count).toBe(3);

    const fifth = await createGoal(h, alice.key, { name: 'G5', agent_id: agent.id });
    expect(await activeIds(alice.id, agent.id)).toEqual([goals[2]!.id, fourth.id, fifth.id]);
    expect((await statuses(alice.id, agent.id)).map((r) => r.status)).toEqual(['inactive', 'inactive', 'active', 'active', 'active']);
  });

  it('creating an inactive or completed goal deactivates nothing, and only active goals count', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const active = [];
    for (let i = 1; i <= 3; i++) active.push(await createGoal(h, alice.key, { name: `A${i}`, agent_id: agent.id }));
    await createGoal(h, alice.key, { name: 'Parked', agent_id: agent.id, status: 'inactive' });
    await createGoal(h, alice.key, { name: 'Done', agent_id: agent.id, status: 'completed' });
    expect(await activeIds(alice.id, agent.id)).toEqual(active.map((g) => g.id));

    // Completing one frees a place: the next active goal deactivates nothing.
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: active[0]!.id, data: { status: 'completed' } }));
    const next = await createGoal(h, alice.key, { name: 'A4', agent_id: agent.id });
    expect(await activeIds(alice.id, agent.id)).toEqual([active[1]!.id, active[2]!.id, next.id]);
  });

  it("goals without an agent count per owner, apart from agent goals and other owners' goals", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const voice = await newAgent(h, alice.key);
    const chat = await newAgent(h, alice.key);
    const voiceGoals = [];
    const chatGoals = [];
    const loose = [];
    const bobLoose = [];
    for (let i = 1; i <= 3; i++) {
      voiceGoals.push(await createGoal(h, alice.key, { name: `V${i}`, agent_id: voice.id }));
      chatGoals.push(await createGoal(h, alice.key, { name: `C${i}`, agent_id: chat.id }));
      loose.push(await createGoal(h, alice.key, { name: `L${i}` }));
      bobLoose.push(await createGoal(h, bob.key, { name: `B${i}` }));
    }
    // 3 per scope: nothing deactivated yet.
    expect((await statuses(alice.id)).every((r) => r.status === 'active')).toBe(true);
    expect(await activeIds(bob.id, null)).toHaveLength(3);

    const fourth = await createGoal(h, alice.key, { name: 'L4' });
    expect(await activeIds(alice.id, null)).toEqual([loose[1]!.id, loose[2]!.id, fourth.id]);
    expect(await activeIds(alice.id, voice.id)).toEqual(voiceGoals.map((g) => g.id));
    expect(await activeIds(alice.id, chat.id)).toEqual(chatGoals.map((g) => g.id));
    expect(await activeIds(bob.id, null)).toEqual(bobLoose.map((g) => g.id));
  });

  it('activating an inactive goal through update deactivates the oldest other active goal', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const goals = [];
    for (let i = 1; i <= 4; i++) goals.push(await createGoal(h, alice.key, { name: `G${i}`, agent_id: agent.id }));
    // G1 went inactive when G4 came.
    expect(await activeIds(alice.id, agent.id)).toEqual([goals[1]!.id, goals[2]!.id, goals[3]!.id]);

    const reactivated = ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: goals[0]!.id, data: { status: 'active' } }));
    expect(reactivated).toMatchObject({ id: goals[0]!.id, status: 'active', is_active: true });
    expect(await activeIds(alice.id, agent.id)).toEqual([goals[0]!.id, goals[2]!.id, goals[3]!.id]);
    const second = ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goals[1]!.id }));
    expect(second).toMatchObject({ status: 'inactive', is_active: false });

    // Editing an active goal without changing its scope deactivates nothing.
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: goals[2]!.id, data: { name: 'Renamed', status: 'active' } }));
    expect(await activeIds(alice.id, agent.id)).toEqual([goals[0]!.id, goals[2]!.id, goals[3]!.id]);
  });

  it('moving an active goal into a full scope deactivates the oldest active goal there', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const agentGoals = [];
    for (let i = 1; i <= 3; i++) agentGoals.push(await createGoal(h, alice.key, { name: `A${i}`, agent_id: agent.id }));
    const loose = await createGoal(h, alice.key, { name: 'Loose' });

    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: loose.id, data: { agent_id: agent.id } }));
    expect(await activeIds(alice.id, agent.id)).toEqual([agentGoals[1]!.id, agentGoals[2]!.id, loose.id]);

    // And back out to the agent-less scope (which now holds none): nothing else changes.
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: agentGoals[1]!.id, data: { agent_id: null } }));
    expect(await activeIds(alice.id, null)).toEqual([agentGoals[1]!.id]);
    expect(await activeIds(alice.id, agent.id)).toEqual([agentGoals[2]!.id, loose.id]);
  });

  it("deleting an agent moves its goals into the owner's agent-less scope and keeps at most 3 active there", async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const loose = [];
    for (let i = 1; i <= 3; i++) loose.push(await createGoal(h, alice.key, { name: `L${i}` }));
    const agentGoals = [];
    for (let i = 1; i <= 3; i++) agentGoals.push(await createGoal(h, alice.key, { name: `A${i}`, agent_id: agent.id }));
    expect(await activeIds(alice.id, null)).toHaveLength(3);

    ok(await h.invoke(alice.key, { resource: 'agents', action: 'delete', id: agent.id }));
    const after = await statuses(alice.id);
    expect(after).toHaveLength(6);
    expect(after.every((r) => r.agent_id === null)).toBe(true);
    // The oldest go inactive: the three newest (the former agent goals) stay active.
    expect(after.filter((r) => r.status === 'active').map((r) => r.id)).toEqual(agentGoals.map((g) => g.id));
  });
});

describe('active limit under concurrency', () => {
  useHarness();

  it('20 concurrent creates for one agent leave 20 goals, exactly 3 active', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: `G${i}`, agent_id: agent.id } })),
    );
    for (const answer of answers) expect(answer.status).toBe(201);
    const rows = await statuses(alice.id, agent.id);
    expect(rows).toHaveLength(20);
    expect(rows.filter((r) => r.status === 'active')).toHaveLength(3);
    expect(rows.filter((r) => r.status === 'inactive')).toHaveLength(17);
  });

  it('20 concurrent creates without an agent leave exactly 3 active for the owner', async () => {
    const alice = await h.user();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: `G${i}` } })),
    );
    for (const answer of answers) expect(answer.status).toBe(201);
    const rows = await statuses(alice.id, null);
    expect(rows).toHaveLength(20);
    expect(rows.filter((r) => r.status === 'active')).toHaveLength(3);
  });

  it('10 concurrent activations in one scope leave exactly 3 active', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const goals = [];
    for (let i = 0; i < 10; i++) goals.push(await createGoal(h, alice.key, { name: `G${i}`, agent_id: agent.id, status: 'inactive' }));
    const answers = await Promise.all(
      goals.map((g) => h.invoke(alice.key, { resource: 'goals', action: 'update', id: g.id, data: { status: 'active' } })),
    );
    for (const answer of answers) expect(answer.status).toBe(200);
    expect(await activeIds(alice.id, agent.id)).toHaveLength(3);
  });

  it('deleting an agent while agent-less goals are created concurrently leaves at most 3 active', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    for (let i = 0; i < 3; i++) await createGoal(h, alice.key, { name: `A${i}`, agent_id: agent.id });
    const answers = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: `L${i}` } })),
      h.invoke(alice.key, { resource: 'agents', action: 'delete', id: agent.id }),
    ]);
    for (const answer of answers) expect([200, 201]).toContain(answer.status);
    const rows = await statuses(alice.id, null);
    expect(rows).toHaveLength(13);
    expect(rows.filter((r) => r.status === 'active')).toHaveLength(3);
  });
});

describe('active limit racing other writes', () => {
  useHarness();

  /** An agent with three active goals, created in distinct milliseconds (the first is the oldest). */
  async function fullAgent() {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    const goals = [];
    for (let i = 0; i < 3; i++) goals.push(await createGoal(h, alice.key, { name: `G${i}`, agent_id: agent.id }));
    return { alice, agent, goals };
  }

  it('completing the oldest goal while a create deactivates it: the completion is never lost', async () => {
    for (let round = 0; round < 15; round++) {
      const { alice, agent, goals } = await fullAgent();
      const [completed, created] = await Promise.all([
        h.invoke(alice.key, { resource: 'goals', action: 'update', id: goals[0]!.id, data: { status: 'completed' } }),
        h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'G3', agent_id: agent.id } }),
      ]);
      expect(completed.status).toBe(200);
      expect(created.status).toBe(201);
      const oldest = ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goals[0]!.id }));
      expect(oldest.status).toBe('completed');
      // Either order leaves exactly three: the create deactivates the oldest, or it was completed first.
      expect(await activeIds(alice.id, agent.id)).toHaveLength(3);
    }
  });

  it('moving the oldest goal to another agent while a create in the old scope deactivates it: it stays active in the new one', async () => {
    for (let round = 0; round < 15; round++) {
      const { alice, agent, goals } = await fullAgent();
      const other = await newAgent(h, alice.key);
      const [moved, created] = await Promise.all([
        h.invoke(alice.key, { resource: 'goals', action: 'update', id: goals[0]!.id, data: { agent_id: other.id, status: 'active' } }),
        h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'G3', agent_id: agent.id } }),
      ]);
      expect(moved.status).toBe(200);
      expect(created.status).toBe(201);
      const goal = ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goals[0]!.id }));
      expect(goal).toMatchObject({ agent_id: other.id, status: 'active' });
      expect(await activeIds(alice.id, agent.id)).toHaveLength(3);
      expect(await activeIds(alice.id, other.id)).toEqual([goals[0]!.id]);
    }
  });

  it('re-saving a goal with its own agent_id while a create deactivates it: both succeed', async () => {
    for (let round = 0; round < 10; round++) {
      const { alice, agent, goals } = await fullAgent();
      const [saved, created] = await Promise.all([
        h.invoke(alice.key, { resource: 'goals', action: 'update', id: goals[0]!.id, data: { name: 'Renamed', agent_id: agent.id } }),
        h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'G3', agent_id: agent.id } }),
      ]);
      expect([saved.status, saved.body.error?.code]).toEqual([200, undefined]);
      expect([created.status, created.body.error?.code]).toEqual([201, undefined]);
      expect(await activeIds(alice.id, agent.id)).toHaveLength(3);
    }
  });

  it('moving a goal out of an agent while the agent is deleted: both succeed', async () => {
    for (let round = 0; round < 10; round++) {
      const alice = await h.user();
      const agent = await newAgent(h, alice.key);
      const goal = await createGoal(h, alice.key, { name: 'G', agent_id: agent.id, status: 'inactive' });
      const [moved, deleted] = await Promise.all([
        h.invoke(alice.key, { resource: 'goals', action: 'update', id: goal.id, data: { agent_id: null, status: 'active' } }),
        h.invoke(alice.key, { resource: 'agents', action: 'delete', id: agent.id }),
      ]);
      expect([moved.status, moved.body.error?.code]).toEqual([200, undefined]);
      expect([deleted.status, deleted.body.error?.code]).toEqual([200, undefined]);
      const row = (await statuses(alice.id))[0]!;
      expect(row).toMatchObject({ id: goal.id, agent_id: null, status: 'active' });
    }
  });
});

describe('MAX_ACTIVE_GOALS 0', () => {
  useHarness({ maxActiveGoals: 0 });

  it('means no limit, for agents and for agent-less goals, sequential and concurrent', async () => {
    const alice = await h.user();
    const agent = await newAgent(h, alice.key);
    for (let i = 0; i < 6; i++) await createGoal(h, alice.key, { name: `A${i}`, agent_id: agent.id });
    for (let i = 0; i < 6; i++) await createGoal(h, alice.key, { name: `L${i}` });
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: `C${i}`, agent_id: agent.id } }),
      ),
    );
    expect(await activeIds(alice.id, agent.id)).toHaveLength(12);
    expect(await activeIds(alice.id, null)).toHaveLength(6);

    // Activation and agent deletion deactivate nothing either.
    const parked = await createGoal(h, alice.key, { name: 'Parked', agent_id: agent.id, status: 'inactive' });
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: parked.id, data: { status: 'active' } }));
    ok(await h.invoke(alice.key, { resource: 'agents', action: 'delete', id: agent.id }));
    const rows = await statuses(alice.id);
    expect(rows).toHaveLength(19);
    expect(rows.every((r) => r.status === 'active' && r.agent_id === null)).toBe(true);
  });
});
