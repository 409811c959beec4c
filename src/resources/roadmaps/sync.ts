import type { Transaction } from 'kysely';
import type { Db } from '../../db/client.ts';
import { jsonb } from '../../db/json.ts';
import type { ActionItemRow, Database, GoalRow, Roadmap } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import { found } from '../errors.ts';
import { changedCompletions } from './graph.ts';
import { computeProgress } from './progress.ts';

// The goal ↔ action-item roadmap sync: the one rule that spans two resources, and its home.
//
// An action item may be linked to a node of its goal's roadmap. Completing or reopening the item completes or
// reopens the node (item → node, and the goal's progress follows); completing or reopening the node, or replacing
// the roadmap, completes, reopens or unlinks the items (node → items).
//
// Lock order, which every writer of a goal's roadmap or of its linked items follows:
//   1. lock the goal row FOR NO KEY UPDATE (`withGoalLocked`, or `lockGoals(…, 'roadmap')`), reading the roadmap
//      in that same statement — a statement that waited for the lock sees the latest committed roadmap;
//   2. then lock or write the goal's action items.
// Writers of one goal's roadmap therefore run one after another, so progress stays exact when several items of one
// goal are completed at once, and both directions take the locks in the same order, so they never deadlock.
// A write that only links items to a goal takes FOR KEY SHARE instead (`'link'`): enough to keep the goal from being
// deleted before it commits, without queueing behind roadmap writers.

type Trx = Transaction<Database>;

/** `roadmap`: the write reads or changes the roadmap (FOR NO KEY UPDATE). `link`: it only links items (FOR KEY SHARE). */
export type GoalLock = 'roadmap' | 'link';

/**
 * Locks the goals `goalIds` that belong to `ownerId`, in id order (concurrent writers never wait on each other in
 * a cycle), and answers them by id. An id absent from the answer does not exist or is someone else's: the caller
 * answers NOT_FOUND. The ownership check and the lock are one query.
 *
 * @example const goals = await lockGoals(trx, { ownerId, goalIds: [goalId], lock: 'roadmap' });
 */
export async function lockGoals(
  trx: Trx,
  options: { ownerId: string; goalIds: string[]; lock: GoalLock },
): Promise<Map<string, GoalRow>> {
  const ids = [...new Set(options.goalIds)];
  if (ids.length === 0) return new Map();
  const query = trx.selectFrom('goals').selectAll().where('id', 'in', ids).where('owner_id', '=', options.ownerId).orderBy('id');
  const rows = await (options.lock === 'roadmap' ? query.forNoKeyUpdate() : query.forKeyShare()).execute();
  return new Map(rows.map((row) => [row.id, row]));
}

/**
 * Runs `work` in a transaction with the goal `goalId` of the scope locked for a roadmap write (step 1 of the lock
 * order), given the goal as of the lock; NOT_FOUND when it is not the scope's. `ownerId` null is admin mode: the
 * owner is read first, without a lock, since the lock query checks ownership itself.
 *
 * @example const row = await withGoalLocked(ctx.db, { ownerId: ctx.scope.ownerId, goalId: id }, (trx, goal) => …);
 */
export function withGoalLocked<T>(
  db: Db,
  target: { ownerId: string | null; goalId: string },
  work: (trx: Trx, goal: GoalRow) => Promise<T>,
): Promise<T> {
  return db.transaction().execute(async (trx) => {
    let ownerId = target.ownerId;
    if (ownerId === null) {
      const seen = await trx.selectFrom('goals').select('owner_id').where('id', '=', target.goalId).executeTakeFirst();
      ownerId = found(seen, 'Goal').owner_id;
    }
    const goal = (await lockGoals(trx, { ownerId, goalIds: [target.goalId], lock: 'roadmap' })).get(target.goalId);
    return work(trx, found(goal, 'Goal'));
  });
}

/** The node ids of a roadmap (none without one). */
export function roadmapNodeIds(roadmap: Roadmap | null): Set<string> {
  const nodes = Array.isArray(roadmap?.nodes) ? roadmap.nodes : [];
  return new Set(nodes.map((node) => node.id));
}

export interface NodeCompletion {
  nodeId: string;
  completed: boolean;
}

/**
 * Item → node: sets `completed` on the named nodes of the goal's roadmap and stores the recomputed progress with a
 * new `updated_at`. `goal` is the row locked for a roadmap write in this transaction. When several changes name one
 * node the last wins; nodes already in the wanted state, and ids not in the roadmap, are skipped; when nothing
 * changes nothing is written. Answers the goal as stored.
 *
 * @example await completeNodes(trx, goal, [{ nodeId: 'n2', completed: true }]);
 */
