import { sql, type Transaction } from 'kysely';
import type { Db } from '../../db/client.ts';
import { jsonb } from '../../db/json.ts';
import type { Database, GoalRow, GoalStatus } from '../../db/schema.ts';
import { nowMs, ownedBy, whereAll } from '../../db/sql.ts';
import { PAGE_ROWS_MAX, type CursorPosition } from '../pagination.ts';
import { goalListColumns, type GoalChanges, type GoalListRow, type NewGoal } from './model.ts';

// Every statement on goals and their attachments. `ownerId` null is admin mode across accounts (see `ownedBy`).
// The hottest two (`findGoal`, `listGoals`) are `sql` templates rather than built: Kysely's builder and compiler
// were a measurable share of their server CPU (docs/performance.md).

type Trx = Transaction<Database>;

/**
 * One goal of the owner (any owner's when null).
 *
 * @example const row = await findGoal(ctx.db, { ownerId: ctx.scope.ownerId, id });
 */
export async function findGoal(db: Db, target: { ownerId: string | null; id: string }): Promise<GoalRow | undefined> {
  const { ownerId, id } = target;
  const query =
    ownerId === null
      ? sql<GoalRow>`select * from goals where id = ${id}`
      : sql<GoalRow>`select * from goals where id = ${id} and owner_id = ${ownerId}`;
  const { rows } = await query.execute(db);
  return rows[0];
}

export interface GoalFilter {
  ownerId: string | null;
  agentId?: string;
  status?: GoalStatus;
  /** A LIKE pattern on name or description (`likePattern`). */
  pattern?: string;
}

const listColumns = sql.raw(goalListColumns.join(', '));

/**
 * A page of goals matching `filter` (`limit + 1` rows, newest first, after the cursor, without roadmaps) and how
 * many match in all — in one statement: the count is an uncorrelated subquery, which Postgres runs once. Without
 * `pattern` it is a sum over goal_counts (kept by triggers, db/0004): a few rows however many goals the owner has.
 * A page without rows carries no count; it is 0 then, unless a cursor paged past the end, which asks for it alone.
 */
export async function listGoals(
  db: Db,
  filter: GoalFilter,
  page: { after: CursorPosition | undefined; limit: number },
): Promise<{ rows: GoalListRow[]; total: number }> {
  const { ownerId, agentId, status, pattern } = filter;
  const scope = [
    ...(ownerId !== null ? [sql`owner_id = ${ownerId}`] : []),
    ...(agentId !== undefined ? [sql`agent_id = ${agentId}`] : []),
    ...(status !== undefined ? [sql`status = ${status}`] : []),
  ];
  const matching = pattern === undefined ? scope : [...scope, sql`(name ilike ${pattern} or description ilike ${pattern})`];
  const count =
    pattern === undefined
      ? sql`select coalesce(sum(n), 0) from goal_counts ${whereAll(scope)}`
      : sql`select count(*) from goals ${whereAll(matching)}`;
  const { after } = page;
  const newer = after === undefined ? matching : [...matching, sql`(created_at, id) < (${after.createdAt}, ${after.id})`];
  // At most PAGE_ROWS_MAX newest rows inside, the requested page outside (why two limits: PAGE_ROWS_MAX).
  const { rows } = await sql<GoalListRow & { total: string }>`
    select *, (${count}) as total
    from (select ${listColumns} from goals ${whereAll(newer)}
          order by created_at desc, id desc limit ${sql.lit(PAGE_ROWS_MAX)}) as page
    order by created_at desc, id desc limit ${page.limit + 1}`.execute(db);
  if (rows.length > 0 || after === undefined) return { rows, total: Number(rows[0]?.total ?? 0) };
  const { rows: counted } = await sql<{ total: string }>`select (${count}) as total`.execute(db);
  return { rows, total: Number(counted[0]!.total) };
}

/**
 * Inserts a goal through the database function `goals_create` (db/0003), which locks the goal's active-limit
 * scope, applies the limit `maxActive` for an active goal, and inserts — one statement, one round trip. Nothing
 * when the agent is not the owner's.
 */
export async function insertGoal(db: Db, goal: NewGoal, maxActive: number): Promise<GoalRow | undefined> {
  const { rows } = await sql<GoalRow>`select * from goals_create(${jsonb(goal)}, ${maxActive})`.execute(db);
  return rows[0];
}

