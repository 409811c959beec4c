import { defineAction } from '../../rpc/action.ts';
import { deletedOutput } from '../outputs.ts';
import type { Context } from '../../rpc/context.ts';
import { AppError } from '../../rpc/errors.ts';
import type { ActionItemRow, GoalRow } from '../../db/schema.ts';
import { z } from 'zod';
import { found, goalIdNotFound, notNodes } from '../errors.ts';
import { present, presentAll } from '../owners.ts';
import { pageOf, pageRequest } from '../pagination.ts';
import { lockGoals, roadmapNodeIds, completeNodes, type GoalLock } from '../roadmaps/sync.ts';
import { serializeActionItem } from './model.ts';
import { createActionItems, deleteItem, findItem, listItems, lockItem, updateItem, type ItemPatch, type NewItemInput } from './queries.ts';
import {
  actionItemOutput, actionItemPageOutput, batchCreateInput, createdItemsOutput, createInput, listInput, updateInput, type CreateInput, type UpdateInput,
} from './schemas.ts';

function toDate<T extends string | null | undefined>(value: T): Date | Exclude<T, string> {
  return (typeof value === 'string' ? new Date(value) : value) as Date | Exclude<T, string>;
}
const toNewItem = (input: CreateInput): NewItemInput => ({ ...input, due_at: toDate(input.due_at) });

export const list = defineAction({
  summary: 'List action items',
  description: 'Newest first. `count` is the number of items matching the filter. `dueAfter` is inclusive, `dueBefore` exclusive; either leaves out items without `due_at`.',
  readOnly: true,
  input: listInput,
  output: actionItemPageOutput,
  handler: async ({ input, ctx }) => {
    const { completed, goalId, dueBefore, dueAfter } = input;
    const filter = { ownerId: ctx.scope.ownerId, completed, goalId, dueBefore: toDate(dueBefore), dueAfter: toDate(dueAfter) };
    const listed = await listItems(ctx.db, filter, pageRequest(input));
    return pageOf(listed, input.limit, (rows) => presentAll(ctx, rows, serializeActionItem));
  },
});

