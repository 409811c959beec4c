import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGraph, findCycle, layoutRoadmap, LAYER_SPACING, NODE_SPACING } from '../src/resources/roadmaps/graph.ts';
import { createHarness, expectError, onRealPostgres, ok, type Harness } from './support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

type User = Awaited<ReturnType<Harness['user']>>;

const goals = (key: string, action: string, envelope: { id?: string; data?: unknown } = {}) =>
  h.invoke(key, { resource: 'goals', action, ...envelope });
const items = (key: string, action: string, envelope: { id?: string; data?: unknown } = {}) =>
  h.invoke(key, { resource: 'action-items', action, ...envelope });

interface NodeIn {
  id: string;
  label?: string;
  completed?: boolean;
  position?: { x: number; y: number };
}

/** A roadmap: nodes by id (label "Step <id>"), edges as [source, target] pairs with ids e0, e1, … */
function roadmap(nodes: (string | NodeIn)[], edges: [string, string][] = []) {
  return {
    nodes: nodes.map((n) => {
      const node = typeof n === 'string' ? { id: n } : n;
      return { label: `Step ${node.id}`, ...node };
    }),
    edges: edges.map(([source, target], i) => ({ id: `e${i}`, source, target })),
  };
}

/** A chain a → b → c → … */
const chain = (ids: string[]) => roadmap(ids, ids.slice(1).map((id, i) => [ids[i]!, id] as [string, string]));

async function goalWith(user: User, data: Record<string, unknown> = {}) {
  return ok(await goals(user.key, 'create', { data: { name: 'Roadmapped', status: 'inactive', ...data } }), 201);
}

const goalRow = (id: string) => h.db.selectFrom('goals').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const nodeStates = async (goalId: string) =>
  Object.fromEntries(((await goalRow(goalId)).roadmap?.nodes ?? []).map((n) => [n.id, n.completed]));
const tick = () => new Promise((r) => setTimeout(r, 5)); // timestamps have millisecond precision

