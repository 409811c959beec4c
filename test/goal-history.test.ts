import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, expectError, ok, type Harness } from './support/harness.ts';

// goals.history (SPEC §4 goals): one point per UTC day on which a goal's progress, current value or status changed,
// written by triggers on goals for every writer. Days other than today are written through the same triggers with
// the database clock set for the transaction (`set local goalpost.now`), or inserted directly for the read tests.

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ maxActiveGoals: 3 });
});
afterAll(async () => {
  await h?.close();
});

type User = Awaited<ReturnType<Harness['user']>>;
const today = () => new Date().toISOString().slice(0, 10);
const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

const call = (user: User, action: string, data?: unknown, id?: string) => h.invoke(user.key, { resource: 'goals', action, id, data });
const history = async (user: User, id: string, days?: number) =>
  ok(await call(user, 'history', days === undefined ? {} : { days }, id)) as { goal_id: string; days: number; points: any[] };
const create = async (user: User, data: Record<string, unknown>) => ok(await call(user, 'create', data), 201);
const point = (progress: number, current_value: number, status: string, date = today()) => ({ date, progress, current_value, status });

describe('goals.history', () => {
  it('starts with the creation and keeps one point a day, the last state of the day', async () => {
    const alice = await h.user();
    const goal = await create(alice, { name: 'Callbacks', goal_type: 'numeric', target_value: 20 });
    expect(await history(alice, goal.id)).toEqual({ goal_id: goal.id, days: 30, points: [point(0, 0, 'active')] });
    ok(await call(alice, 'update', { current_value: 5 }, goal.id));
    ok(await call(alice, 'update', { current_value: 10 }, goal.id));
    // A change of neither progress, value nor status writes nothing new.
    ok(await call(alice, 'update', { description: 'Renamed' }, goal.id));
    expect((await history(alice, goal.id)).points).toEqual([point(50, 10, 'active')]);
  });

  it('records a write of another day through the same triggers, oldest first, within the window asked for', async () => {
    const alice = await h.user();
    const goal = await create(alice, { name: 'Metric', goal_type: 'numeric', target_value: 10 });
    const on = async (date: string, value: number) =>
      h.sql.begin(async (tx) => {
        await tx`select set_config('goalpost.now', ${`${date}T12:00:00Z`}, true)`;
        await tx`update goals set current_value = ${value}, progress = ${value * 10} where id = ${goal.id}`;
      });
    await on(daysAgo(40), 1);
    await on(daysAgo(29), 2);
    await on(daysAgo(3), 3);
    await on(daysAgo(3), 4);
    ok(await call(alice, 'update', { current_value: 6 }, goal.id));
    expect((await history(alice, goal.id)).points).toEqual([
      point(20, 2, 'active', daysAgo(29)),
      point(40, 4, 'active', daysAgo(3)),
      point(60, 6, 'active'),
    ]);
    expect((await history(alice, goal.id, 1)).points).toEqual([point(60, 6, 'active')]);
    expect((await history(alice, goal.id, 4)).points.map((p) => p.date)).toEqual([daysAgo(3), today()]);
    expect((await history(alice, goal.id, 365)).points.map((p) => p.date)).toEqual([daysAgo(40), daysAgo(29), daysAgo(3), today()]);
  });

  it('follows every writer: update-node, an action item completing its node, the active limit, an agent deleted, SQL by hand', async () => {
    const alice = await h.user();
    const nodes = ['a', 'b', 'c', 'd'].map((id, i) => ({ id, label: id, completed: false, position: { x: 0, y: i * 100 } }));
    const roadmap = await create(alice, { name: 'Roadmap', roadmap: { nodes, edges: [] } });
    ok(await call(alice, 'update-node', { node_id: 'a', completed: true }, roadmap.id));
    const item = ok(
      await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'b', goal_id: roadmap.id, roadmap_node_id: 'b' } }),
      201,
    );
    ok(await h.invoke(alice.key, { resource: 'action-items', action: 'update', id: item.id, data: { completed: true } }));
    expect((await history(alice, roadmap.id)).points).toEqual([point(50, 0, 'active')]);

    // Three more active goals without an agent: the oldest (the roadmap) is set inactive by the limit.
    for (const name of ['2', '3', '4']) await create(alice, { name });
    expect((await history(alice, roadmap.id)).points).toEqual([point(50, 0, 'inactive')]);

    // An agent's deletion moves its active goal among the agent-less ones, where the limit sets the oldest inactive.
    const agent = ok(await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Desk' } }), 201);
    const moved = await create(alice, { name: 'On the agent', agent_id: agent.id });
    ok(await h.invoke(alice.key, { resource: 'agents', action: 'delete', id: agent.id }));
    const statuses = await Promise.all(
      (ok(await call(alice, 'list', { limit: 100 })).items as any[]).map(async (g) => [g.name, (await history(alice, g.id)).points.at(-1).status]),
    );
    expect(Object.fromEntries(statuses)).toMatchObject({ '2': 'inactive', '3': 'active', '4': 'active', 'On the agent': 'active' });
    expect((await history(alice, moved.id)).points).toEqual([point(0, 0, 'active')]);

    await h.sql`update goals set status = 'abandoned' where id = ${roadmap.id}`;
    expect((await history(alice, roadmap.id)).points).toEqual([point(50, 0, 'abandoned')]);
  });

  it("answers NOT_FOUND for someone else's goal, lets a consumer read and an admin read any with `owner`", async () => {
    const [alice, bob, admin, consumer] = [await h.user(), await h.user(), await h.user('internal_admin'), await h.user('consumer')];
    const goal = await create(alice, { name: 'Mine' });
    expectError(await call(bob, 'history', {}, goal.id), 'NOT_FOUND', 404);
    expectError(await call(consumer, 'history', {}, goal.id), 'NOT_FOUND', 404);
    // A consumer (read-only) reads its own goals' history (made here by hand: a consumer cannot create).
    const [{ id: theirs }] = (await h.sql`insert into goals (owner_id, name) values (${consumer.id}, 'Theirs') returning id`) as any;
    expect((await history(consumer, theirs)).points).toEqual([point(0, 0, 'active')]);
    const asAdmin = ok(await call(admin, 'history', { adminMode: true }, goal.id));
    expect(asAdmin).toMatchObject({ goal_id: goal.id, owner: { id: alice.id, email: alice.email } });
    expectError(await call(bob, 'history', { adminMode: true }, goal.id), 'FORBIDDEN', 403);
    const actingAs = ok(await call(admin, 'history', { userId: alice.id }, goal.id));
    expect(actingAs.points).toHaveLength(1);
  });

  it('refuses days 0, 366, 1.5 and "x", and forgets the history with the goal', async () => {
    const alice = await h.user();
    const goal = await create(alice, { name: 'Short-lived' });
    for (const days of [0, 366, 1.5, 'x']) {
      const error = expectError(await call(alice, 'history', { days }, goal.id), 'VALIDATION_ERROR', 400) as any;
      expect(error.details[0].path).toEqual(['data', 'days']);
    }
    expectError(await call(alice, 'history', { weeks: 2 }, goal.id), 'VALIDATION_ERROR', 400);
    ok(await call(alice, 'delete', undefined, goal.id));
    expectError(await call(alice, 'history', {}, goal.id), 'NOT_FOUND', 404);
    const [left] = await h.sql`select count(*)::int as n from goal_history where goal_id = ${goal.id}`;
    expect(left!.n).toBe(0);
  });

  it('is reached REST-style too: GET /v1/goals/:id/history?days=', async () => {
    const alice = await h.user();
    const goal = await create(alice, { name: 'Over REST' });
    const answer = ok(await h.request(`/v1/goals/${goal.id}/history?days=7`, { key: alice.key }));
    expect(answer).toEqual({ goal_id: goal.id, days: 7, points: [point(0, 0, 'active')] });
    expectError(await h.request(`/v1/goals/${goal.id}/history?days=x`, { key: alice.key }), 'VALIDATION_ERROR', 400);
    expectError(await h.request(`/v1/goals/${goal.id}/delete`, { key: alice.key }), 'INVALID_ACTION', 400);
    expectError(await h.request(`/v1/goals/${goal.id}/nothing`, { key: alice.key }), 'INVALID_ACTION', 400);
  });
});
