import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonb } from '../src/db/json.ts';
import type { RoadmapNode } from '../src/db/schema.ts';
import { computeProgress } from '../src/resources/roadmaps/progress.ts';
import { updateItem } from '../src/resources/action-items/queries.ts';
import { completeLinkedItems, completeNodes, lockGoals } from '../src/resources/roadmaps/sync.ts';
import { registry } from '../src/resources/index.ts';
import { createHarness, expectError, onRealPostgres, ok, type Harness } from './support/harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

type User = Awaited<ReturnType<Harness['user']>>;

const items = (key: string, action: string, envelope: { id?: string; data?: unknown } = {}) =>
  h.invoke(key, { resource: 'action-items', action, ...envelope });
const createItem = (key: string, data: Record<string, unknown>) => items(key, 'create', { data });
const batch = (key: string, actionItems: unknown[]) => items(key, 'batch-create', { data: { action_items: actionItems } });

async function goal(user: User, data: Record<string, unknown> = {}): Promise<string> {
  const created = ok(await h.invoke(user.key, { resource: 'goals', action: 'create', data: { name: 'Goal', status: 'inactive', ...data } }), 201);
  return created.id;
}

const node = (id: string, completed = false): RoadmapNode => ({ id, label: `Step ${id}`, completed, position: { x: 0, y: 0 } });

/** Writes a roadmap straight into the goals table (no action writes one yet), with its progress. */
async function writeRoadmap(goalId: string, nodes: RoadmapNode[]): Promise<void> {
  const row = await h.db.selectFrom('goals').selectAll().where('id', '=', goalId).executeTakeFirstOrThrow();
  const roadmap = { nodes, edges: nodes.slice(1).map((n, i) => ({ id: `e${i}`, source: nodes[i]!.id, target: n.id })) };
  await h.db
    .updateTable('goals')
    .set({ roadmap: jsonb(roadmap), progress: computeProgress({ ...row, roadmap }) })
    .where('id', '=', goalId)
    .execute();
}

const goalRow = (id: string) => h.db.selectFrom('goals').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const itemRows = (ownerId: string) =>
  h.db.selectFrom('action_items').selectAll().where('owner_id', '=', ownerId).orderBy('id').execute();
const nodeStates = async (goalId: string) =>
  Object.fromEntries(((await goalRow(goalId)).roadmap?.nodes ?? []).map((n) => [n.id, n.completed]));
const tick = () => new Promise((r) => setTimeout(r, 5)); // timestamps have millisecond precision

/**
 * Real Postgres: the backend pid of transaction `tx`, and a wait until `count` other backends (requests) wait for
 * a lock it holds (at most 5 s) — so a test knows its request reached the lock before the transaction ends.
 */