describe('roadmap validation', () => {
  const refused = async (bad: unknown, action: 'create' | 'update' = 'create') => {
    const alice = await h.user();
    const answer =
      action === 'create'
        ? await goals(alice.key, 'create', { data: { name: 'G', roadmap: bad } })
        : await goals(alice.key, 'update', { id: (await goalWith(alice)).id, data: { roadmap: bad } });
    const error = expectError(answer, 'VALIDATION_ERROR', 400) as any;
    return error.details as { path: (string | number)[]; message: string; type: string }[];
  };

  it('refuses a cycle, naming the edge that closes it, on create and on update', async () => {
    const cyclic = roadmap(['a', 'b', 'c', 'd'], [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'b']]);
    for (const action of ['create', 'update'] as const) {
      const details = await refused(cyclic, action);
      expect(details).toEqual([
        {
          path: ['data', 'roadmap', 'edges', 3],
          message: 'this edge closes a cycle: "b" → "c" → "d" → "b"; a roadmap has no cycles',
          type: 'custom',
        },
      ]);
    }
    const selfLoop = await refused(roadmap(['a', 'b'], [['a', 'b'], ['b', 'b']]));
    expect(selfLoop).toEqual([expect.objectContaining({ path: ['data', 'roadmap', 'edges', 1], message: expect.stringMatching(/cycle: "b" → "b"/) })]);
  });

  it('refuses dangling edges, duplicate node, edge and pair ids, each at its path', async () => {
    expect(await refused(roadmap(['a', 'b'], [['a', 'b'], ['b', 'x'], ['y', 'a']]))).toEqual([
      { path: ['data', 'roadmap', 'edges', 1, 'target'], message: 'no node has the id "x"', type: 'custom' },
      { path: ['data', 'roadmap', 'edges', 2, 'source'], message: 'no node has the id "y"', type: 'custom' },
    ]);
    expect(await refused(roadmap(['a', 'b', 'a']))).toEqual([
      { path: ['data', 'roadmap', 'nodes', 2, 'id'], message: 'duplicate node id "a"', type: 'custom' },
    ]);
    const edges = { nodes: roadmap(['a', 'b', 'c']).nodes, edges: [{ id: 'e', source: 'a', target: 'b' }, { id: 'e', source: 'b', target: 'c' }] };
    expect(await refused(edges)).toEqual([{ path: ['data', 'roadmap', 'edges', 1, 'id'], message: 'duplicate edge id "e"', type: 'custom' }]);
    expect(await refused(roadmap(['a', 'b'], [['a', 'b'], ['a', 'b']]))).toEqual([
      { path: ['data', 'roadmap', 'edges', 1], message: 'duplicate edge from "a" to "b"', type: 'custom' },
    ]);
  });

  it('refuses more than 200 nodes, and takes exactly 200', async () => {
    const ids = Array.from({ length: 201 }, (_, i) => `n${i}`);
    const details = await refused(chain(ids));
    expect(details).toEqual([expect.objectContaining({ path: ['data', 'roadmap', 'nodes'], type: 'too_big' })]);
    const alice = await h.user();
    const big = ok(await goals(alice.key, 'create', { data: { name: 'Big', roadmap: chain(ids.slice(0, 200)) } }), 201);
    expect(big.roadmap.nodes).toHaveLength(200);
    expect(big.roadmap.nodes[199].position).toEqual({ x: 199 * LAYER_SPACING, y: 0 });
  });

  it('refuses bad labels, ids, positions and unknown fields', async () => {
    const at = (details: { path: unknown[] }[]) => details.map((d) => d.path);
    expect(at(await refused(roadmap([{ id: 'a', label: '' }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'label']]);
    expect(at(await refused(roadmap([{ id: 'a', label: '   ' }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'label']]);
    expect(at(await refused(roadmap([{ id: 'a' }, { id: 'b', label: 'x'.repeat(201) }])))).toEqual([['data', 'roadmap', 'nodes', 1, 'label']]);
    expect(at(await refused(roadmap([{ id: '' }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'id']]);
    expect(at(await refused(roadmap([{ id: 'x'.repeat(101) }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'id']]);
    expect(at(await refused(roadmap([{ id: 'a\u0000b' }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'id']]);
    expect(at(await refused(roadmap([{ id: 'a', position: { x: 1e7, y: 0 } }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'position', 'x']]);
    expect(at(await refused(roadmap([{ id: 'a', position: { x: 0 } as never }])))).toEqual([['data', 'roadmap', 'nodes', 0, 'position', 'y']]);
    expect(at(await refused({ nodes: [{ id: 'a', label: 'A', colour: 'red' }], edges: [] }))).toEqual([['data', 'roadmap', 'nodes', 0]]);
    expect(at(await refused({ nodes: [{ id: 7, label: 'A' }], edges: [] }))).toEqual([['data', 'roadmap', 'nodes', 0, 'id']]);
    expect(at(await refused({ edges: [] }))).toEqual([['data', 'roadmap', 'nodes']]);
    expect(at(await refused([]))).toEqual([['data', 'roadmap']]);
  });

  it('writes nothing when refused', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { roadmap: chain(['a', 'b']) });
    expectError(await goals(alice.key, 'update', { id: goal.id, data: { name: 'Renamed', roadmap: roadmap(['a'], [['a', 'a']]) } }), 'VALIDATION_ERROR', 400);
    const row = await goalRow(goal.id);
    expect(row.name).toBe('Roadmapped');
    expect(row.roadmap?.nodes.map((n) => n.id)).toEqual(['a', 'b']);
  });
});

describe('roadmap on create, update, get and list', () => {
  it('keeps given positions, lays out missing ones, answers the roadmap on get but not in list', async () => {
    const alice = await h.user();
    const given = roadmap(
      [
        { id: 'start', position: { x: 10, y: 20 }, completed: true },
        { id: 'left', position: { x: 300, y: -50.5 } },
      ],
      [['start', 'left']],
    );
    const created = await goalWith(alice, { roadmap: given });
    expect(created.roadmap).toEqual({
      nodes: [
        { id: 'start', label: 'Step start', completed: true, position: { x: 10, y: 20 } },
        { id: 'left', label: 'Step left', completed: false, position: { x: 300, y: -50.5 } },
      ],
      edges: [{ id: 'e0', source: 'start', target: 'left' }],
    });
    expect(created.progress).toBe(50);
    expect(ok(await goals(alice.key, 'get', { id: created.id }))).toEqual(created);
    const listed = ok(await goals(alice.key, 'list'));
    expect(listed.items[0].id).toBe(created.id);
    expect(listed.items[0]).not.toHaveProperty('roadmap');
    expect(listed.items[0].progress).toBe(50);

    // Without positions: a diamond a → (b, c) → d, laid out in three layers, edges default to none.
    const diamond = await goalWith(alice, { roadmap: roadmap(['a', 'b', 'c', 'd'], [['a', 'b'], ['a', 'c'], ['b', 'd'], ['c', 'd']]) });
    const at = Object.fromEntries(diamond.roadmap.nodes.map((n: any) => [n.id, n.position]));
    expect(at).toEqual({
      a: { x: 0, y: NODE_SPACING / 2 },
      b: { x: LAYER_SPACING, y: 0 },
      c: { x: LAYER_SPACING, y: NODE_SPACING },
      d: { x: 2 * LAYER_SPACING, y: NODE_SPACING / 2 },
    });
    const lone = await goalWith(alice, { roadmap: { nodes: [{ id: 'only', label: '  Trimmed  ' }] } });
    expect(lone.roadmap).toEqual({ nodes: [{ id: 'only', label: 'Trimmed', completed: false, position: { x: 0, y: 0 } }], edges: [] });
  });

  it('progress: the share of completed nodes with a roadmap, else the metric, else the status', async () => {
    const alice = await h.user();
    const nodes = (done: number, total: number) =>
      roadmap(Array.from({ length: total }, (_, i) => ({ id: `n${i}`, completed: i < done })));
    // The metric says 50, the roadmap 1 of 3.
    const goal = await goalWith(alice, { target_value: 8, current_value: 4, roadmap: nodes(1, 3) });
    expect(goal.progress).toBe(33.33);
    const update = (data: Record<string, unknown>) => goals(alice.key, 'update', { id: goal.id, data });
    expect(ok(await update({ roadmap: nodes(2, 3) })).progress).toBe(66.67);
    expect(ok(await update({ current_value: 8 })).progress).toBe(66.67); // the roadmap still decides
    expect(ok(await update({ roadmap: nodes(0, 0) })).progress).toBe(100); // no nodes: the metric
    expect(ok(await update({ roadmap: nodes(7, 7) })).progress).toBe(100);
    expect(ok(await update({ roadmap: nodes(0, 7) })).progress).toBe(0);
    const removed = ok(await update({ roadmap: null }));
    expect(removed).toMatchObject({ roadmap: null, progress: 100 });
    expect(ok(await update({ target_value: null, status: 'completed' })).progress).toBe(100);
    expect(ok(await update({ status: 'abandoned' })).progress).toBe(0);
    expect(ok(await update({ roadmap: nodes(1, 4) })).progress).toBe(25);
    expect((await goalRow(goal.id)).progress).toBe(25);
  });

  it('a new roadmap unlinks the items of nodes it no longer has, and syncs the items of nodes it completes or reopens', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { roadmap: chain(['a', 'b', 'c']) });
    const made = ok(
      await items(alice.key, 'batch-create', {
        data: {
          action_items: [
            { description: 'on a', goal_id: goal.id, roadmap_node_id: 'a' },
            { description: 'on b', goal_id: goal.id, roadmap_node_id: 'b' },
            { description: 'on c, done', goal_id: goal.id, roadmap_node_id: 'c', completed: true },
            { description: 'goal only', goal_id: goal.id },
          ],
        },
      }),
      201,
    ).action_items;
    expect(await nodeStates(goal.id)).toEqual({ a: false, b: false, c: true });
    await tick();
    // b goes, a is completed, c is reopened, d is new.
    const next = roadmap([{ id: 'a', completed: true }, { id: 'c' }, { id: 'd' }], [['a', 'c'], ['c', 'd']]);
    const updated = ok(await goals(alice.key, 'update', { id: goal.id, data: { roadmap: next } }));
    expect(updated.progress).toBe(33.33);
    const after = new Map(ok(await items(alice.key, 'list', { data: { goalId: goal.id } })).items.map((i: any) => [i.description, i]));
    expect(after.get('on a')).toMatchObject({ goal_id: goal.id, roadmap_node_id: 'a', completed: true, completed_at: expect.any(String) });
    expect(after.get('on b')).toMatchObject({ goal_id: goal.id, roadmap_node_id: null, completed: false });
    expect((after.get('on b') as any).updated_at > made[1].updated_at).toBe(true);
    expect(after.get('on c, done')).toMatchObject({ roadmap_node_id: 'c', completed: false, completed_at: null });
    expect(after.get('goal only')).toEqual(made[3]);

    // Removing the roadmap unlinks every node link, keeping the goal links.
    ok(await goals(alice.key, 'update', { id: goal.id, data: { roadmap: null } }));
    const unlinked = ok(await items(alice.key, 'list', { data: { goalId: goal.id } })).items;
    expect(unlinked).toHaveLength(4);
    for (const item of unlinked) expect(item.roadmap_node_id).toBeNull();
  });
});

describe('goals.update-node', () => {
  it('completes and reopens one node, recomputes progress and syncs the linked items both ways', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { target_value: 8, roadmap: chain(['n1', 'n2', 'n3', 'n4']) });
    const made = ok(
      await items(alice.key, 'batch-create', {
        data: {
          action_items: [
            { description: 'first on n1', goal_id: goal.id, roadmap_node_id: 'n1' },
            { description: 'second on n1', goal_id: goal.id, roadmap_node_id: 'n1' },
            { description: 'on n2', goal_id: goal.id, roadmap_node_id: 'n2' },
          ],
        },
      }),
      201,
    ).action_items;
    await tick();

    const completed = ok(await goals(alice.key, 'update-node', { id: goal.id, data: { node_id: 'n1', completed: true } }));
    expect(completed.progress).toBe(25);
    expect(completed.roadmap.nodes.map((n: any) => n.completed)).toEqual([true, false, false, false]);
    expect(completed.roadmap.edges).toEqual(goal.roadmap.edges);
    expect(completed.roadmap.nodes[0].position).toEqual(goal.roadmap.nodes[0].position);
    expect(completed.updated_at > goal.updated_at).toBe(true);
    expect(ok(await goals(alice.key, 'get', { id: goal.id }))).toEqual(completed);
    const byId = async () => new Map(ok(await items(alice.key, 'list')).items.map((i: any) => [i.id, i]));
    let now = await byId();
    expect(now.get(made[0].id)).toMatchObject({ completed: true, completed_at: expect.any(String) });
    expect(now.get(made[1].id)).toMatchObject({ completed: true, completed_at: expect.any(String) });
    expect(now.get(made[2].id)).toEqual(made[2]);

    // Item → node: reopening one item of n1 reopens the node...
    ok(await items(alice.key, 'update', { id: made[0].id, data: { completed: false } }));
    expect(await nodeStates(goal.id)).toEqual({ n1: false, n2: false, n3: false, n4: false });
    // ...and node → items: completing n1 again completes that item, keeping the other's completed_at.
    const kept = (await byId()).get(made[1].id) as any;
    await tick();
    ok(await goals(alice.key, 'update-node', { id: goal.id, data: { node_id: 'n1', completed: true } }));
    now = await byId();
    expect(now.get(made[0].id)).toMatchObject({ completed: true });
    expect(now.get(made[1].id)).toEqual(kept);

    const reopened = ok(await goals(alice.key, 'update-node', { id: goal.id, data: { node_id: 'n1', completed: false } }));
    expect(reopened.progress).toBe(0);
    now = await byId();
    expect(now.get(made[0].id)).toMatchObject({ completed: false, completed_at: null });
    expect(now.get(made[1].id)).toMatchObject({ completed: false, completed_at: null });

    // The node already in that state: nothing changes on the goal.
    const again = ok(await goals(alice.key, 'update-node', { id: goal.id, data: { node_id: 'n1', completed: false } }));
    expect(again.updated_at).toBe(reopened.updated_at);
  });

  it('refuses a node the roadmap does not have, or a goal without a roadmap, with VALIDATION_ERROR', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { roadmap: chain(['a', 'b']) });
    const unknown = expectError(await goals(alice.key, 'update-node', { id: goal.id, data: { node_id: 'zz', completed: true } }), 'VALIDATION_ERROR', 400) as any;
    expect(unknown.details).toEqual([{ path: ['data', 'node_id'], message: "not a node of the goal's roadmap", type: 'custom' }]);
    const plain = await goalWith(alice);
    const none = expectError(await goals(alice.key, 'update-node', { id: plain.id, data: { node_id: 'a', completed: true } }), 'VALIDATION_ERROR', 400) as any;
    expect(none.details).toEqual([{ path: ['data', 'node_id'], message: 'the goal has no roadmap', type: 'custom' }]);
    const missing = expectError(await goals(alice.key, 'update-node', { id: goal.id, data: { node_id: 'a' } }), 'VALIDATION_ERROR', 400) as any;
    expect(missing.details).toEqual([expect.objectContaining({ path: ['data', 'completed'] })]);
    expectError(await goals(alice.key, 'update-node', { data: { node_id: 'a', completed: true } }), 'VALIDATION_ERROR', 400);
    expect(await nodeStates(goal.id)).toEqual({ a: false, b: false });
  });

  it('works in admin mode on another account, and is refused to the consumer role', async () => {
    const alice = await h.user();
    const admin = await h.user('internal_admin');
    const consumer = await h.user('consumer');
    const goal = await goalWith(alice, { roadmap: chain(['a', 'b']) });
    const done = ok(await goals(admin.key, 'update-node', { id: goal.id, data: { node_id: 'b', completed: true, adminMode: true } }));
    expect(done).toMatchObject({ progress: 50, owner: { id: alice.id, email: alice.email } });
    expectError(await goals(admin.key, 'update-node', { id: goal.id, data: { node_id: 'b', completed: true } }), 'NOT_FOUND', 404);
    expectError(await goals(consumer.key, 'update-node', { id: goal.id, data: { node_id: 'a', completed: true } }), 'FORBIDDEN', 403);
    const converted = ok(await goals(admin.key, 'convert-nodes', { id: goal.id, data: { userId: alice.id } }), 201);
    expect(converted.created_count).toBe(1);
    expect(converted.action_items[0]).toMatchObject({ roadmap_node_id: 'a', owner: { id: alice.id } });
    const row = await h.db.selectFrom('action_items').select('owner_id').where('id', '=', converted.action_items[0].id).executeTakeFirstOrThrow();
    expect(row.owner_id).toBe(alice.id);
  });

  it.skipIf(!onRealPostgres())('concurrent updates of different nodes of one goal lose none (real Postgres)', async () => {
    for (let round = 0; round < 3; round++) {
      const alice = await h.user();
      const ids = Array.from({ length: 12 }, (_, i) => `n${i}`);
      const goal = await goalWith(alice, { roadmap: chain(ids) });
      // Each node has an item, so each call also writes items after the goal (the lock order under test).
      ok(await items(alice.key, 'batch-create', { data: { action_items: ids.map((id) => ({ description: id, goal_id: goal.id, roadmap_node_id: id })) } }), 201);
      const chosen = ids.slice(0, 7 + round);
      const answers = await Promise.all(
        chosen.map((id) => goals(alice.key, 'update-node', { id: goal.id, data: { node_id: id, completed: true } })),
      );
      for (const answer of answers) ok(answer);
      const states = await nodeStates(goal.id);
      expect(ids.filter((id) => states[id])).toEqual(chosen);
      expect((await goalRow(goal.id)).progress).toBe(Math.round((chosen.length / 12) * 10000) / 100);
      const done = ok(await items(alice.key, 'list', { data: { goalId: goal.id, completed: true } }));
      expect(done.count).toBe(chosen.length);

      // Nodes and items at once, completing and reopening: the goal ends exactly where the last word left each node.
      const mixed = await Promise.all([
        ...ids.map((id, i) => goals(alice.key, 'update-node', { id: goal.id, data: { node_id: id, completed: i % 2 === 0 } })),
        goals(alice.key, 'update', { id: goal.id, data: { name: `Round ${round}` } }),
      ]);
      for (const answer of mixed) ok(answer);
      expect(await nodeStates(goal.id)).toEqual(Object.fromEntries(ids.map((id, i) => [id, i % 2 === 0])));
      expect((await goalRow(goal.id)).progress).toBe(50);
      expect(ok(await items(alice.key, 'list', { data: { goalId: goal.id, completed: true } })).count).toBe(6);
    }
  });

  it('concurrent updates of different nodes are exact on the embedded database too', async () => {
    const alice = await h.user();
    const ids = ['a', 'b', 'c', 'd'];
    const goal = await goalWith(alice, { roadmap: chain(ids) });
    await Promise.all(ids.map((id) => goals(alice.key, 'update-node', { id: goal.id, data: { node_id: id, completed: true } })));
    expect((await goalRow(goal.id)).progress).toBe(100);
  });
});

describe('goals.convert-nodes', () => {
  it('creates one linked item per incomplete node not yet linked, in roadmap order, with 201', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, {
      roadmap: roadmap([{ id: 'a', label: 'Research' }, { id: 'b', label: 'Draft', completed: true }, { id: 'c', label: 'Review' }, { id: 'd', label: 'Ship' }], [['a', 'b'], ['b', 'c'], ['c', 'd']]),
    });
    const linked = ok(await items(alice.key, 'create', { data: { description: 'already on c', goal_id: goal.id, roadmap_node_id: 'c' } }), 201);
    const res = await goals(alice.key, 'convert-nodes', { id: goal.id });
    const data = ok(res, 201);
    expect(data.created_count).toBe(2);
    expect(data.action_items).toEqual([
      expect.objectContaining({ description: 'Research', goal_id: goal.id, roadmap_node_id: 'a', completed: false, due_at: null }),
      expect.objectContaining({ description: 'Ship', goal_id: goal.id, roadmap_node_id: 'd', completed: false }),
    ]);
    const all = ok(await items(alice.key, 'list', { data: { goalId: goal.id } }));
    expect(all.count).toBe(3);
    expect(all.items.map((i: any) => i.id)).toContain(linked.id);

    // Again: everything is linked or done, so nothing new.
    expect(ok(await goals(alice.key, 'convert-nodes', { id: goal.id, data: {} }), 201)).toEqual({ action_items: [], created_count: 0 });

    // The converted items drive their nodes.
    ok(await items(alice.key, 'update', { id: data.action_items[1].id, data: { completed: true } }));
    expect(await nodeStates(goal.id)).toEqual({ a: false, b: true, c: false, d: true });
    expect((await goalRow(goal.id)).progress).toBe(50);
  });

  it('converts only the nodes named, and refuses a name the roadmap does not have', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { roadmap: chain(['a', 'b', 'c']) });
    const bad = expectError(await goals(alice.key, 'convert-nodes', { id: goal.id, data: { node_ids: ['a', 'nope', 'c', 'zip'] } }), 'VALIDATION_ERROR', 400) as any;
    expect(bad.details.map((d: any) => d.path)).toEqual([['data', 'node_ids', 1], ['data', 'node_ids', 3]]);
    expect(ok(await items(alice.key, 'list', { data: { goalId: goal.id } })).count).toBe(0);
    const some = ok(await goals(alice.key, 'convert-nodes', { id: goal.id, data: { node_ids: ['c', 'a', 'c'] } }), 201);
    expect(some.action_items.map((i: any) => i.roadmap_node_id)).toEqual(['a', 'c']);
    expectError(await goals(alice.key, 'convert-nodes', { id: goal.id, data: { node_ids: [] } }), 'VALIDATION_ERROR', 400);
    const plain = await goalWith(alice);
    expect(ok(await goals(alice.key, 'convert-nodes', { id: plain.id }), 201)).toEqual({ action_items: [], created_count: 0 });
    const none = expectError(await goals(alice.key, 'convert-nodes', { id: plain.id, data: { node_ids: ['a'] } }), 'VALIDATION_ERROR', 400) as any;
    expect(none.details).toEqual([{ path: ['data', 'node_ids', 0], message: 'the goal has no roadmap', type: 'custom' }]);
  });

  it('concurrent conversions of one goal create each item once', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { roadmap: chain(['a', 'b', 'c', 'd', 'e']) });
    const answers = await Promise.all(Array.from({ length: 4 }, () => goals(alice.key, 'convert-nodes', { id: goal.id })));
    const counts = answers.map((a) => ok(a, 201).created_count);
    expect(counts.reduce((s, n) => s + n, 0)).toBe(5);
    expect(counts.filter((n) => n > 0)).toEqual([5]);
    expect(ok(await items(alice.key, 'list', { data: { goalId: goal.id } })).count).toBe(5);
  });
});

