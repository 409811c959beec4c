import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../src/resources/index.ts';
import { createHarness, expectError, type Answer, type Harness } from './support/harness.ts';

/**
 * The ownership matrix: user B acting on user A's records, for every action of goals and agents.
 * Each row answers 404 (NOT_FOUND, or AGENT_NOT_FOUND for an agent named in `data`) exactly as for a
 * record that does not exist, and leaves A's (and B's) rows untouched.
 */

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

type Resource = 'goals' | 'agents';

/** One user's records: an agent, an active goal of that agent attached to it, a loose inactive goal. */
interface Side {
  id: string;
  email: string;
  key: string;
  agentId: string;
  goalId: string;
  looseGoalId: string;
}

interface World {
  a: Side;
  b: Side;
}

/** The A records a call targets: A's real ids, or ids of records that do not exist at all. */
interface Target {
  goalId: string;
  looseGoalId: string;
  agentId: string;
}

async function ok(answer: Answer): Promise<any> {
  if (answer.status !== 200 && answer.status !== 201) {
    throw new Error(`setup call failed: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return answer.body.data;
}

async function side(token: string): Promise<Side> {
  const user = await h.user();
  const agent = await ok(await h.invoke(user.key, { resource: 'agents', action: 'create', data: { name: `${token} agent` } }));
  const goal = await ok(
    await h.invoke(user.key, { resource: 'goals', action: 'create', data: { name: `${token} goal`, agent_id: agent.id } }),
  );
  await ok(await h.invoke(user.key, { resource: 'goals', action: 'attach', data: { goalId: goal.id, agentId: agent.id } }));
  const loose = await ok(
    await h.invoke(user.key, { resource: 'goals', action: 'create', data: { name: `${token} loose`, status: 'inactive' } }),
  );
  return { id: user.id, email: user.email, key: user.key, agentId: agent.id, goalId: goal.id, looseGoalId: loose.id };
}

async function world(): Promise<World> {
  const token = randomUUID().slice(0, 8);
  return { a: await side(`alpha-${token}`), b: await side(`beta-${token}`) };
}

/** Every row of the three tables that belongs to these owners, in a stable order. */
async function snapshot(ownerIds: string[]) {
  const [goals, agents, attachments] = await Promise.all([
    h.db.selectFrom('goals').selectAll().where('owner_id', 'in', ownerIds).orderBy('id').execute(),
    h.db.selectFrom('agents').selectAll().where('owner_id', 'in', ownerIds).orderBy('id').execute(),
    h.db.selectFrom('agent_goal_attachments').selectAll().where('owner_id', 'in', ownerIds).orderBy('agent_id').execute(),
  ]);
  return { goals, agents, attachments };
}

interface ErrorCase {
  resource: Resource;
  action: string;
  title: string;
  /** B's call; `t` holds A's ids (or, for the comparison run, ids that exist nowhere). */
  call: (b: Side, t: Target, w: World) => unknown;
  /** The 404 codes accepted; the first is the one expected when only one applies. */
  codes: ('NOT_FOUND' | 'AGENT_NOT_FOUND')[];
}

interface CheckCase {
  resource: Resource;
  action: string;
  title: string;
  /** Calls and asserts; B's own rows may change only when `bMayChange`. */
  check: (w: World) => Promise<void>;
  bMayChange?: boolean;
}

type Case = ErrorCase | CheckCase;

const absent = (): Target => ({ goalId: randomUUID(), looseGoalId: randomUUID(), agentId: randomUUID() });

const listOf = async (key: string, resource: Resource, data: Record<string, unknown> = {}) => {
  const res = await h.invoke(key, { resource, action: 'list', data });
  expect(res.status).toBe(200);
  return res.body.data as { items: { id: string }[]; count: number; next_cursor: string | null };
};

const cases: Case[] = [
  // ---- goals ----
  {
    resource: 'goals',
    action: 'list',
    title: "a fresh user lists no goals, and B's list holds only B's goals",
    check: async ({ a, b }) => {
      const fresh = await h.user();
      const empty = await listOf(fresh.key, 'goals');
      expect(empty).toEqual({ items: [], count: 0, next_cursor: null });
      const mine = await listOf(b.key, 'goals');
      expect(mine.count).toBe(2);
      expect(mine.items.map((g) => g.id).sort()).toEqual([b.goalId, b.looseGoalId].sort());
      expect(mine.items.map((g) => g.id)).not.toContain(a.goalId);
      // Searching for A's goal by name finds nothing either.
      const { body } = await h.invoke(a.key, { resource: 'goals', action: 'get', id: a.goalId });
      expect(await listOf(b.key, 'goals', { search: body.data.name })).toEqual({ items: [], count: 0, next_cursor: null });
    },
  },
  {
    resource: 'goals',
    action: 'list',
    title: "filtering by A's agent reveals none of A's goals",
    check: async ({ a, b }) => {
      const res = await h.invoke(b.key, { resource: 'goals', action: 'list', data: { agentId: a.agentId } });
      if (res.status === 200) {
        expect(res.body.data).toEqual({ items: [], count: 0, next_cursor: null });
      } else {
        expectError(res, 'AGENT_NOT_FOUND', 404);
      }
    },
  },
  {
    resource: 'goals',
    action: 'get',
    title: "B gets A's goal",
    call: (_b, t) => ({ resource: 'goals', action: 'get', id: t.goalId }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'history',
    title: "B reads A's goal's history",
    call: (_b, t) => ({ resource: 'goals', action: 'history', id: t.goalId, data: { days: 365 } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'create',
    title: "B creates a goal for A's agent",
    call: (_b, t) => ({ resource: 'goals', action: 'create', data: { name: 'Hijack', agent_id: t.agentId } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'create',
    title: "B creates an inactive goal for A's agent",
    call: (_b, t) => ({ resource: 'goals', action: 'create', data: { name: 'Hijack', agent_id: t.agentId, status: 'inactive' } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'create',
    title: "B creates a goal in A's account through userId (standard user: FORBIDDEN)",
    check: async ({ a, b }) => {
      const res = await h.invoke(b.key, { resource: 'goals', action: 'create', data: { name: 'Hijack', userId: a.id } });
      expectError(res, 'FORBIDDEN', 403);
      const owner = await h.invoke(b.key, { resource: 'goals', action: 'create', data: { name: 'Hijack', owner_id: a.id } });
      expect(expectError(owner, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data'], type: 'unrecognized_keys' }] });
    },
  },
  {
    resource: 'goals',
    action: 'update',
    title: "B renames A's goal",
    call: (_b, t) => ({ resource: 'goals', action: 'update', id: t.goalId, data: { name: 'Hijacked' } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'update',
    title: "B activates A's inactive goal",
    call: (_b, t) => ({ resource: 'goals', action: 'update', id: t.looseGoalId, data: { status: 'active' } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'update',
    title: "B moves A's goal to B's agent",
    call: (b, t) => ({ resource: 'goals', action: 'update', id: t.goalId, data: { agent_id: b.agentId } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'update',
    title: "B moves B's own goal to A's agent",
    call: (b, t) => ({ resource: 'goals', action: 'update', id: b.goalId, data: { agent_id: t.agentId } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'update',
    title: "B moves B's own inactive goal to A's agent",
    call: (b, t) => ({ resource: 'goals', action: 'update', id: b.looseGoalId, data: { agent_id: t.agentId } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'delete',
    title: "B deletes A's goal",
    call: (_b, t) => ({ resource: 'goals', action: 'delete', id: t.goalId }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'attach',
    title: "B attaches A's goal to B's agent",
    call: (b, t) => ({ resource: 'goals', action: 'attach', data: { goalId: t.looseGoalId, agentId: b.agentId } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'attach',
    title: "B attaches B's goal to A's agent",
    call: (b, t) => ({ resource: 'goals', action: 'attach', data: { goalId: b.looseGoalId, agentId: t.agentId } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'attach',
    title: "B attaches A's goal to A's agent",
    call: (_b, t) => ({ resource: 'goals', action: 'attach', data: { goalId: t.looseGoalId, agentId: t.agentId } }),
    codes: ['NOT_FOUND', 'AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'detach',
    title: "B detaches whatever is attached to A's agent",
    call: (_b, t) => ({ resource: 'goals', action: 'detach', data: { agentId: t.agentId } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'detach',
    title: "B detaches A's goal from A's agent",
    call: (_b, t) => ({ resource: 'goals', action: 'detach', data: { agentId: t.agentId, goalId: t.goalId } }),
    codes: ['AGENT_NOT_FOUND', 'NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'detach',
    title: "B detaches A's goal from B's agent",
    call: (b, t) => ({ resource: 'goals', action: 'detach', data: { agentId: b.agentId, goalId: t.goalId } }),
    codes: ['NOT_FOUND'],
  },
  // Actions the spec adds to goals later; they run once the registry has them.
  {
    resource: 'goals',
    action: 'generate',
    title: "B generates a goal for A's agent",
    call: (_b, t) => ({ resource: 'goals', action: 'generate', data: { description: 'collect the name and email of each lead', agentId: t.agentId } }),
    codes: ['AGENT_NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'generate-roadmap',
    title: "B generates a roadmap for A's goal",
    call: (_b, t) => ({ resource: 'goals', action: 'generate-roadmap', id: t.goalId, data: {} }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'update-node',
    title: "B completes a node of A's goal",
    call: (_b, t) => ({ resource: 'goals', action: 'update-node', id: t.goalId, data: { node_id: 'n1', completed: true } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'goals',
    action: 'convert-nodes',
    title: "B converts the nodes of A's goal",
    call: (_b, t) => ({ resource: 'goals', action: 'convert-nodes', id: t.goalId, data: {} }),
    codes: ['NOT_FOUND'],
  },
  // ---- agents ----
  {
    resource: 'agents',
    action: 'list',
    title: "a fresh user lists no agents, and B's list holds only B's agent",
    check: async ({ a, b }) => {
      const fresh = await h.user();
      expect(await listOf(fresh.key, 'agents')).toEqual({ items: [], count: 0, next_cursor: null });
      const mine = await listOf(b.key, 'agents');
      expect(mine.count).toBe(1);
      expect(mine.items.map((x) => x.id)).toEqual([b.agentId]);
      const { body } = await h.invoke(a.key, { resource: 'agents', action: 'get', id: a.agentId });
      expect(await listOf(b.key, 'agents', { search: body.data.name })).toEqual({ items: [], count: 0, next_cursor: null });
    },
  },
  {
    resource: 'agents',
    action: 'get',
    title: "B gets A's agent",
    call: (_b, t) => ({ resource: 'agents', action: 'get', id: t.agentId }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'agents',
    action: 'create',
    title: "B's new agent is B's: A does not see it, and userId/owner_id cannot place it in A's account",
    bMayChange: true,
    check: async ({ a, b }) => {
      expectError(
        await h.invoke(b.key, { resource: 'agents', action: 'create', data: { name: 'Hijack', userId: a.id } }),
        'FORBIDDEN',
        403,
      );
      const owner = await h.invoke(b.key, { resource: 'agents', action: 'create', data: { name: 'Hijack', owner_id: a.id } });
      expect(expectError(owner, 'VALIDATION_ERROR', 400)).toMatchObject({ details: [{ path: ['data'], type: 'unrecognized_keys' }] });
      const created = await h.invoke(b.key, { resource: 'agents', action: 'create', data: { name: 'Mine' } });
      expect(created.status).toBe(201);
      const row = await h.db.selectFrom('agents').select('owner_id').where('id', '=', created.body.data.id).executeTakeFirstOrThrow();
      expect(row.owner_id).toBe(b.id);
      expectError(await h.invoke(a.key, { resource: 'agents', action: 'get', id: created.body.data.id }), 'NOT_FOUND', 404);
      expect((await listOf(a.key, 'agents')).items.map((x) => x.id)).toEqual([a.agentId]);
    },
  },
  {
    resource: 'agents',
    action: 'update',
    title: "B renames A's agent",
    call: (_b, t) => ({ resource: 'agents', action: 'update', id: t.agentId, data: { name: 'Hijacked' } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'agents',
    action: 'update',
    title: "B deactivates A's agent",
    call: (_b, t) => ({ resource: 'agents', action: 'update', id: t.agentId, data: { is_active: false } }),
    codes: ['NOT_FOUND'],
  },
  {
    resource: 'agents',
    action: 'delete',
    title: "B deletes A's agent",
    call: (_b, t) => ({ resource: 'agents', action: 'delete', id: t.agentId }),
    codes: ['NOT_FOUND'],
  },
];

const inRegistry = (c: Case) => Object.hasOwn(registry[c.resource], c.action);

describe('ownership matrix', () => {
  it('covers every action of goals and agents', () => {
    const covered = new Set(cases.filter(inRegistry).map((c) => `${c.resource}.${c.action}`));
    const expected = (['goals', 'agents'] as const).flatMap((r) => Object.keys(registry[r]).map((a) => `${r}.${a}`));
    expect(expected.length).toBeGreaterThanOrEqual(12);
    expect([...covered].sort()).toEqual([...expected].sort());
  });

  for (const c of cases) {
    it.skipIf(!inRegistry(c))(`${c.resource}.${c.action}: ${c.title}`, async () => {
      const w = await world();
      const watched = 'check' in c && c.bMayChange ? [w.a.id] : [w.a.id, w.b.id];
      const before = await snapshot(watched);
      expect(before.goals).toHaveLength(watched.length * 2);
      expect(before.attachments).toHaveLength(watched.length);

      if ('check' in c) {
        await c.check(w);
      } else {
        const res = await h.invoke(w.b.key, c.call(w.b, w.a, w));
        const error = expectError(res, res.body?.error?.code, 404);
        expect(c.codes).toContain(error.code);
        if (c.codes.length === 1) expect(error.code).toBe(c.codes[0]);

        // Indistinguishable from a record that does not exist: same status, code, message, details.
        const missing = await h.invoke(w.b.key, c.call(w.b, absent(), w));
        const missingError = expectError(missing, error.code, 404);
        const { request_id: _r1, ...seen } = error as Record<string, unknown>;
        const { request_id: _r2, ...unseen } = missingError as Record<string, unknown>;
        expect(seen).toEqual(unseen);
      }

      expect(await snapshot(watched)).toEqual(before);
    });
  }
});