export async function completeNodes(trx: Trx, goal: GoalRow, changes: NodeCompletion[]): Promise<GoalRow> {
  const roadmap = goal.roadmap;
  if (!roadmap || !Array.isArray(roadmap.nodes) || changes.length === 0) return goal;
  const wanted = new Map(changes.map((c) => [c.nodeId, c.completed]));
  let changed = false;
  const nodes = roadmap.nodes.map((node) => {
    const completed = wanted.get(node.id);
    if (completed === undefined || node.completed === completed) return node;
    changed = true;
    return { ...node, completed };
  });
  if (!changed) return goal;
  return saveRoadmap(trx, goal, { ...roadmap, nodes });
}

/**
 * Stores `roadmap` as the goal's, with the progress it gives and a new `updated_at`; the goal is locked for a
 * roadmap write. The items follow with `followRoadmap`.
 */
export function saveRoadmap(trx: Trx, goal: GoalRow, roadmap: Roadmap | null): Promise<GoalRow> {
  return trx
    .updateTable('goals')
    .set({ roadmap: roadmap === null ? null : jsonb(roadmap), progress: computeProgress({ ...goal, roadmap }), updated_at: nowMs })
    .where('id', '=', goal.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Node → items: completes (or reopens) every action item linked to the named nodes of the goal. Items already in
 * that state are left alone, `completed_at` kept; the others get `completed_at` set (or cleared) and a new
 * `updated_at`; their reminders follow (triggers, db/0006). Answers the items it changed.
 *
 * @example await completeLinkedItems(trx, { goalId: goal.id, nodeIds: ['n2'], completed: true });
 */
export async function completeLinkedItems(
  trx: Trx,
  options: { goalId: string; nodeIds: string[]; completed: boolean },
): Promise<ActionItemRow[]> {
  if (options.nodeIds.length === 0) return [];
  const rows = await trx
    .updateTable('action_items')
    .set({ completed: options.completed, completed_at: options.completed ? nowMs : null, updated_at: nowMs })
    .where('goal_id', '=', options.goalId)
    .where('roadmap_node_id', 'in', [...new Set(options.nodeIds)])
    .where('completed', '!=', options.completed)
    .returningAll()
    .execute();
  return rows;
}

/**
 * Unlinks the goal's items from every node but `keep` (all of them when `keep` is empty); they keep the goal.
 */
export async function unlinkItems(trx: Trx, options: { goalId: string; keep: string[] }): Promise<void> {
  await trx
    .updateTable('action_items')
    .set({ roadmap_node_id: null, updated_at: nowMs })
    .where('goal_id', '=', options.goalId)
    .where('roadmap_node_id', 'is not', null)
    .$if(options.keep.length > 0, (qb) => qb.where('roadmap_node_id', 'not in', options.keep))
    .execute();
}

/**
 * Keeps a goal's items in step with a roadmap that replaced `before`: items of a node the new roadmap no longer has
 * are unlinked; items of a node whose `completed` it changed are completed or reopened with it. `relinkAll` (a
 * generated roadmap, whose nodes are new milestones even where an id repeats) unlinks every item instead.
 */
export async function followRoadmap(
  trx: Trx,
  options: { goalId: string; before: Roadmap | null; after: Roadmap | null; relinkAll?: boolean },
): Promise<void> {
  const keep = options.relinkAll ? [] : (options.after?.nodes ?? []).map((node) => node.id);
  await unlinkItems(trx, { goalId: options.goalId, keep });
  if (options.relinkAll) return;
  const { completed, reopened } = changedCompletions(options.before, options.after);
  await completeLinkedItems(trx, { goalId: options.goalId, nodeIds: completed, completed: true });
  await completeLinkedItems(trx, { goalId: options.goalId, nodeIds: reopened, completed: false });
}

/** The nodes of the goal that some item is linked to: read after the goal lock, so a concurrent link has committed. */
export async function linkedNodeIds(trx: Trx, goalId: string): Promise<Set<string>> {
  const linked = await trx
    .selectFrom('action_items')
    .select('roadmap_node_id')
    .distinct()
    .where('goal_id', '=', goalId)
    .where('roadmap_node_id', 'is not', null)
    .execute();
  return new Set(linked.map((item) => item.roadmap_node_id!));
}