describe('the graph module', () => {
  it('finds cycles, or none in a DAG', () => {
    const graph = (edges: [string, string][]) => ({
      nodes: [...new Set(edges.flat())].map((id) => ({ id })),
      edges: edges.map(([source, target], i) => ({ id: `e${i}`, source, target })),
    });
    expect(findCycle(graph([['a', 'b'], ['b', 'c'], ['a', 'c']]))).toBeNull();
    expect(findCycle(graph([['a', 'b'], ['b', 'c'], ['c', 'a']]))).toEqual({ nodeIds: ['a', 'b', 'c'], closingEdge: 2 });
    expect(findCycle(graph([['x', 'y'], ['a', 'a']]))).toEqual({ nodeIds: ['a'], closingEdge: 1 });
    expect(checkGraph(graph([['a', 'b']]))).toEqual([]);
    // A long chain is not a recursion-depth problem.
    const ids = Array.from({ length: 5000 }, (_, i) => `n${i}`);
    const long = { nodes: ids.map((id) => ({ id })), edges: ids.slice(1).map((id, i) => ({ id: `e${i}`, source: ids[i]!, target: id })) };
    expect(findCycle(long)).toBeNull();
    long.edges.push({ id: 'back', source: ids[4999]!, target: ids[0]! });
    expect(findCycle(long)?.closingEdge).toBe(4999);
  });

  it('lays a DAG out in layers: every edge points right, no two nodes share a position, the same graph the same way', () => {
    // A random-looking but fixed DAG: edges only from lower to higher index.
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    const edges: { id: string; source: string; target: string }[] = [];
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        if ((i * 7 + j * 13) % 11 === 0) edges.push({ id: `e${edges.length}`, source: ids[i]!, target: ids[j]! });
      }
    }
    const graph = { nodes: ids.map((id) => ({ id })), edges };
    const positions = layoutRoadmap(graph);
    expect(positions.size).toBe(40);
    for (const edge of edges) expect(positions.get(edge.target)!.x).toBeGreaterThan(positions.get(edge.source)!.x);
    const seen = new Set([...positions.values()].map((p) => `${p.x},${p.y}`));
    expect(seen.size).toBe(40);
    expect([...positions.values()].every((p) => p.x % LAYER_SPACING === 0 && p.y >= 0)).toBe(true);
    expect(layoutRoadmap(graph)).toEqual(positions);
    // A side branch joins where it is needed: z → d sits in the layer just before d.
    const side = layoutRoadmap({
      nodes: ['a', 'b', 'c', 'd', 'z'].map((id) => ({ id })),
      edges: [['a', 'b'], ['b', 'c'], ['c', 'd'], ['z', 'd']].map(([source, target], i) => ({ id: `e${i}`, source: source!, target: target! })),
    });
    expect(side.get('z')!.x).toBe(side.get('c')!.x);
    // Barycenter ordering untangles a crossing: a→d, b→c laid out with c beside a's... d beside a.
    const crossed = layoutRoadmap({
      nodes: ['a', 'b', 'c', 'd'].map((id) => ({ id })),
      edges: [{ id: '1', source: 'a', target: 'd' }, { id: '2', source: 'b', target: 'c' }],
    });
    expect(Math.sign(crossed.get('a')!.y - crossed.get('b')!.y)).toBe(Math.sign(crossed.get('d')!.y - crossed.get('c')!.y));
  });
});
