import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, GoalRow, Roadmap } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import type { Context } from '../../rpc/context.ts';
import { AppError } from '../../rpc/errors.ts';
import { syncReminders } from '../action-items/reminders.ts';
import { lockGoals, setLinkedItemsCompleted } from '../action-items/node-sync.ts';
import { changedCompletions } from './roadmap-graph.ts';

type Q = Kysely<Database> | Transaction<Database>;

/** NOT_FOUND for the goal acted on, the same whether it does not exist or is someone else's. */
export const goalNotFound = () => new AppError({ code: 'NOT_FOUND', message: 'Goal not found or you have no access to it' });

/**
 * One goal, owned by the scope, or NOT_FOUND. One query, written as a template rather than built: it is the
 * hottest read (every `goals.get`), and Kysely's builder and compiler cost 25–60 µs of server CPU per
 * request on it (measured with `npm run bench`, ~10% of a `goals.get`).
 */
export async function findGoal(ctx: Context, id: string): Promise<GoalRow> {
  const ownerId = ctx.scope.ownerId;
  const query =
    ownerId === null
      ? sql<GoalRow>`select * from goals where id = ${id}`
      : sql<GoalRow>`select * from goals where id = ${id} and owner_id = ${ownerId}`;
  const { rows } = await query.execute(ctx.db);
  if (!rows[0]) throw goalNotFound();
  return rows[0];
}

/**
 * Locks a goal of the scope for a roadmap write (`lockGoals(..., 'roadmap')`, the lock every writer of a
 * roadmap takes before the goal's items) and answers it as of the lock, or NOT_FOUND. In admin mode the
 * owner is read first, without a lock, because `lockGoals` checks ownership in its own query.
 */
export async function lockGoalForRoadmap(trx: Transaction<Database>, ctx: Context, id: string): Promise<GoalRow> {
  let ownerId = ctx.scope.ownerId;
  if (ownerId === null) {
    const seen = await trx.selectFrom('goals').select('owner_id').where('id', '=', id).executeTakeFirst();
    if (!seen) throw goalNotFound();
    ownerId = seen.owner_id;
  }
  const goal = (await lockGoals(trx, { ownerId, goalIds: [id], lock: 'roadmap' })).get(id);
  if (!goal) throw goalNotFound();
  return goal;
}

/**
 * Keeps a goal's action items in step with a roadmap that replaced `before`, in the transaction that
 * wrote it, with the goal row locked: items linked to a node the new roadmap no longer has are unlinked
 * from the node (they keep the goal); items of a node whose `completed` the new roadmap changed are
 * completed or reopened with it, as `update-node` does. `relinkAll` (a generated roadmap, whose nodes are
 * new milestones even where an id repeats) unlinks every item from the old nodes.
 */
export async function syncItemsWithRoadmap(
  trx: Transaction<Database>,
  options: { goalId: string; before: Roadmap | null; after: Roadmap | null; relinkAll?: boolean },
): Promise<void> {
  const kept = options.relinkAll ? [] : (options.after?.nodes ?? []).map((node) => node.id);
  const unlinked = await trx
    .updateTable('action_items')
    .set({ roadmap_node_id: null, updated_at: nowMs })
    .where('goal_id', '=', options.goalId)
    .where('roadmap_node_id', 'is not', null)
    .$if(kept.length > 0, (qb) => qb.where('roadmap_node_id', 'not in', kept))
    .returningAll()
    .execute();
  await syncReminders(trx, unlinked.map((item) => ({ kind: 'saved' as const, item })));
  if (options.relinkAll) return;
  const { completed, reopened } = changedCompletions(options.before, options.after);
  await setLinkedItemsCompleted(trx, { goalId: options.goalId, nodeIds: completed, completed: true });
  await setLinkedItemsCompleted(trx, { goalId: options.goalId, nodeIds: reopened, completed: false });
}

/**
 * Serialises writes to one active-limit scope (an agent, or an owner's agent-less goals) by locking
 * its row, and checks in the same query that the agent belongs to `ownerId`. The lock is the database
 * function `goals_lock_active_scope` (db/0003), which `goals_create` takes too.
 */
export async function lockActiveScope(trx: Transaction<Database>, ownerId: string, agentId: string | null): Promise<void> {
  const { rows } = await sql<{ locked: boolean }>`select goals_lock_active_scope(${ownerId}, ${agentId}) as locked`.execute(trx);
  if (agentId !== null && !rows[0]?.locked) throw new AppError({ code: 'AGENT_NOT_FOUND' });
}

/**
 * Keeps at most `limit` active goals in a scope: `keepId` (the goal just created or activated) stays,
 * then the newest others; the oldest are set `inactive` (the database function
 * `goals_enforce_active_limit`, db/0003, which `goals_create` runs too). Call with the scope locked.
 * Returns the ids it deactivated.
 */
export async function enforceActiveLimit(
  trx: Transaction<Database>,
  options: { ownerId: string; agentId: string | null; keepId: string | null; limit: number },
): Promise<string[]> {
  if (options.limit <= 0) return [];
  const { ownerId, agentId, keepId, limit } = options;
  const { rows } = await sql<{ id: string }>`
    select id from goals_enforce_active_limit(${ownerId}, ${agentId}, ${keepId}, ${limit})`.execute(trx);
  return rows.map((r) => r.id);
}