export const get = defineAction({
  summary: 'Get an action item',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  output: actionItemOutput,
  handler: async ({ id, ctx }) => {
    return present(ctx, found(await findItem(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Action item'), serializeActionItem);
  },
});

export const create = defineAction({
  summary: 'Create an action item',
  description: 'A `goal_id` must be one of your goals (NOT_FOUND otherwise); a `roadmap_node_id` needs the `goal_id` and must be a node of its roadmap. An item created completed completes its node.',
  created: true,
  input: createInput,
  output: actionItemOutput,
  example: { description: 'Call back about pricing', due_at: '2030-01-15T09:00:00Z' },
  handler: async ({ input, ctx }) => {
    const [row] = await createActionItems(ctx.db, { ownerId: ctx.scope.actingUserId, items: [toNewItem(input)], pathOf: () => ['data'] });
    return present(ctx, row!, serializeActionItem);
  },
});

export const batchCreate = defineAction({
  summary: 'Create up to 50 action items at once',
  description: 'All or nothing, in one INSERT: one invalid item (its index in `details`) or a goal that is not yours writes none. Answers the items in request order.',
  created: true,
  input: batchCreateInput,
  output: createdItemsOutput,
  example: { action_items: [{ description: 'Send the proposal' }, { description: 'Book a demo', due_at: '2030-01-20T15:00:00Z' }] },
  handler: async ({ input, ctx }) => {
    const rows = await createActionItems(ctx.db, {
      ownerId: ctx.scope.actingUserId,
      items: input.action_items.map(toNewItem),
      pathOf: (index) => ['data', 'action_items', index],
    });
    const items = await presentAll(ctx, rows, serializeActionItem);
    return { action_items: items, created_count: items.length };
  },
});

export const update = defineAction({
  summary: 'Update an action item',
  description: 'A partial update. Completing sets `completed_at`, reopening clears it; sending the state the item already has changes nothing. Completing or reopening an item linked to a roadmap node completes or reopens the node and recomputes the goal’s progress. Changing `goal_id` drops the node link unless `roadmap_node_id` names a node of the new goal.',
  id: true,
  input: updateInput,
  output: actionItemOutput,
  example: { completed: true },
  handler: async ({ id, input, ctx }) => {
    const patch: ItemPatch = { ...input, due_at: toDate(input.due_at) };
    // Most updates are one statement; one that relinks the item, or whose node must follow, locks the goal first.
    const plain = input.goal_id === undefined && input.roadmap_node_id === undefined;
    const row =
      (plain ? await updateItem(ctx.db, { id, ownerId: ctx.scope.ownerId, patch, unlessNodeFollows: true }) : undefined) ??
      (await updateWithGoalLocked(ctx, id, input, patch));
    return present(ctx, row, serializeActionItem);
  },
});

/** The update in a transaction that locks the item's goal before the item (roadmaps/sync.ts), then the same UPDATE. */
function updateWithGoalLocked(ctx: Context, id: string, input: UpdateInput, patch: ItemPatch): Promise<ActionItemRow> {
  return ctx.db.transaction().execute(async (trx) => {
    // The item is read first without a lock, to learn which goal to lock.
    const seen = found(await findItem(trx, { ownerId: ctx.scope.ownerId, id }), 'Action item');
    // The goal must be the item owner's (also in admin mode): ownership and lock in one query.
    const lockGoal = async (wanted: { goalId: string; lock: GoalLock }): Promise<GoalRow | undefined> =>
      (await lockGoals(trx, { ownerId: seen.owner_id, goalIds: [wanted.goalId], lock: wanted.lock })).get(wanted.goalId);
    const first = goalLockFor(seen, input);
    let goal = first ? await lockGoal(first) : undefined;
    const current = found(await lockItem(trx, { ownerId: seen.owner_id, id }), 'Action item');
    // Relinked (or its goal deleted) between the two reads: lock what it is linked to now (out of order, only then).
    const needed = goalLockFor(current, input);
    if (needed && (needed.goalId !== first?.goalId || (needed.lock === 'roadmap' && first.lock !== 'roadmap'))) {
      goal = await lockGoal(needed);
    }
    // Only a goal the patch names can be missing: an item's own goal is its owner's, or gone and the item unlinked.
    if (needed && !goal) throw goalIdNotFound(['data', 'goal_id']);
    const link = checkLink(current, input, goal);
    const updated = await updateItem(trx, { id, ownerId: current.owner_id, patch: { ...patch, goal_id: link.goalId, roadmap_node_id: link.nodeId } });
    // Nothing to change (completing a completed item, say): nothing written, updated_at kept.
    if (!updated) return current;
    if (updated.completed !== current.completed && link.nodeId !== null) {
      await completeNodes(trx, goal!, [{ nodeId: link.nodeId, completed: updated.completed }]);
    }
    return updated;
  });
}

/** The goal link an update leaves: changing the goal drops the node unless the patch names one. */
function linkAfter(row: ActionItemRow, patch: UpdateInput): { goalId: string | null; nodeId: string | null } {
  const goalId = patch.goal_id !== undefined ? patch.goal_id : row.goal_id;
  const nodeId = patch.roadmap_node_id !== undefined ? patch.roadmap_node_id : goalId === row.goal_id ? row.roadmap_node_id : null;
  return { goalId, nodeId };
}

/** The link an update leaves, checked: a node needs its goal, and must be a node of its roadmap. */
function checkLink(row: ActionItemRow, patch: UpdateInput, goal: GoalRow | undefined) {
  const link = linkAfter(row, patch);
  if (link.nodeId !== null && link.goalId === null) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'data.roadmap_node_id: a roadmap node needs its goal_id',
      details: [{ path: ['data', 'roadmap_node_id'], message: 'a roadmap node needs its goal_id', type: 'custom' }],
    });
  }
  if (patch.roadmap_node_id && !roadmapNodeIds(goal!.roadmap).has(patch.roadmap_node_id)) {
    throw notNodes([['data', 'roadmap_node_id']], { hasRoadmap: true });
  }
  return link;
}

/** Which lock an update needs on the goal it leaves the item linked to, if any. */
function goalLockFor(row: ActionItemRow, patch: UpdateInput): { goalId: string; lock: GoalLock } | null {
  const { goalId, nodeId } = linkAfter(row, patch);
  if (goalId === null) return null;
  // Checking a node, or completing/reopening a linked item (which writes the node), reads the roadmap.
  if (nodeId !== null && (patch.roadmap_node_id !== undefined || patch.completed !== undefined)) {
    return { goalId, lock: 'roadmap' };
  }
  if (patch.goal_id !== undefined) return { goalId, lock: 'link' };
  return null;
}

export const remove = defineAction({
  summary: 'Delete an action item',
  description: 'Its roadmap node keeps its state; its reminder is cancelled.',
  id: true,
  input: z.strictObject({}),
  output: deletedOutput,
  handler: async ({ id, ctx }) => {
    // The reminder goes with the row (ON DELETE CASCADE), in the same statement.
    return { id: found(await deleteItem(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Action item'), deleted: true as const };
  },
});

/** The action-items resource. */
export const actionItemActions = { list, get, create, 'batch-create': batchCreate, update, delete: remove };