/** The goal's owner and agent, read without a lock (to learn which active-limit scope to lock first). */
export function goalScope(trx: Trx, target: { ownerId: string | null; id: string }) {
  return trx.selectFrom('goals').select(['owner_id', 'agent_id']).where('id', '=', target.id).$call(ownedBy(target.ownerId)).executeTakeFirst();
}

/**
 * The goal locked for a write. FOR NO KEY UPDATE, not FOR UPDATE: no key changes, and FOR UPDATE would conflict
 * with the KEY SHARE an attach takes on the goal while holding its agent — a deadlock with an update's agent lock.
 */
export function lockGoal(trx: Trx, target: { ownerId: string | null; id: string }): Promise<GoalRow | undefined> {
  return trx.selectFrom('goals').selectAll().where('id', '=', target.id).$call(ownedBy(target.ownerId)).forNoKeyUpdate().executeTakeFirst();
}

/** Writes `changes` (and a new `updated_at`) to the goal `id` of `ownerId`; answers it as stored. */
export function updateGoal(trx: Trx, target: { ownerId: string; id: string }, changes: GoalChanges): Promise<GoalRow> {
  const { lead_fields, roadmap, ...columns } = changes;
  return trx
    .updateTable('goals')
    .set({
      ...columns,
      ...(lead_fields !== undefined && { lead_fields: jsonb(lead_fields) }),
      ...(roadmap !== undefined && { roadmap: roadmap === null ? null : jsonb(roadmap) }),
      updated_at: nowMs,
    })
    .where('id', '=', target.id)
    .where('owner_id', '=', target.ownerId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Deletes the goal `id` of the owner (its attachments go by cascade, its items are unlinked); answers its id. */
export async function deleteGoal(db: Db, target: { ownerId: string | null; id: string }): Promise<string | undefined> {
  const row = await db.deleteFrom('goals').where('id', '=', target.id).$call(ownedBy(target.ownerId)).returning('id').executeTakeFirst();
  return row?.id;
}

export interface Attachment {
  agent_id: string;
  goal_id: string;
  attached_at: Date;
  replaced_goal_id: string | null;
}

/**
 * Attaches the goal to the agent through the database function `goals_attach` (db/0003): it locks both (of one
 * owner, `ownerId`'s unless null), reads the attachment it replaces and writes the new one, in one round trip.
 * Nothing when either is missing or not the owner's.
 */
export async function attachGoal(db: Db, options: { goalId: string; agentId: string; ownerId: string | null }): Promise<Attachment | undefined> {
  const { rows } = await sql<Attachment>`
    select * from goals_attach(${options.goalId}, ${options.agentId}, ${options.ownerId})`.execute(db);
  return rows[0];
}

/** Removes the agent's attachment (only to `goalId`, when given); answers the goal it was attached to. */
export async function deleteAttachment(
  db: Db,
  options: { agentId: string; ownerId: string; goalId?: string },
): Promise<string | undefined> {
  const removed = await db
    .deleteFrom('agent_goal_attachments')
    .where('agent_id', '=', options.agentId)
    .where('owner_id', '=', options.ownerId)
    .$if(options.goalId !== undefined, (qb) => qb.where('goal_id', '=', options.goalId!))
    .returning('goal_id')
    .executeTakeFirst();
  return removed?.goal_id;
}

/** A goal's history point: its state at the end of a UTC day on which it changed. */
export interface HistoryPoint {
  date: string;
  progress: number;
  current_value: number;
  status: GoalStatus;
}

/**
 * The goal `id` of the owner with its history over the last `days` UTC days (today included), oldest first: one
 * range scan of goal_history's primary key. Nothing when there is no such goal of the owner's.
 */
export async function goalHistory(
  db: Db,
  target: { ownerId: string | null; id: string; days: number },
): Promise<{ id: string; owner_id: string; points: HistoryPoint[] } | undefined> {
  const { rows } = await sql<{ id: string; owner_id: string; points: HistoryPoint[] }>`
    select g.id, g.owner_id, coalesce((
      select json_agg(json_build_object('date', h.day::text, 'progress', h.progress, 'current_value', h.current_value,
                                        'status', h.status) order by h.day)
      from goal_history h where h.goal_id = g.id and h.day > goal_history_today() - ${target.days}::integer), '[]') as points
    from goals g
    where g.id = ${target.id} ${target.ownerId === null ? sql`` : sql`and g.owner_id = ${target.ownerId}`}`.execute(db);
  return rows[0];
}
