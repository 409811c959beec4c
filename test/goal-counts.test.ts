import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/client.ts';
import { createHarness, ok, onRealPostgres, type Answer, type Harness } from './support/harness.ts';

/**
 * `goals.list` answers `count` from goal_counts (db/0004): delta rows written by triggers on goals, a key's count
 * the sum of its rows, folded now and then. These tests write goals every way the API can (create with the active
 * limit, update of status and agent, delete, deleting an agent or a user) and check after each step that every
 * filter's count is the number of goals it matches, and that the kept sums are exactly what counting the goals
 * table gives.
 */

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ maxActiveGoals: 2 });
});
afterAll(() => h.close());

const statuses = ['active', 'inactive', 'completed', 'abandoned'] as const;

const invoke = (key: string, action: string, rest: Record<string, unknown>) =>
  h.invoke(key, { resource: 'goals', action, ...rest });

/** Until a request of this database waits for a lock in the active limit (at most 5 s). */
async function waitForLockWait() {
  for (let i = 0; i < 500; i++) {
    const [row] = await h.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock' and query like '%goals_enforce_active_limit%'`;
    if (row!.n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no request came to wait for a lock');
}

/** goal_counts of an owner summed per key (keys summing to 0 left out), and the same counted from goals. */
async function keptAndCounted(ownerId: string) {
  const line = (r: { agent_id: string | null; status: string; n: string | number }) => `${r.agent_id ?? '-'}|${r.status}|${r.n}`;
  const kept = await h.db
    .selectFrom('goal_counts')
    .select(['agent_id', 'status', (eb) => eb.fn.sum<string>('n').as('n')])
    .where('owner_id', '=', ownerId)
    .groupBy(['agent_id', 'status'])
    .having((eb) => eb.fn.sum('n'), '<>', 0)
    .execute();
  const counted = await h.db
    .selectFrom('goals')
    .select(['agent_id', 'status', (eb) => eb.fn.countAll<string>().as('n')])
    .where('owner_id', '=', ownerId)
    .groupBy(['agent_id', 'status'])
    .execute();
  return { kept: kept.map(line).sort(), counted: counted.map(line).sort() };
}

/** Every filter combination of agentId (each agent, none) × status (each, none): its count against the goals. */
async function expectCountsExact(user: { id: string; key: string }, agentIds: string[]) {
  const { kept, counted } = await keptAndCounted(user.id);
  expect(kept).toEqual(counted);
  const goals = await h.db.selectFrom('goals').select(['agent_id', 'status']).where('owner_id', '=', user.id).execute();
  for (const agentId of [undefined, ...agentIds]) {
    for (const status of [undefined, ...statuses]) {
      const data = { ...(agentId && { agentId }), ...(status && { status }), limit: 1 };
      const listed = ok(await invoke(user.key, 'list', { data }));
      const expected = goals.filter((g) => (!agentId || g.agent_id === agentId) && (!status || g.status === status)).length;
      expect({ data, count: listed.count }).toEqual({ data, count: expected });
    }
  }
}

describe('goals.list count, kept by triggers', () => {
  it('stays exact through creates, the active limit, status and agent changes, deletes and a deleted agent', async () => {
    const alice = await h.user();
    const [a, b] = [
      ok(await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'A' } }), 201).id as string,
      ok(await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'B' } }), 201).id as string,
    ];
    await expectCountsExact(alice, [a, b]);

    const goals: string[] = [];
    // Four active goals on A with a limit of 2: two of them are deactivated by the later creates.
    for (let i = 0; i < 4; i++) goals.push(ok(await invoke(alice.key, 'create', { data: { name: `A${i}`, agent_id: a } }), 201).id);
    goals.push(ok(await invoke(alice.key, 'create', { data: { name: 'none', status: 'completed' } }), 201).id);
    goals.push(ok(await invoke(alice.key, 'create', { data: { name: 'B0', agent_id: b, status: 'abandoned' } }), 201).id);
    await expectCountsExact(alice, [a, b]);

    ok(await invoke(alice.key, 'update', { id: goals[0], data: { status: 'completed' } }));
    ok(await invoke(alice.key, 'update', { id: goals[1], data: { agent_id: b } }));
    ok(await invoke(alice.key, 'update', { id: goals[4], data: { agent_id: a, status: 'active' } }));
    ok(await invoke(alice.key, 'update', { id: goals[2], data: { name: 'renamed' } }));
    await expectCountsExact(alice, [a, b]);

    ok(await invoke(alice.key, 'delete', { id: goals[3] }));
    await expectCountsExact(alice, [a, b]);

    // Deleting agent B moves its goals to no agent: B's keys sum to 0 (expectCountsExact leaves out no key).
    ok(await h.invoke(alice.key, { resource: 'agents', action: 'delete', id: b }));
    await expectCountsExact(alice, [a]);
  });

  it('folding the rows of an owner keeps every sum and leaves one row per key', async () => {
    const gus = await h.user();
    const agent = ok(await h.invoke(gus.key, { resource: 'agents', action: 'create', data: { name: 'G' } }), 201).id;
    for (let i = 0; i < 6; i++) ok(await invoke(gus.key, 'create', { data: { name: `g${i}`, agent_id: agent } }), 201);
    const before = await keptAndCounted(gus.id);
    await sql`select goal_counts_fold(${gus.id})`.execute(h.db);
    const rows = await h.db.selectFrom('goal_counts').select(['agent_id', 'status', 'n']).where('owner_id', '=', gus.id).execute();
    expect(rows.map((r) => `${r.agent_id}|${r.status}|${r.n}`).sort()).toEqual([`${agent}|active|2`, `${agent}|inactive|4`]);
    expect(await keptAndCounted(gus.id)).toEqual(before);
    await expectCountsExact(gus, [agent]);
  });

  it('counts one user for an admin acting as that user, and nothing of anyone else', async () => {
    const [alice, bob, admin] = [await h.user(), await h.user(), await h.user('internal_admin')];
    for (let i = 0; i < 3; i++) ok(await invoke(alice.key, 'create', { data: { name: `a${i}`, status: 'inactive' } }), 201);
    ok(await invoke(bob.key, 'create', { data: { name: 'b' } }), 201);
    expect(ok(await invoke(alice.key, 'list', { data: {} })).count).toBe(3);
    expect(ok(await invoke(admin.key, 'list', { data: { userId: alice.id } })).count).toBe(3);
    expect(ok(await invoke(admin.key, 'list', { data: { userId: alice.id, status: 'active' } })).count).toBe(0);
    // A cursor past the last page (its goals deleted since) asks for the count alone.
    const first = ok(await invoke(alice.key, 'list', { data: { limit: 2 } }));
    const last = ok(await invoke(alice.key, 'list', { data: { limit: 2, cursor: first.next_cursor } }));
    expect(last).toMatchObject({ count: 3, next_cursor: null });
    ok(await invoke(alice.key, 'delete', { id: last.items[0].id }));
    expect(ok(await invoke(alice.key, 'list', { data: { limit: 2, cursor: first.next_cursor } }))).toEqual({
      items: [],
      count: 2,
      next_cursor: null,
    });
  });

  it('a list with search counts its matches, not every goal', async () => {
    const alice = await h.user();
    for (const name of ['Book demos', 'Book calls', 'Qualify leads']) ok(await invoke(alice.key, 'create', { data: { name, status: 'inactive' } }), 201);
    expect(ok(await invoke(alice.key, 'list', { data: { search: 'book' } })).count).toBe(2);
    expect(ok(await invoke(alice.key, 'list', { data: { search: 'book', status: 'active' } })).count).toBe(0);
  });

  it('a deleted user leaves no count rows', async () => {
    const carol = await h.user();
    const agent = ok(await h.invoke(carol.key, { resource: 'agents', action: 'create', data: { name: 'C' } }), 201).id;
    for (let i = 0; i < 3; i++) ok(await invoke(carol.key, 'create', { data: { name: `c${i}`, agent_id: i ? agent : undefined } }), 201);
    expect((await keptAndCounted(carol.id)).kept).toHaveLength(2);
    await h.db.deleteFrom('users').where('id', '=', carol.id).execute();
    expect(await h.db.selectFrom('goal_counts').select('n').where('owner_id', '=', carol.id).execute()).toEqual([]);
  });

  it('the migration counts the goals that were there before it (the backfill)', async () => {
    // A fresh embedded database migrated to the version before goal_counts, goals written, then the rest.
    const dir = mkdtempSync(join(tmpdir(), 'goalpost-backfill-'));
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
      expect((await migrator.migrateTo('0003_goal_write_functions')).error).toBeUndefined();
      await sql`
        with u as (insert into users (email) values ('backfill@test.goalpost') returning id),
             a as (insert into agents (owner_id, name) select id, 'A' from u returning id, owner_id)
        insert into goals (owner_id, agent_id, name, status)
        select a.owner_id, case when g % 3 = 0 then null else a.id end, 'g' || g, (array['active', 'inactive'])[1 + g % 2]
        from a cross join generate_series(1, 10) as g`.execute(fresh.db);
      expect((await migrator.migrateToLatest()).results?.map((r) => r.migrationName)).toContain('0004_goal_counts');
      const counts = await fresh.db
        .selectFrom('goal_counts')
        .select([sql<string>`(agent_id is null)::text`.as('agentless'), 'status', 'n'])
        .orderBy('agentless')
        .orderBy('status')
        .execute();
      // g = 1..10, active when even: with the agent 2, 4, 8, 10 active and 1, 5, 7 inactive; agentless 6 active,
      // 3 and 9 inactive.
      expect(counts.map((c) => `${c.agentless}|${c.status}|${c.n}`)).toEqual([
        'false|active|4',
        'false|inactive|3',
        'true|active|1',
        'true|inactive|2',
      ]);
      // Across every owner (what adminMode sums): the goals, counted.
      const { rows: whole } = await sql<{ kept: string; counted: string }>`
        select (select sum(n) from goal_counts)::text as kept, (select count(*) from goals)::text as counted`.execute(fresh.db);
      expect(whole).toEqual([{ kept: '10', counted: '10' }]);
      // TRUNCATE fires no row trigger; the counts go with the goals all the same.
      await sql`truncate goals cascade`.execute(fresh.db);
      expect(await fresh.db.selectFrom('goal_counts').select('n').execute()).toEqual([]);
    } finally {
      await fresh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(onRealPostgres())('goals.list count under concurrent writes (real Postgres)', () => {
  it('60 concurrent creates, moves between agents and statuses, and deletes: every answer a success, the counts exact', async () => {
    const erin = await h.user();
    const agents = [
      ok(await h.invoke(erin.key, { resource: 'agents', action: 'create', data: { name: 'X' } }), 201).id as string,
      ok(await h.invoke(erin.key, { resource: 'agents', action: 'create', data: { name: 'Y' } }), 201).id as string,
    ];
    const goals: string[] = [];
    for (let i = 0; i < 12; i++) {
      goals.push(ok(await invoke(erin.key, 'create', { data: { name: `g${i}`, agent_id: agents[i % 2], status: statuses[i % 4] } }), 201).id);
    }
    const targets = [...agents, null];
    const calls = Array.from({ length: 60 }, (_, i) => {
      const goal = goals[i % goals.length];
      if (i % 10 === 0) return invoke(erin.key, 'create', { data: { name: `new${i}`, agent_id: targets[i % 3] } });
      if (i % 15 === 7) return invoke(erin.key, 'delete', { id: goal });
      return invoke(erin.key, 'update', { id: goal, data: { status: statuses[(i * 7) % 4], agent_id: targets[(i * 5) % 3] } });
    });
    const answers = await Promise.all(calls);
    // A goal deleted by one call is NOT_FOUND to a later one; nothing else may fail (no deadlock, no 500).
    for (const answer of answers) expect([200, 201, 404]).toContain(answer.status);
    await expectCountsExact(erin, agents);
  });

  it('activating a goal while another transaction holds and then completes the oldest active one: no deadlock', async () => {
    // In order, made certain: a transaction locks the oldest active goal W; goals.update activates X, which
    // writes X's counts and then waits in the active limit for W; the transaction completes W and commits.
    // Counts kept as one locked row per key deadlocked here: W's update waited for the (agent, active) row the
    // activation held, which waited for W (409 CONFLICT). Delta rows wait for nothing.
    const hal = await h.user();
    const agent = ok(await h.invoke(hal.key, { resource: 'agents', action: 'create', data: { name: 'H' } }), 201).id;
    const oldest = ok(await invoke(hal.key, 'create', { data: { name: 'old', agent_id: agent } }), 201).id;
    await new Promise((resolve) => setTimeout(resolve, 3));
    ok(await invoke(hal.key, 'create', { data: { name: 'mid', agent_id: agent } }), 201);
    const parked = ok(await invoke(hal.key, 'create', { data: { name: 'new', agent_id: agent, status: 'inactive' } }), 201).id;
    let activation: Promise<Answer> | undefined;
    await h.sql.begin(async (tx) => {
      await tx`select 1 from goals where id = ${oldest} for no key update`;
      activation = invoke(hal.key, 'update', { id: parked, data: { status: 'active' } });
      await waitForLockWait();
      await tx`update goals set status = 'completed' where id = ${oldest}`;
    });
    expect((await activation!).status).toBe(200);
    const { rows } = await sql<{ name: string; status: string }>`
      select name, status from goals where owner_id = ${hal.id} order by name`.execute(h.db);
    // W completed stays completed; the limit (2) holds with mid and new active.
    expect(rows).toEqual([
      { name: 'mid', status: 'active' },
      { name: 'new', status: 'active' },
      { name: 'old', status: 'completed' },
    ]);
    await expectCountsExact(hal, [agent]);
  });

  it('40 concurrent status changes between two statuses, both ways: no deadlock on the count rows', async () => {
    // Status only (no agent, not active): no scope lock serialises these, only the count rows' own locks.
    const fay = await h.user();
    const goals: string[] = [];
    for (let i = 0; i < 8; i++) {
      goals.push(ok(await invoke(fay.key, 'create', { data: { name: `f${i}`, status: i % 2 ? 'completed' : 'inactive' } }), 201).id);
    }
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(
        goals.map((id, i) => invoke(fay.key, 'update', { id, data: { status: (i + round) % 2 ? 'inactive' : 'completed' } })),
      );
      for (const answer of answers) expect(answer.status).toBe(200);
    }
    await expectCountsExact(fay, []);
  });
});