async function backendPid(tx: postgres.TransactionSql): Promise<number> {
  return (await tx<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
}
async function waitUntilBlockedBy(pid: number, count = 1): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [row] = await h.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`;
    if (row!.n >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`fewer than ${count} requests came to wait for backend ${pid}`);
}

describe('action-items CRUD', () => {
  it('creates an item with 201 and answers the whole object; get, update and delete it', async () => {
    const alice = await h.user();
    const res = await createItem(alice.key, { description: 'Review pull request #123', due_at: '2026-12-08T15:00:00+00:00', conversation_id: 'conv_abc' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      success: true,
      data: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        description: 'Review pull request #123',
        completed: false,
        due_at: '2026-12-08T15:00:00.000Z',
        completed_at: null,
        conversation_id: 'conv_abc',
        goal_id: null,
        roadmap_node_id: null,
        created_at: expect.stringMatching(/Z$/),
        updated_at: expect.stringMatching(/Z$/),
      },
    });
    const id = res.body.data.id;
    expect(ok(await items(alice.key, 'get', { id }))).toEqual(res.body.data);

    await tick();
    const updated = ok(await items(alice.key, 'update', { id, data: { description: 'Merge it', due_at: null } }));
    expect(updated).toMatchObject({ description: 'Merge it', due_at: null, conversation_id: 'conv_abc', completed: false });
    expect(updated.updated_at > res.body.data.updated_at).toBe(true);
    expect(updated.created_at).toBe(res.body.data.created_at);

    expect(ok(await items(alice.key, 'delete', { id }))).toEqual({ id, deleted: true });
    expectError(await items(alice.key, 'get', { id }), 'NOT_FOUND', 404);
    expectError(await items(alice.key, 'delete', { id }), 'NOT_FOUND', 404);
    expect(await itemRows(alice.id)).toEqual([]);
  });

  it('refuses bad input with VALIDATION_ERROR details pointing at the field', async () => {
    const alice = await h.user();
    const path = async (data: Record<string, unknown>) => expectError(await createItem(alice.key, data), 'VALIDATION_ERROR', 400) as any;
    expect((await path({ description: '' })).details[0].path).toEqual(['data', 'description']);
    expect((await path({ description: '   ' })).details[0].path).toEqual(['data', 'description']);
    expect((await path({ description: 'x'.repeat(501) })).details[0].path).toEqual(['data', 'description']);
    expect((await path({})).details[0].path).toEqual(['data', 'description']);
    expect((await path({ description: 'x', due_at: 'tomorrow' })).details[0].path).toEqual(['data', 'due_at']);
    expect((await path({ description: 'x', conversation_id: 'c'.repeat(201) })).details[0].path).toEqual(['data', 'conversation_id']);
    expect((await path({ description: 'x', goal_id: 'not-a-uuid' })).details[0].path).toEqual(['data', 'goal_id']);
    expect((await path({ description: 'x', roadmap_node_id: 'n1' })).details).toEqual([
      { path: ['data', 'roadmap_node_id'], message: 'a roadmap node needs its goal_id', type: 'custom' },
    ]);
    expect((await path({ description: 'x', colour: 'red' })).details).toEqual([
      expect.objectContaining({ path: ['data'], type: 'unrecognized_keys' }),
    ]);
    // 500 characters is the limit, not beyond it; descriptions are trimmed.
    expect(ok(await createItem(alice.key, { description: ` ${'x'.repeat(500)} ` }), 201).description).toBe('x'.repeat(500));

    const id = ok(await createItem(alice.key, { description: 'x' }), 201).id;
    const empty = expectError(await items(alice.key, 'update', { id, data: {} }), 'VALIDATION_ERROR', 400);
    expect(empty.message).toMatch(/at least one field/);
    expectError(await items(alice.key, 'update', { id, data: { owner_id: randomUUID() } }), 'VALIDATION_ERROR', 400);
    expectError(await items(alice.key, 'update', { id, data: { roadmap_node_id: 'n1' } }), 'VALIDATION_ERROR', 400);
    expect(await itemRows(alice.id)).toHaveLength(2);
  });
});

describe('action-items.update of the fields alone (one statement)', () => {
  it('sets what the patch names, to null too, keeps what it leaves out, and writes nothing when nothing changes', async () => {
    const alice = await h.user();
    const due = '2027-03-01T09:00:00.000Z';
    const created = ok(await createItem(alice.key, { description: 'Send the deck', due_at: due, conversation_id: 'c1' }), 201);
    const id = created.id;

    await tick();
    const cleared = ok(await items(alice.key, 'update', { id, data: { conversation_id: null } }));
    expect(cleared).toMatchObject({ description: 'Send the deck', due_at: due, conversation_id: null, completed: false });
    expect(cleared.updated_at > created.updated_at).toBe(true);

    // The same values again, dates written another way included: nothing written, updated_at kept.
    await tick();
    const same = ok(await items(alice.key, 'update', { id, data: { due_at: '2027-03-01T10:00:00+01:00', conversation_id: null, description: 'Send the deck' } }));
    expect(same).toEqual(cleared);

    const moved = ok(await items(alice.key, 'update', { id, data: { due_at: null, description: 'Send the new deck' } }));
    expect(moved).toMatchObject({ description: 'Send the new deck', due_at: null, conversation_id: null });
    expect(ok(await items(alice.key, 'get', { id }))).toEqual(moved);

    // Someone else's item, and one that does not exist: NOT_FOUND, and the item is untouched.
    const bob = await h.user();
    expectError(await items(bob.key, 'update', { id, data: { description: 'Mine now' } }), 'NOT_FOUND', 404);
    expectError(await items(alice.key, 'update', { id: randomUUID(), data: { completed: true } }), 'NOT_FOUND', 404);
    expect(ok(await items(alice.key, 'get', { id }))).toEqual(moved);
  });

  it('writes a plain patch in one statement, and leaves to the transaction a node to sync or nothing to change', async () => {
    const alice = await h.user();
    const goalId = await goal(alice);
    await writeRoadmap(goalId, [node('n1'), node('n2')]);
    const [plain, linked] = ok(
      await batch(alice.key, [{ description: 'plain' }, { description: 'linked', goal_id: goalId, roadmap_node_id: 'n1' }]),
      201,
    ).action_items;
    const alone = (id: string, patch: Parameters<typeof updateItem>[1]['patch']) =>
      updateItem(h.db, { id, ownerId: alice.id, patch, unlessNodeFollows: true });
    expect(await alone(plain.id, { completed: true })).toMatchObject({ id: plain.id, completed: true, completed_at: expect.any(Date) });
    expect(await alone(linked.id, { description: 'renamed' })).toMatchObject({ id: linked.id, description: 'renamed' });
    expect(await alone(linked.id, { completed: true })).toBeUndefined();
    expect(await alone(plain.id, { completed: true })).toBeUndefined();
    expect(await alone(randomUUID(), { completed: true })).toBeUndefined();
    // Someone else's item is not written either.
    const bob = await h.user();
    expect(await updateItem(h.db, { id: plain.id, ownerId: bob.id, patch: { description: 'mine' } })).toBeUndefined();
    expect(await nodeStates(goalId)).toEqual({ n1: false, n2: false });
    // A patch that moves the item goes through the transaction (the goal locked first), with the same outcome.
    expect(ok(await items(alice.key, 'update', { id: plain.id, data: { goal_id: goalId } }))).toMatchObject({ goal_id: goalId });
  });

  it.skipIf(!onRealPostgres())(
    'an item linked to a node while a plain completion waits for it: the completion syncs the node (real Postgres)',
    async () => {
      const alice = await h.user();
      const goalId = await goal(alice);
      await writeRoadmap(goalId, [node('n1'), node('n2')]);
      const item = ok(await createItem(alice.key, { description: 'loose' }), 201);
      let completion: ReturnType<typeof items> | undefined;
      await h.sql.begin(async (tx) => {
        const pid = await backendPid(tx);
        await tx`update action_items set goal_id = ${goalId}, roadmap_node_id = 'n1' where id = ${item.id}`;
        completion = items(alice.key, 'update', { id: item.id, data: { completed: true } });
        await waitUntilBlockedBy(pid);
      });
      expect(ok(await completion!)).toMatchObject({ completed: true, goal_id: goalId, roadmap_node_id: 'n1' });
      expect(await nodeStates(goalId)).toEqual({ n1: true, n2: false });
      expect((await goalRow(goalId)).progress).toBe(50);
    },
  );
});

describe('completed_at', () => {
  it('is set when an item becomes completed, kept when completed again, and cleared when reopened', async () => {
    const alice = await h.user();
    const created = ok(await createItem(alice.key, { description: 'Call back' }), 201);
    expect(created.completed_at).toBeNull();
    const id = created.id;

    await tick();
    const done = ok(await items(alice.key, 'update', { id, data: { completed: true } }));
    expect(done.completed).toBe(true);
    expect(done.completed_at).toBe(done.updated_at);
    expect(done.completed_at > created.created_at).toBe(true);

    // The value it already has: nothing changes, not even updated_at.
    await tick();
    const again = ok(await items(alice.key, 'update', { id, data: { completed: true } }));
    expect(again).toEqual(done);
    expect(ok(await items(alice.key, 'get', { id }))).toEqual(done);

    // Another field changes; completed_at stays.
    await tick();
    const renamed = ok(await items(alice.key, 'update', { id, data: { description: 'Call back Ada', completed: true } }));
    expect(renamed.completed_at).toBe(done.completed_at);
    expect(renamed.updated_at > done.updated_at).toBe(true);

    const reopened = ok(await items(alice.key, 'update', { id, data: { completed: false } }));
    expect(reopened).toMatchObject({ completed: false, completed_at: null });
    const stillOpen = ok(await items(alice.key, 'update', { id, data: { completed: false } }));
    expect(stillOpen).toEqual(reopened);

    await tick();
    const redone = ok(await items(alice.key, 'update', { id, data: { completed: true } }));
    expect(redone.completed_at > done.completed_at).toBe(true);

    const born = ok(await createItem(alice.key, { description: 'Already done', completed: true }), 201);
    expect(born.completed_at).toBe(born.created_at);
  });

  it('is kept consistent with completed by the table itself', async () => {
    const alice = await h.user();
    const id = ok(await createItem(alice.key, { description: 'x' }), 201).id;
    await expect(h.db.updateTable('action_items').set({ completed: true }).where('id', '=', id).execute()).rejects.toThrow(/check constraint/);
  });
});

describe('action-items.batch-create', () => {
  it('creates the items in request order with 201 and created_count, all with one created_at', async () => {
    const alice = await h.user();
    const goalId = await goal(alice);
    const res = await batch(alice.key, [
      { description: 'Review Q1 report', due_at: '2026-12-10T17:00:00Z' },
      { description: 'Schedule team meeting' },
      { description: 'Send minutes', completed: true, goal_id: goalId, conversation_id: 'c1' },
    ]);
    expect(res.status).toBe(201);
    const data = res.body.data;
    expect(data.created_count).toBe(3);
    expect(data.action_items.map((i: any) => i.description)).toEqual(['Review Q1 report', 'Schedule team meeting', 'Send minutes']);
    expect(data.action_items[0]).toMatchObject({ due_at: '2026-12-10T17:00:00.000Z', completed: false, goal_id: null });
    expect(data.action_items[2]).toMatchObject({ completed: true, goal_id: goalId, conversation_id: 'c1' });
    expect(data.action_items[2].completed_at).toBe(data.action_items[2].created_at);
    expect(new Set(data.action_items.map((i: any) => i.created_at)).size).toBe(1);
    // Lists show the batch newest first: the last item of the request first.
    const listed = ok(await items(alice.key, 'list'));
    expect(listed.items.map((i: any) => i.id)).toEqual(data.action_items.map((i: any) => i.id).reverse());
    expect(listed.items).toEqual([...data.action_items].reverse());
  });

  it('answers the items exactly as stored (the rows are not read back)', async () => {
    const admin = await h.user('internal_admin');
    const alice = await h.user();
    const goalId = await goal(alice);
    const made = ok(
      await items(admin.key, 'batch-create', {
        data: {
          // An upper-case userId still answers the stored (lower-case) ids and the owner.
          userId: alice.id.toUpperCase(),
          action_items: [
            // A lone surrogate is stored as U+FFFD (text goes to Postgres as UTF-8).
            { description: 'half \ud800 a pair', conversation_id: 'c\udfff' },
            { description: 'done', completed: true, goal_id: goalId, due_at: '2026-12-10T18:00:00.123456+01:00' },
          ],
        },
      }),
      201,
    );
    expect(made.action_items.map((i: any) => i.owner.id)).toEqual([alice.id, alice.id]);
    expect(made.action_items[0]).toMatchObject({ description: 'half \ufffd a pair', conversation_id: 'c\ufffd' });
    expect(made.action_items[1]).toMatchObject({ due_at: '2026-12-10T17:00:00.123Z', goal_id: goalId });
    for (const item of made.action_items) {
      expect(ok(await items(alice.key, 'get', { id: item.id }))).toEqual((({ owner: _, ...rest }) => rest)(item));
    }
  });

  it('takes 50 items', async () => {
    const alice = await h.user();
    const res = await batch(alice.key, Array.from({ length: 50 }, (_, i) => ({ description: `Item ${i}` })));
    expect(ok(res, 201).created_count).toBe(50);
    expect(ok(res, 201).action_items.map((i: any) => i.description)).toEqual(Array.from({ length: 50 }, (_, i) => `Item ${i}`));
    expect(await itemRows(alice.id)).toHaveLength(50);
  });

  it('refuses 51 items, or none, and writes nothing', async () => {
    const alice = await h.user();
    const tooMany = expectError(await batch(alice.key, Array.from({ length: 51 }, (_, i) => ({ description: `Item ${i}` }))), 'VALIDATION_ERROR', 400) as any;
    expect(tooMany.details).toEqual([expect.objectContaining({ path: ['data', 'action_items'], type: 'too_big' })]);
    expect(tooMany.message).toMatch(/at most 50/);
    const none = expectError(await batch(alice.key, []), 'VALIDATION_ERROR', 400) as any;
    expect(none.details).toEqual([expect.objectContaining({ path: ['data', 'action_items'], type: 'too_small' })]);
    expectError(await items(alice.key, 'batch-create', { data: {} }), 'VALIDATION_ERROR', 400);
    expect(await itemRows(alice.id)).toEqual([]);
  });

  it('refuses the whole batch when one item among 50 is invalid, pointing at its index, and writes nothing', async () => {
    const alice = await h.user();
    const batchOf = (broken: Record<string, unknown>) =>
      Array.from({ length: 50 }, (_, i) => (i === 37 ? broken : { description: `Item ${i}` }));
    const empty = expectError(await batch(alice.key, batchOf({ description: '' })), 'VALIDATION_ERROR', 400) as any;
    expect(empty.details).toEqual([expect.objectContaining({ path: ['data', 'action_items', 37, 'description'] })]);
    expect(empty.message).toMatch(/^data\.action_items\.37\.description: /);
    const extra = expectError(await batch(alice.key, batchOf({ description: 'x', owner_id: randomUUID() })), 'VALIDATION_ERROR', 400) as any;
    expect(extra.details).toEqual([expect.objectContaining({ path: ['data', 'action_items', 37], type: 'unrecognized_keys' })]);
    const orphanNode = expectError(await batch(alice.key, batchOf({ description: 'x', roadmap_node_id: 'n1' })), 'VALIDATION_ERROR', 400) as any;
    expect(orphanNode.details).toEqual([expect.objectContaining({ path: ['data', 'action_items', 37, 'roadmap_node_id'] })]);
    const notObject = expectError(await batch(alice.key, batchOf('x' as never)), 'VALIDATION_ERROR', 400) as any;
    expect(notObject.details[0].path).toEqual(['data', 'action_items', 37]);
    expect(await itemRows(alice.id)).toEqual([]);
  });

  it("refuses the whole batch when one item names someone else's goal (NOT_FOUND) or a node not in its goal's roadmap", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const mine = await goal(alice);
    await writeRoadmap(mine, [node('n1'), node('n2')]);
    const theirs = await goal(bob);
    const batchOf = (broken: Record<string, unknown>) =>
      Array.from({ length: 20 }, (_, i) => (i === 12 ? broken : { description: `Item ${i}`, goal_id: mine, roadmap_node_id: 'n1', completed: true }));

    const foreign = expectError(await batch(alice.key, batchOf({ description: 'x', goal_id: theirs })), 'NOT_FOUND', 404);
    expect(foreign.message).toBe('data.action_items.12.goal_id: goal not found or you have no access to it');
    const absent = expectError(await batch(alice.key, batchOf({ description: 'x', goal_id: randomUUID() })), 'NOT_FOUND', 404);
    expect(absent.message).toBe(foreign.message);
    const badNode = expectError(await batch(alice.key, batchOf({ description: 'x', goal_id: mine, roadmap_node_id: 'n9' })), 'VALIDATION_ERROR', 400) as any;
    expect(badNode.details).toEqual([
      { path: ['data', 'action_items', 12, 'roadmap_node_id'], message: "not a node of the goal's roadmap", type: 'custom' },
    ]);
    expect(await itemRows(alice.id)).toEqual([]);
    expect(await itemRows(bob.id)).toEqual([]);
    // Nothing written includes the roadmap: the completed items of the failed batches completed no node.
    expect(await nodeStates(mine)).toEqual({ n1: false, n2: false });
    expect((await goalRow(mine)).progress).toBe(0);
  });
});

describe('creates without a roadmap node: one statement checks the goals and writes', () => {
  it("refuses the batch when one item names someone else's goal, pointing at it, and writes nothing", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const [a1, a2] = [await goal(alice), await goal(alice)];
    const theirs = await goal(bob);
    const batchOf = (broken: Record<string, unknown>) =>
      Array.from({ length: 30 }, (_, i) => (i === 17 ? broken : { description: `Item ${i}`, goal_id: i % 2 ? a1 : a2, completed: i % 3 === 0 }));

    const foreign = expectError(await batch(alice.key, batchOf({ description: 'x', goal_id: theirs })), 'NOT_FOUND', 404);
    expect(foreign.message).toBe('data.action_items.17.goal_id: goal not found or you have no access to it');
    const absent = expectError(await batch(alice.key, batchOf({ description: 'x', goal_id: randomUUID() })), 'NOT_FOUND', 404);
    expect(absent.message).toBe(foreign.message);
    const single = expectError(await createItem(alice.key, { description: 'x', goal_id: theirs }), 'NOT_FOUND', 404);
    expect(single.message).toBe('data.goal_id: goal not found or you have no access to it');
    expect(await itemRows(alice.id)).toEqual([]);
    expect(await itemRows(bob.id)).toEqual([]);

    // The same goals, each named many times, one of them in upper case (which validation lower-cases).
    const made = ok(await batch(alice.key, [...batchOf({ description: 'x', goal_id: a1.toUpperCase() }), { description: 'none' }]), 201);
    expect(made.created_count).toBe(31);
    expect(made.action_items[17].goal_id).toBe(a1);
    const stored = new Map((await itemRows(alice.id)).map((row) => [row.id, row]));
    for (const item of made.action_items) {
      expect(stored.get(item.id)).toMatchObject({ goal_id: item.goal_id, completed: item.completed, owner_id: alice.id });
    }
  });

  it.skipIf(!onRealPostgres())(
    'a goal deleted while creates wait for it: NOT_FOUND and nothing written; a deletion rolled back: created (real Postgres)',
    async () => {
      const alice = await h.user();
      for (const outcome of ['commit', 'rollback'] as const) {
        const goalId = await goal(alice);
        let created: ReturnType<typeof batch> | undefined;
        let single: ReturnType<typeof createItem> | undefined;
        await h.sql
          .begin(async (tx) => {
            const pid = await backendPid(tx);
            await tx`delete from goals where id = ${goalId}`;
            created = batch(alice.key, [{ description: 'first' }, { description: 'second', goal_id: goalId }]);
            single = createItem(alice.key, { description: 'solo', goal_id: goalId });
            await waitUntilBlockedBy(pid, 2);
            if (outcome === 'rollback') throw new Error('roll back');
          })
          .catch((error: Error) => expect(error.message).toBe('roll back'));
        if (outcome === 'commit') {
          const answer = expectError(await created!, 'NOT_FOUND', 404);
          expect(answer.message).toBe('data.action_items.1.goal_id: goal not found or you have no access to it');
          expect(expectError(await single!, 'NOT_FOUND', 404).message).toBe('data.goal_id: goal not found or you have no access to it');
          expect(await itemRows(alice.id)).toEqual([]);
        } else {
          const made = ok(await created!, 201);
          expect(made.action_items.map((item: any) => item.goal_id)).toEqual([null, goalId]);
          expect(ok(await single!, 201).goal_id).toBe(goalId);
          expect((await itemRows(alice.id)).map((row) => row.description).sort()).toEqual(['first', 'second', 'solo']);
        }
      }
    },
  );

  it.skipIf(!onRealPostgres())(
    'a user deleted while their create waits: 409 CONFLICT (retry), not a 500, and nothing written (real Postgres)',
    async () => {
      const carl = await h.user();
      ok(await createItem(carl.key, { description: 'warms the key cache' }), 201);
      let created: ReturnType<typeof createItem> | undefined;
      await h.sql.begin(async (tx) => {
        const pid = await backendPid(tx);
        await tx`delete from users where id = ${carl.id}`;
        created = createItem(carl.key, { description: 'too late' });
        // The insert's foreign-key check waits for the deleting transaction.
        await waitUntilBlockedBy(pid);
      });
      const answer = expectError(await created!, 'CONFLICT', 409);
      expect(answer.message).toBe('A record this request refers to was deleted meanwhile; retry');
      expect(await itemRows(carl.id)).toEqual([]);
    },
  );
});

describe('action-items.list', () => {
  it('filters by completed, goalId, dueBefore and dueAfter, and counts every match', async () => {
    const alice = await h.user();
    const g1 = await goal(alice);
    const g2 = await goal(alice);
    const made = ok(
      await batch(alice.key, [
        { description: 'a', due_at: '2026-01-01T00:00:00Z' },
        { description: 'b', due_at: '2026-02-01T00:00:00Z', completed: true, goal_id: g1 },
        { description: 'c', due_at: '2026-03-01T00:00:00Z', goal_id: g1 },
        { description: 'd', goal_id: g2 },
        { description: 'e', completed: true },
      ]),
      201,
    );
    expect(made.created_count).toBe(5);
    const names = async (data: Record<string, unknown>) => {
      const page = ok(await items(alice.key, 'list', { data }));
      expect(page.count).toBe(page.items.length);
      return page.items.map((i: any) => i.description).sort().join('');
    };
    expect(await names({})).toBe('abcde');
    expect(await names({ completed: true })).toBe('be');
    expect(await names({ completed: false })).toBe('acd');
    expect(await names({ goalId: g1 })).toBe('bc');
    expect(await names({ goalId: g2, completed: false })).toBe('d');
    expect(await names({ goalId: randomUUID() })).toBe('');
    expect(await names({ dueBefore: '2026-02-01T00:00:00Z' })).toBe('a'); // exclusive
    expect(await names({ dueAfter: '2026-02-01T00:00:00Z' })).toBe('bc'); // inclusive
    expect(await names({ dueAfter: '2026-01-15T00:00:00+01:00', dueBefore: '2026-03-01T00:00:01Z' })).toBe('bc');
    expect(await names({ dueAfter: '2026-01-01T00:00:00Z', completed: false, goalId: g1 })).toBe('c');

    const inverted = expectError(
      await items(alice.key, 'list', { data: { dueAfter: '2026-03-01T00:00:00Z', dueBefore: '2026-02-01T00:00:00Z' } }),
      'VALIDATION_ERROR',
      400,
    ) as any;
    expect(inverted.details[0].path).toEqual(['data', 'dueAfter']);
    expectError(await items(alice.key, 'list', { data: { dueBefore: 'soon' } }), 'VALIDATION_ERROR', 400);
    expectError(await items(alice.key, 'list', { data: { completed: 'yes' } }), 'VALIDATION_ERROR', 400);
    expectError(await items(alice.key, 'list', { data: { cursor: 'garbage' } }), 'VALIDATION_ERROR', 400);

    // The REST-style route coerces the query string by the same schema.
    const rest = await h.request('/v1/action-items?completed=false&limit=10', { key: alice.key });
    expect(rest.status).toBe(200);
    expect(rest.body.data.items.map((i: any) => i.description).sort()).toEqual(['a', 'c', 'd']);
  });

  it('pages newest first with a cursor, the count covering every page', async () => {
    const alice = await h.user();
    for (const description of ['i1', 'i2', 'i3', 'i4', 'i5']) ok(await createItem(alice.key, { description, completed: description !== 'i3' }), 201);
    const walk = async (data: Record<string, unknown>, expected: number) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = ok(await items(alice.key, 'list', { data: { ...data, limit: 2, ...(cursor && { cursor }) } }));
        expect(page.count).toBe(expected);
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((i: any) => i.description));
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      return seen;
    };
    expect(await walk({}, 5)).toEqual(['i5', 'i4', 'i3', 'i2', 'i1']);
    expect(await walk({ completed: true }, 4)).toEqual(['i5', 'i4', 'i2', 'i1']);
  });
});

describe('goal links', () => {
  it("links an item to the caller's goal, moves and unlinks it, and refuses someone else's goal with NOT_FOUND", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const g1 = await goal(alice);
    const g2 = await goal(alice);
    const theirs = await goal(bob);
    const item = ok(await createItem(alice.key, { description: 'x', goal_id: g1 }), 201);
    expect(item.goal_id).toBe(g1);

    const foreign = expectError(await createItem(alice.key, { description: 'x', goal_id: theirs }), 'NOT_FOUND', 404);
    expect(foreign.message).toBe('data.goal_id: goal not found or you have no access to it');
    const before = await itemRows(alice.id);
    const move = expectError(await items(alice.key, 'update', { id: item.id, data: { goal_id: theirs } }), 'NOT_FOUND', 404);
    expect(move.message).toBe(foreign.message);
    expect(await itemRows(alice.id)).toEqual(before);

    expect(ok(await items(alice.key, 'update', { id: item.id, data: { goal_id: g2 } })).goal_id).toBe(g2);
    expect(ok(await items(alice.key, 'update', { id: item.id, data: { goal_id: null } })).goal_id).toBeNull();
  });

  it('keeps the items of a deleted goal, unlinked from the goal and its node', async () => {
    const alice = await h.user();
    const goalId = await goal(alice);
    await writeRoadmap(goalId, [node('n1'), node('n2')]);
    const made = ok(
      await batch(alice.key, [
        { description: 'linked to a node', goal_id: goalId, roadmap_node_id: 'n1', completed: true },
        { description: 'linked to the goal', goal_id: goalId },
        { description: 'loose' },
      ]),
      201,
    );
    ok(await h.invoke(alice.key, { resource: 'goals', action: 'delete', id: goalId }));
    const after = ok(await items(alice.key, 'list'));
    expect(after.count).toBe(3);
    for (const item of after.items) expect(item).toMatchObject({ goal_id: null, roadmap_node_id: null });
    const kept = ok(await items(alice.key, 'get', { id: made.action_items[0].id }));
    expect(kept).toMatchObject({ description: 'linked to a node', completed: true, completed_at: made.action_items[0].completed_at });
    // An unlinked item can be completed and reopened like any other.
    ok(await items(alice.key, 'update', { id: kept.id, data: { completed: false } }));
  });
});

describe('roadmap node sync', () => {
  it('validates the node against the goal roadmap', async () => {
    const alice = await h.user();
    const plain = await goal(alice);
    const mapped = await goal(alice);
    await writeRoadmap(mapped, [node('n1'), node('n2')]);
    const noRoadmap = expectError(await createItem(alice.key, { description: 'x', goal_id: plain, roadmap_node_id: 'n1' }), 'VALIDATION_ERROR', 400) as any;
    expect(noRoadmap.details).toEqual([{ path: ['data', 'roadmap_node_id'], message: "not a node of the goal's roadmap", type: 'custom' }]);
    expectError(await createItem(alice.key, { description: 'x', goal_id: mapped, roadmap_node_id: 'n3' }), 'VALIDATION_ERROR', 400);
    const item = ok(await createItem(alice.key, { description: 'x', goal_id: mapped, roadmap_node_id: 'n1' }), 201);
    expect(item).toMatchObject({ goal_id: mapped, roadmap_node_id: 'n1' });
    expectError(await items(alice.key, 'update', { id: item.id, data: { roadmap_node_id: 'n3' } }), 'VALIDATION_ERROR', 400);
    expectError(await items(alice.key, 'update', { id: item.id, data: { goal_id: plain, roadmap_node_id: 'n2' } }), 'VALIDATION_ERROR', 400);
    expectError(await items(alice.key, 'update', { id: item.id, data: { goal_id: null, roadmap_node_id: 'n2' } }), 'VALIDATION_ERROR', 400);
    expect(ok(await items(alice.key, 'update', { id: item.id, data: { roadmap_node_id: 'n2' } })).roadmap_node_id).toBe('n2');
    // Moving the item to another goal drops the node, which belonged to the old goal.
    expect(ok(await items(alice.key, 'update', { id: item.id, data: { goal_id: plain } }))).toMatchObject({ goal_id: plain, roadmap_node_id: null });
    // Unlinking just the node keeps the goal.
    const other = ok(await createItem(alice.key, { description: 'y', goal_id: mapped, roadmap_node_id: 'n1' }), 201);
    expect(ok(await items(alice.key, 'update', { id: other.id, data: { roadmap_node_id: null } }))).toMatchObject({ goal_id: mapped, roadmap_node_id: null });
  });

  it("completing or reopening a linked item completes or reopens its node and recomputes the goal's progress", async () => {
    const alice = await h.user();
    const goalId = await goal(alice, { target_value: 8 }); // without the roadmap, progress would follow the metric
    await writeRoadmap(goalId, [node('n1'), node('n2'), node('n3'), node('n4')]);
    const first = ok(await createItem(alice.key, { description: 'Step 1', goal_id: goalId, roadmap_node_id: 'n1' }), 201);
    expect((await goalRow(goalId)).progress).toBe(0);
    const before = await goalRow(goalId);

    await tick();
    ok(await items(alice.key, 'update', { id: first.id, data: { completed: true } }));
    expect(await nodeStates(goalId)).toEqual({ n1: true, n2: false, n3: false, n4: false });
    const afterComplete = await goalRow(goalId);
    expect(afterComplete.progress).toBe(25);
    expect(afterComplete.updated_at.getTime()).toBeGreaterThan(before.updated_at.getTime());
    expect(afterComplete.roadmap?.edges).toEqual(before.roadmap?.edges);
    const got = ok(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goalId }));
    expect(got.progress).toBe(25);
    expect(got.roadmap.nodes[0]).toEqual({ ...node('n1'), completed: true });

    // Completing it again changes nothing, on the goal either.
    ok(await items(alice.key, 'update', { id: first.id, data: { completed: true } }));
    expect((await goalRow(goalId)).updated_at).toEqual(afterComplete.updated_at);

    ok(await items(alice.key, 'update', { id: first.id, data: { completed: false } }));
    expect(await nodeStates(goalId)).toEqual({ n1: false, n2: false, n3: false, n4: false });
    expect((await goalRow(goalId)).progress).toBe(0);

    // Created completed: the node completes. Batches too, one roadmap write per goal.
    ok(await createItem(alice.key, { description: 'Step 2', goal_id: goalId, roadmap_node_id: 'n2', completed: true }), 201);
    expect((await goalRow(goalId)).progress).toBe(25);
    ok(
      await batch(alice.key, [
        { description: 'Step 3', goal_id: goalId, roadmap_node_id: 'n3', completed: true },
        { description: 'Step 4a', goal_id: goalId, roadmap_node_id: 'n4', completed: true },
        { description: 'Step 4b', goal_id: goalId, roadmap_node_id: 'n4' },
      ]),
      201,
    );
    expect(await nodeStates(goalId)).toEqual({ n1: false, n2: true, n3: true, n4: true });
    expect((await goalRow(goalId)).progress).toBe(75);

    // Linking an item (without completing or reopening it) leaves the node alone; so does deleting it.
    const loose = ok(await createItem(alice.key, { description: 'Done elsewhere', completed: true }), 201);
    ok(await items(alice.key, 'update', { id: loose.id, data: { goal_id: goalId, roadmap_node_id: 'n1' } }));
    expect((await nodeStates(goalId)).n1).toBe(false);
    ok(await items(alice.key, 'delete', { id: loose.id }));
    expect((await goalRow(goalId)).progress).toBe(75);

    // Completing and relinking in one update syncs the node the item ends up on.
    const mover = ok(await createItem(alice.key, { description: 'Mover', goal_id: goalId, roadmap_node_id: 'n2' }), 201);
    ok(await items(alice.key, 'update', { id: mover.id, data: { roadmap_node_id: 'n1', completed: true } }));
    expect(await nodeStates(goalId)).toEqual({ n1: true, n2: true, n3: true, n4: true });
    expect((await goalRow(goalId)).progress).toBe(100);
  });

  it('node → items: completeLinkedItems completes or reopens the items of a node, keeping completed_at of those already there', async () => {
    const alice = await h.user();
    const goalId = await goal(alice);
    await writeRoadmap(goalId, [node('n1'), node('n2')]);
    const made = ok(
      await batch(alice.key, [
        { description: 'open on n1', goal_id: goalId, roadmap_node_id: 'n1' },
        { description: 'done on n1', goal_id: goalId, roadmap_node_id: 'n1', completed: true },
        { description: 'open on n2', goal_id: goalId, roadmap_node_id: 'n2' },
        { description: 'open, goal only', goal_id: goalId },
      ]),
      201,
    );
    const [open1, done1, open2, goalOnly] = made.action_items;
    await tick();
    // What goals.update-node will do: lock the goal, change the node, then the node's items.
    const changed = await h.db.transaction().execute(async (trx) => {
      const goals = await lockGoals(trx, { ownerId: alice.id, goalIds: [goalId], lock: 'roadmap' });
      await completeNodes(trx, goals.get(goalId)!, [{ nodeId: 'n1', completed: true }]);
      return completeLinkedItems(trx, { goalId, nodeIds: ['n1'], completed: true });
    });
    expect(changed.map((r) => r.id)).toEqual([open1.id]);
    expect((await goalRow(goalId)).progress).toBe(50);
    const after = new Map(ok(await items(alice.key, 'list')).items.map((i: any) => [i.id, i]));
    expect(after.get(open1.id)).toMatchObject({ completed: true, completed_at: expect.any(String) });
    expect((after.get(open1.id) as any).completed_at > open1.created_at).toBe(true);
    expect(after.get(done1.id)).toEqual(done1);
    expect(after.get(open2.id)).toEqual(open2);
    expect(after.get(goalOnly.id)).toEqual(goalOnly);

    await h.db.transaction().execute((trx) => completeLinkedItems(trx, { goalId, nodeIds: ['n1'], completed: false }));
    const reopened = ok(await items(alice.key, 'list', { data: { completed: true } }));
    expect(reopened.count).toBe(0);
  });

  it.skipIf(!onRealPostgres())(
    "completing several items of one goal concurrently leaves the goal's progress exact (real Postgres)",
    async () => {
      for (let round = 0; round < 3; round++) {
        const alice = await h.user();
        const goalId = await goal(alice);
        const ids = Array.from({ length: 8 }, (_, i) => `n${i}`);
        await writeRoadmap(goalId, ids.map((id) => node(id)));
        const made = ok(await batch(alice.key, ids.map((id) => ({ description: id, goal_id: goalId, roadmap_node_id: id }))), 201);
        const chosen = made.action_items.slice(0, 5 + round);
        const answers = await Promise.all(chosen.map((item: any) => items(alice.key, 'update', { id: item.id, data: { completed: true } })));
        for (const answer of answers) ok(answer);
        const states = await nodeStates(goalId);
        expect(Object.values(states).filter(Boolean)).toHaveLength(chosen.length);
        expect((await goalRow(goalId)).progress).toBe(Math.round((chosen.length / 8) * 10000) / 100);

        // Reopening some while completing the rest, all at once.
        const mixed = await Promise.all(
          made.action_items.map((item: any, i: number) =>
            items(alice.key, 'update', { id: item.id, data: { completed: i >= 2 } }),
          ),
        );
        for (const answer of mixed) ok(answer);
        expect(await nodeStates(goalId)).toEqual(Object.fromEntries(ids.map((id, i) => [id, i >= 2])));
        expect((await goalRow(goalId)).progress).toBe(75);
      }
    },
  );

  it('concurrent completions are exact on the embedded database too (requests take turns there)', async () => {
    const alice = await h.user();
    const goalId = await goal(alice);
    const ids = ['a', 'b', 'c'];
    await writeRoadmap(goalId, ids.map((id) => node(id)));
    const made = ok(await batch(alice.key, ids.map((id) => ({ description: id, goal_id: goalId, roadmap_node_id: id }))), 201);
    await Promise.all(made.action_items.map((item: any) => items(alice.key, 'update', { id: item.id, data: { completed: true } })));
    expect((await goalRow(goalId)).progress).toBe(100);
  });
});

describe('admin mode and roles', () => {
  it("adminMode lists, gets, updates and deletes every account's items, each carrying owner", async () => {
    const admin = await h.user('internal_admin', 'Ada Admin');
    const alice = await h.user('standard_user', 'Alice');
    const token = randomUUID();
    const item = ok(await createItem(alice.key, { description: 'x', conversation_id: token }), 201);
    const owner = { id: alice.id, email: alice.email, name: 'Alice' };

    const listed = ok(await items(admin.key, 'list', { data: { adminMode: true, limit: 100 } }));
    expect(listed.items.find((i: any) => i.id === item.id)).toEqual({ ...item, owner });
    expect(ok(await items(admin.key, 'list', { data: { userId: alice.id } }))).toEqual({ items: [{ ...item, owner }], count: 1, next_cursor: null });
    expect(ok(await items(admin.key, 'get', { id: item.id, data: { adminMode: true } }))).toEqual({ ...item, owner });
    expectError(await items(admin.key, 'get', { id: item.id }), 'NOT_FOUND', 404);

    const done = ok(await items(admin.key, 'update', { id: item.id, data: { adminMode: true, completed: true } }));
    expect(done).toMatchObject({ completed: true, owner });
    expect((await itemRows(alice.id))[0]!.owner_id).toBe(alice.id);
    ok(await items(admin.key, 'delete', { id: item.id, data: { adminMode: true } }));
    expect(await itemRows(alice.id)).toEqual([]);
  });

  it("userId creates items (and batches) owned by that user, linked only to that user's goals", async () => {
    const admin = await h.user('internal_admin');
    const alice = await h.user();
    const aliceGoal = await goal(alice);
    const adminGoal = await goal(admin);
    const created = ok(await createItem(admin.key, { description: 'for Alice', goal_id: aliceGoal, userId: alice.id }), 201);
    expect(created.owner.id).toBe(alice.id);
    const made = ok(
      await items(admin.key, 'batch-create', { data: { userId: alice.id, action_items: [{ description: 'b1' }, { description: 'b2', goal_id: aliceGoal }] } }),
      201,
    );
    expect(made.action_items.map((i: any) => i.owner.id)).toEqual([alice.id, alice.id]);
    // The item would be Alice's; the admin's own goal is not hers.
    expectError(await createItem(admin.key, { description: 'x', goal_id: adminGoal, userId: alice.id }), 'NOT_FOUND', 404);
    // adminMode create belongs to the admin, so it links only the admin's goals.
    const own = ok(await createItem(admin.key, { description: 'mine', goal_id: adminGoal, adminMode: true }), 201);
    expect(own.owner.id).toBe(admin.id);
    expectError(await createItem(admin.key, { description: 'x', goal_id: aliceGoal, adminMode: true }), 'NOT_FOUND', 404);
    // Updating Alice's item in adminMode links only Alice's goals.
    expectError(await items(admin.key, 'update', { id: created.id, data: { adminMode: true, goal_id: adminGoal } }), 'NOT_FOUND', 404);
    expect((await itemRows(alice.id)).map((r) => r.goal_id ?? 'none').sort()).toEqual([aliceGoal, aliceGoal, 'none'].sort());
  });

  it('the consumer role reads but does not write; adminMode without the admin role is FORBIDDEN', async () => {
    const consumer = await h.user('consumer');
    const alice = await h.user();
    const [row] = await h.db.insertInto('action_items').values({ owner_id: consumer.id, description: 'seeded' }).returningAll().execute();
    expect(ok(await items(consumer.key, 'list')).count).toBe(1);
    expect(ok(await items(consumer.key, 'get', { id: row!.id })).description).toBe('seeded');
    expectError(await createItem(consumer.key, { description: 'x' }), 'FORBIDDEN', 403);
    expectError(await batch(consumer.key, [{ description: 'x' }]), 'FORBIDDEN', 403);
    expectError(await items(consumer.key, 'update', { id: row!.id, data: { completed: true } }), 'FORBIDDEN', 403);
    expectError(await items(consumer.key, 'delete', { id: row!.id }), 'FORBIDDEN', 403);
    expectError(await items(alice.key, 'list', { data: { adminMode: true } }), 'FORBIDDEN', 403);
    expectError(await createItem(alice.key, { description: 'x', userId: consumer.id }), 'FORBIDDEN', 403);
    expect(await itemRows(consumer.id)).toEqual([row]);
    expect(await itemRows(alice.id)).toEqual([]);
  });
});

// ---- the ownership matrix ----------------------------------------------------------------------

/** One user's records: a goal with a roadmap, an item linked to a node of it, a loose completed item. */
interface Side {
  user: User;
  goalId: string;
  itemId: string;
  looseItemId: string;
}

async function side(): Promise<Side> {
  const user = await h.user();
  const goalId = await goal(user);
  await writeRoadmap(goalId, [node('n1'), node('n2')]);
  const made = ok(
    await batch(user.key, [
      { description: 'linked', goal_id: goalId, roadmap_node_id: 'n1', due_at: '2026-06-01T00:00:00Z' },
      { description: 'loose', completed: true },
    ]),
    201,
  );
  return { user, goalId, itemId: made.action_items[0].id, looseItemId: made.action_items[1].id };
}

/** A's ids, or ids that exist nowhere. */
interface Target {
  goalId: string;
  itemId: string;
  looseItemId: string;
}
const absent = (): Target => ({ goalId: randomUUID(), itemId: randomUUID(), looseItemId: randomUUID() });

async function snapshot(ownerIds: string[]) {
  const [goals, actionItems] = await Promise.all([
    h.db.selectFrom('goals').selectAll().where('owner_id', 'in', ownerIds).orderBy('id').execute(),
    h.db.selectFrom('action_items').selectAll().where('owner_id', 'in', ownerIds).orderBy('id').execute(),
  ]);
  return { goals, actionItems };
}

interface ErrorCase {
  action: string;
  title: string;
  /** B's call against `t`: A's records, or (for the comparison) records that do not exist. */
  call: (b: Side, t: Target) => { id?: string; data?: unknown };
}
interface CheckCase {
  action: string;
  title: string;
  check: (a: Side, b: Side) => Promise<void>;
}
type Case = ErrorCase | CheckCase;

const cases: Case[] = [
  {
    action: 'list',
    title: "B's list holds only B's items, also filtered by A's goal or by A's due dates",
    check: async (a, b) => {
      const mine = ok(await items(b.user.key, 'list'));
      expect(mine.count).toBe(2);
      expect(mine.items.map((i: any) => i.id).sort()).toEqual([b.itemId, b.looseItemId].sort());
      expect(ok(await items(b.user.key, 'list', { data: { goalId: a.goalId } }))).toEqual({ items: [], count: 0, next_cursor: null });
      const due = ok(await items(b.user.key, 'list', { data: { dueAfter: '2026-06-01T00:00:00Z' } }));
      expect(due.items.map((i: any) => i.id)).toEqual([b.itemId]);
    },
  },
  { action: 'get', title: "B gets A's item", call: (_b, t) => ({ id: t.itemId }) },
  { action: 'create', title: "B creates an item linked to A's goal", call: (_b, t) => ({ data: { description: 'Hijack', goal_id: t.goalId } }) },
  {
    action: 'create',
    title: "B creates an item linked to a node of A's goal",
    call: (_b, t) => ({ data: { description: 'Hijack', goal_id: t.goalId, roadmap_node_id: 'n2', completed: true } }),
  },
  {
    action: 'batch-create',
    title: "B batch-creates items, one linked to A's goal",
    call: (b, t) => ({
      data: {
        action_items: [
          { description: 'fine', goal_id: b.goalId, roadmap_node_id: 'n2', completed: true },
          { description: 'Hijack', goal_id: t.goalId, roadmap_node_id: 'n2', completed: true },
        ],
      },
    }),
  },
  { action: 'update', title: "B renames A's item", call: (_b, t) => ({ id: t.itemId, data: { description: 'Hijacked' } }) },
  { action: 'update', title: "B completes A's linked item", call: (_b, t) => ({ id: t.itemId, data: { completed: true } }) },
  { action: 'update', title: "B reopens A's completed item", call: (_b, t) => ({ id: t.looseItemId, data: { completed: false } }) },
  { action: 'update', title: "B moves A's item to B's goal", call: (b, t) => ({ id: t.itemId, data: { goal_id: b.goalId } }) },
  { action: 'update', title: "B links B's own item to A's goal", call: (b, t) => ({ id: b.looseItemId, data: { goal_id: t.goalId } }) },
  {
    action: 'update',
    title: "B links B's own item to a node of A's goal and completes it",
    call: (b, t) => ({ id: b.looseItemId, data: { goal_id: t.goalId, roadmap_node_id: 'n2', completed: false } }),
  },
  { action: 'delete', title: "B deletes A's item", call: (_b, t) => ({ id: t.itemId }) },
];

describe('action-items ownership matrix', () => {
  it('covers every action of action-items', () => {
    expect([...new Set(cases.map((c) => c.action))].sort()).toEqual(Object.keys(registry['action-items']).sort());
  });

  for (const c of cases) {
    it(`${c.action}: ${c.title}`, async () => {
      const a = await side();
      const b = await side();
      const before = await snapshot([a.user.id, b.user.id]);
      expect(before.actionItems).toHaveLength(4);
      if ('check' in c) {
        await c.check(a, b);
      } else {
        const seen = expectError(await items(b.user.key, c.action, c.call(b, a)), 'NOT_FOUND', 404);
        // Indistinguishable from records that do not exist.
        const unseen = expectError(await items(b.user.key, c.action, c.call(b, absent())), 'NOT_FOUND', 404);
        const { request_id: _r1, ...seenRest } = seen as Record<string, unknown>;
        const { request_id: _r2, ...unseenRest } = unseen as Record<string, unknown>;
        expect(seenRest).toEqual(unseenRest);
      }
      expect(await snapshot([a.user.id, b.user.id])).toEqual(before);
    });
  }
});
