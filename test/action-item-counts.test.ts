import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/client.ts';
import { createHarness, ok, onRealPostgres, type Harness } from './support/harness.ts';

/**
 * `action-items.list` answers `count` from action_item_counts (db/0005): delta rows written by triggers on
 * action_items (per statement for inserts and deletes, per moved row for updates), a key's count the sum of its
 * rows, folded now and then. These tests write items every way the API can (create, batch-create, update,
 * delete, a roadmap node's completion, convert-nodes, a goal's or a user's deletion) and check after each step
 * that every filter's count is the number of items it matches, and that the kept sums are exactly what counting
 * the items gives.
 */

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

type User = Awaited<ReturnType<Harness['user']>>;

const items = (key: string, action: string, rest: Record<string, unknown> = {}) =>
  h.invoke(key, { resource: 'action-items', action, ...rest });
const goals = (key: string, action: string, rest: Record<string, unknown> = {}) =>
  h.invoke(key, { resource: 'goals', action, ...rest });

/** action_item_counts of an owner summed per key (keys summing to 0 left out), and the same counted from the items. */
async function keptAndCounted(ownerId: string) {
  const line = (r: { goal_id: string | null; completed: boolean; n: string | number }) => `${r.goal_id ?? '-'}|${r.completed}|${r.n}`;
  const kept = await h.db
    .selectFrom('action_item_counts')
    .select(['goal_id', 'completed', (eb) => eb.fn.sum<string>('n').as('n')])
    .where('owner_id', '=', ownerId)
    .groupBy(['goal_id', 'completed'])
    .having((eb) => eb.fn.sum('n'), '<>', 0)
    .execute();
  const counted = await h.db
    .selectFrom('action_items')
    .select(['goal_id', 'completed', (eb) => eb.fn.countAll<string>().as('n')])
    .where('owner_id', '=', ownerId)
    .groupBy(['goal_id', 'completed'])
    .execute();
  return { kept: kept.map(line).sort(), counted: counted.map(line).sort() };
}

/** Every filter combination of goalId (each goal, none) × completed (true, false, none): its count against the items. */
async function expectCountsExact(user: User, goalIds: string[]) {
  const { kept, counted } = await keptAndCounted(user.id);
  expect(kept).toEqual(counted);
  const rows = await h.db.selectFrom('action_items').select(['goal_id', 'completed']).where('owner_id', '=', user.id).execute();
  for (const goalId of [undefined, ...goalIds]) {
    for (const completed of [undefined, true, false]) {
      const data = { ...(goalId && { goalId }), ...(completed !== undefined && { completed }), limit: 1 };
      const listed = ok(await items(user.key, 'list', { data }));
      const expected = rows.filter((r) => (!goalId || r.goal_id === goalId) && (completed === undefined || r.completed === completed)).length;
      expect({ data, count: listed.count }).toEqual({ data, count: expected });
    }
  }
}

const ownerRows = (ownerId: string) =>
  h.db.selectFrom('action_item_counts').select(['goal_id', 'completed', 'n']).where('owner_id', '=', ownerId).execute();

