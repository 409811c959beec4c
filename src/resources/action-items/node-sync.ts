import type { Transaction } from 'kysely';
import { jsonb } from '../../db/json.ts';
import type { ActionItemRow, Database, GoalRow, Roadmap } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import { computeProgress } from '../goals/model.ts';
import { syncReminders } from './reminders.ts';

// The two-way sync between action items and the roadmap nodes they are linked to.
//
// Locking protocol, which every writer of a goal's roadmap (and of its linked items) follows:
//   1. lock the goal row FOR NO KEY UPDATE (`lockGoals(..., 'roadmap')`), reading the roadmap in that
//      same statement — a statement that waited for the lock sees the latest committed roadmap;
//   2. then lock or write the goal's action items.
// Writers of one goal's roadmap therefore run one after another, so progress stays exact when
// several items of one goal are completed at once, and the goal → items order is the same in both
// directions, so they do not deadlock.

type Trx = Transaction<Database>;

/**
 * `roadmap`: the write reads or changes the goal's roadmap (a node link checked, a node completed);
 * FOR NO KEY UPDATE, which serialises roadmap writers. `link`: the write only links items to the goal;
 * FOR KEY SHARE, enough to keep the goal from being deleted before the write commits. (Creates without a
 * node take that same lock inside their one INSERT statement: `createActionItems` in queries.ts.)
 */
export type GoalLock = 'roadmap' | 'link';

/**
 * Locks the goals `goalIds` that belong to `ownerId`, in id order (concurrent writers never wait on each
 * other in a cycle), and answers them by id. An id absent from the answer does not exist or is someone
 * else's: the caller answers NOT_FOUND. The ownership check and the lock are one query.
 *
 * @example const goals = await lockGoals(trx, { ownerId, goalIds: [goalId], lock: 'roadmap' });
 */
export async function lockGoals(
  trx: Trx,
  options: { ownerId: string; goalIds: string[]; lock: GoalLock },
): Promise<Map<string, GoalRow>> {
  const ids = [...new Set(options.goalIds)];
  if (ids.length === 0) return new Map();
  const query = trx
    .selectFrom('goals')
    .selectAll()
    .where('id', 'in', ids)
    .where('owner_id', '=', options.ownerId)
    .orderBy('id');
  const rows = await (options.lock === 'roadmap' ? query.forNoKeyUpdate() : query.forKeyShare()).execute();
  return new Map(rows.map((row) => [row.id, row]));
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
 * Item → node: sets `completed` on the named nodes of the goal's roadmap and stores the recomputed
 * progress (`computeProgress`, the share of completed nodes) with a new `updated_at`. `goal` must be
 * the row `lockGoals(..., 'roadmap')` answered in this transaction. When several changes name one node
 * the last wins; nodes already in the wanted state, and ids not in the roadmap, are skipped; when
 * nothing changes nothing is written. Answers the goal as stored.
 *
 * `goals.update-node` uses it for the node it is told to change, then `setLinkedItemsCompleted` for
 * that node's items.
 *
 * @example await setRoadmapNodesCompleted(trx, goal, [{ nodeId: 'n2', completed: true }]);
 */
export async function setRoadmapNodesCompleted(trx: Trx, goal: GoalRow, changes: NodeCompletion[]): Promise<GoalRow> {
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
  const next: Roadmap = { ...roadmap, nodes };
  return trx
    .updateTable('goals')
    .set({ roadmap: jsonb(next), progress: computeProgress({ ...goal, roadmap: next }), updated_at: nowMs })
    .where('id', '=', goal.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Node → items: completes (or reopens) every action item linked to the named nodes of the goal, as
 * `goals.update-node` does after changing a node. Call it in the transaction that changed the node,
 * with the goal locked first by `lockGoals(..., 'roadmap')` (the lock order of the item → node
 * direction). Items already in that state are left alone, `completed_at` kept; the others get
 * `completed_at` set (or cleared) and a new `updated_at`, and their reminders are re-synced. Answers
 * the items it changed.
 *
 * @example await setLinkedItemsCompleted(trx, { goalId: goal.id, nodeIds: ['n2'], completed: true });
 */
export async function setLinkedItemsCompleted(
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
  await syncReminders(trx, rows.map((item) => ({ kind: 'saved' as const, item })));
  return rows;
}