describe('action-items.list count, kept by triggers', () => {
  it('stays exact through creates, a batch, updates, completion, deletes and a deleted goal', async () => {
    const alice = await h.user();
    const [g1, g2] = [
      ok(await goals(alice.key, 'create', { data: { name: 'One', status: 'inactive' } }), 201).id as string,
      ok(await goals(alice.key, 'create', { data: { name: 'Two', status: 'inactive' } }), 201).id as string,
    ];
    await expectCountsExact(alice, [g1, g2]);

    const made: string[] = [];
    made.push(ok(await items(alice.key, 'create', { data: { description: 'loose' } }), 201).id);
    made.push(ok(await items(alice.key, 'create', { data: { description: 'done on one', goal_id: g1, completed: true } }), 201).id);
    const batch = ok(
      await items(alice.key, 'batch-create', {
        data: {
          action_items: [
            { description: 'b1', goal_id: g1 },
            { description: 'b2', goal_id: g2, completed: true },
            { description: 'b3', goal_id: g2 },
            { description: 'b4' },
            { description: 'b5', goal_id: g1, due_at: '2030-01-01T00:00:00Z' },
          ],
        },
      }),
      201,
    );
    made.push(...batch.action_items.map((i: { id: string }) => i.id));
    await expectCountsExact(alice, [g1, g2]);

    ok(await items(alice.key, 'update', { id: made[0], data: { goal_id: g2 } }));
    ok(await items(alice.key, 'update', { id: made[1], data: { completed: false } }));
    ok(await items(alice.key, 'update', { id: made[2], data: { goal_id: null, completed: true } }));
    ok(await items(alice.key, 'update', { id: made[3], data: { description: 'only the words' } }));
    await expectCountsExact(alice, [g1, g2]);

    ok(await items(alice.key, 'delete', { id: made[4] }));
    await expectCountsExact(alice, [g1, g2]);

    // Deleting goal Two moves its items to no goal (ON DELETE SET NULL): Two's keys sum to 0.
    ok(await goals(alice.key, 'delete', { id: g2 }));
    await expectCountsExact(alice, [g1]);
  });

  it("a roadmap node's completion and convert-nodes keep the counts exact", async () => {
    const bea = await h.user();
    const roadmap = {
      nodes: ['a', 'b', 'c'].map((id) => ({ id, label: `Step ${id}` })),
      edges: [
        { id: 'e0', source: 'a', target: 'b' },
        { id: 'e1', source: 'b', target: 'c' },
      ],
    };
    const goal = ok(await goals(bea.key, 'create', { data: { name: 'Mapped', status: 'inactive', roadmap } }), 201).id as string;
    expect(ok(await goals(bea.key, 'convert-nodes', { id: goal }), 201).created_count).toBe(3);
    await expectCountsExact(bea, [goal]);
    // Completing node a completes its linked item (node → items), in the goal's transaction.
    ok(await goals(bea.key, 'update-node', { id: goal, data: { node_id: 'a', completed: true } }));
    await expectCountsExact(bea, [goal]);
    expect(ok(await items(bea.key, 'list', { data: { goalId: goal, completed: true } })).count).toBe(1);
  });

  it('a batch adds one row per key it writes, not one per item', async () => {
    const cy = await h.user();
    const goal = ok(await goals(cy.key, 'create', { data: { name: 'G', status: 'inactive' } }), 201).id as string;
    const action_items = Array.from({ length: 50 }, (_, i) => ({ description: `i${i}`, goal_id: goal }));
    ok(await items(cy.key, 'batch-create', { data: { action_items } }), 201);
    expect(await ownerRows(cy.id)).toEqual([{ goal_id: goal, completed: false, n: 50 }]);
    await expectCountsExact(cy, [goal]);
  });

  it('folding the rows of an owner keeps every sum and leaves one row per key', async () => {
    const gus = await h.user();
    const goal = ok(await goals(gus.key, 'create', { data: { name: 'G', status: 'inactive' } }), 201).id as string;
    const made: string[] = [];
    for (let i = 0; i < 6; i++) made.push(ok(await items(gus.key, 'create', { data: { description: `g${i}`, goal_id: goal } }), 201).id);
    for (const id of made.slice(0, 2)) ok(await items(gus.key, 'update', { id, data: { completed: true } }));
    const before = await keptAndCounted(gus.id);
    await sql`select action_item_counts_fold(${gus.id})`.execute(h.db);
    const rows = await ownerRows(gus.id);
    expect(rows.map((r) => `${r.goal_id}|${r.completed}|${r.n}`).sort()).toEqual([`${goal}|false|4`, `${goal}|true|2`]);
    expect(await keptAndCounted(gus.id)).toEqual(before);
    await expectCountsExact(gus, [goal]);
  });

  it('counts one user for an admin acting as that user, everyone in adminMode, and due filters by counting', async () => {
    const [alice, bob, admin] = [await h.user(), await h.user(), await h.user('internal_admin')];
    for (let i = 0; i < 3; i++) ok(await items(alice.key, 'create', { data: { description: `a${i}`, due_at: `2031-0${i + 1}-01T00:00:00Z` } }), 201);
    ok(await items(bob.key, 'create', { data: { description: 'b', completed: true } }), 201);
    expect(ok(await items(alice.key, 'list')).count).toBe(3);
    expect(ok(await items(admin.key, 'list', { data: { userId: alice.id } })).count).toBe(3);
    expect(ok(await items(admin.key, 'list', { data: { userId: alice.id, completed: true } })).count).toBe(0);
    expect(ok(await items(alice.key, 'list', { data: { dueBefore: '2031-02-15T00:00:00Z' } })).count).toBe(2);
    expect(ok(await items(alice.key, 'list', { data: { dueAfter: '2031-02-01T00:00:00Z', completed: false } })).count).toBe(2);
    // Across every account: the kept sums of everyone, which must be every item there is.
    const [{ counted }] = (await sql<{ counted: number }>`select count(*)::int as counted from action_items`.execute(h.db)).rows as [
      { counted: number },
    ];
    expect(ok(await items(admin.key, 'list', { data: { adminMode: true, limit: 1 } })).count).toBe(counted);
  });

  it('a list without a due filter reads the kept sums, not the items (a delta row written by hand shows in it)', async () => {
    const dee = await h.user();
    ok(await items(dee.key, 'create', { data: { description: 'one', due_at: '2031-01-01T00:00:00Z' } }), 201);
    await sql`insert into action_item_counts (owner_id, goal_id, completed, n) values (${dee.id}, null, false, 1000)`.execute(h.db);
    try {
      expect(ok(await items(dee.key, 'list')).count).toBe(1001);
      expect(ok(await items(dee.key, 'list', { data: { completed: false } })).count).toBe(1001);
      expect(ok(await items(dee.key, 'list', { data: { dueAfter: '2030-01-01T00:00:00Z' } })).count).toBe(1);
    } finally {
      await sql`delete from action_item_counts where owner_id = ${dee.id} and n = 1000`.execute(h.db);
    }
  });

  it('a deleted user leaves no count rows', async () => {
    const carol = await h.user();
    const goal = ok(await goals(carol.key, 'create', { data: { name: 'C', status: 'inactive' } }), 201).id as string;
    ok(await items(carol.key, 'batch-create', { data: { action_items: [{ description: 'x', goal_id: goal }, { description: 'y' }] } }), 201);
    expect((await keptAndCounted(carol.id)).kept).toHaveLength(2);
    await h.db.deleteFrom('users').where('id', '=', carol.id).execute();
    expect(await ownerRows(carol.id)).toEqual([]);
  });

  it('the migration counts the items that were there before it (the backfill), and TRUNCATE takes the counts too', async () => {
    // A fresh embedded database migrated to the version before action_item_counts, items written, then the rest.
    const dir = mkdtempSync(join(tmpdir(), 'goalpost-item-backfill-'));
    const fresh = await openDatabase({ dataDir: dir });
    try {
      // The files of db/, imported here (Kysely's FileMigrationProvider cannot import TypeScript under vitest).
      const files = readdirSync('db').filter((file) => file.endsWith('.ts'));
      const migrations = Object.fromEntries(
        await Promise.all(files.map(async (file) => [file.replace(/\.ts$/, ''), await import(`../db/${file}`)] as const)),
      );
      const migrator = new Migrator({
        db: fresh.db,
        provider: { getMigrations: async () => migrations },
        migrationTableName: 'goalpost_migrations',
        migrationLockTableName: 'goalpost_migrations_lock',
      });
      expect((await migrator.migrateTo('0004_goal_counts')).error).toBeUndefined();
      await sql`
        with u as (insert into users (email) values ('item-backfill@test.goalpost') returning id),
             g as (insert into goals (owner_id, name, status) select id, 'G', 'inactive' from u returning id, owner_id)
        insert into action_items (owner_id, goal_id, description, completed, completed_at)
        select g.owner_id, case when i % 3 = 0 then null else g.id end, 'i' || i, i % 2 = 0, case when i % 2 = 0 then now() end
        from g cross join generate_series(1, 10) as i`.execute(fresh.db);
      expect((await migrator.migrateToLatest()).results?.map((r) => r.migrationName)).toContain('0005_action_item_counts');
      const counts = await fresh.db
        .selectFrom('action_item_counts')
        .select([sql<string>`(goal_id is null)::text`.as('goalless'), 'completed', 'n'])
        .orderBy('goalless')
        .orderBy('completed')
        .execute();
      // i = 1..10, completed when even: on the goal 2, 4, 8, 10 completed and 1, 5, 7 not; goalless 6 completed,
      // 3 and 9 not.
      expect(counts.map((c) => `${c.goalless}|${c.completed}|${c.n}`)).toEqual(['false|false|3', 'false|true|4', 'true|false|2', 'true|true|1']);
      await sql`truncate action_items`.execute(fresh.db);
      expect(await fresh.db.selectFrom('action_item_counts').select('n').execute()).toEqual([]);
    } finally {
      await fresh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(onRealPostgres())('action-items.list count under concurrent writes (real Postgres)', () => {
  it('80 concurrent creates, batches, moves, completions and deletes, and a goal deleted among them: the counts exact', async () => {
    const erin = await h.user();
    const goalIds: string[] = [];
    for (let i = 0; i < 3; i++) goalIds.push(ok(await goals(erin.key, 'create', { data: { name: `g${i}`, status: 'inactive' } }), 201).id);
    const made: string[] = [];
    for (let i = 0; i < 16; i++) {
      made.push(ok(await items(erin.key, 'create', { data: { description: `i${i}`, goal_id: goalIds[i % 3], completed: i % 2 === 0 } }), 201).id);
    }
    const targets = [...goalIds.slice(0, 2), null];
    const calls = Array.from({ length: 80 }, (_, i) => {
      const item = made[i % made.length];
      if (i === 40) return goals(erin.key, 'delete', { id: goalIds[2] });
      if (i % 10 === 0) return items(erin.key, 'create', { data: { description: `new${i}`, goal_id: targets[i % 2] } });
      if (i % 10 === 5) {
        const action_items = Array.from({ length: 5 }, (_, j) => ({ description: `b${i}.${j}`, goal_id: targets[j % 2], completed: j % 2 === 0 }));
        return items(erin.key, 'batch-create', { data: { action_items } });
      }
      if (i % 13 === 7) return items(erin.key, 'delete', { id: item });
      return items(erin.key, 'update', { id: item, data: { completed: i % 3 === 0, goal_id: targets[(i * 5) % 3] } });
    });
    const answers = await Promise.all(calls);
    // An item deleted by one call is NOT_FOUND to a later one; nothing else may fail (no deadlock, no 500).
    for (const answer of answers) expect([200, 201, 404]).toContain(answer.status);
    await expectCountsExact(erin, goalIds.slice(0, 2));
  });
});
