import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../../db/client.ts';
import type { ActionItemRow, GoalRow } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import { defineAction } from '../../rpc/action.ts';
import type { Context } from '../../rpc/context.ts';
import { AppError } from '../../rpc/errors.ts';
import { decodeCursor, isoDateTime, newestPage, onlyIfValid, pageFields, splitPage, withOwners, type Owner, type Page, uuid } from '../shared.ts';
import { serializeActionItem, type ActionItem } from './model.ts';
import { lockGoals, roadmapNodeIds, setRoadmapNodesCompleted, type GoalLock } from './node-sync.ts';
import { createActionItems, goalIdNotFound, unknownNodes, type NewItemInput } from './queries.ts';
import { syncReminders } from './reminders.ts';

const datetime = isoDateTime();

/** The fields a client writes, shared by create, batch-create and update. */
const itemFields = z.object({
  description: z.string().trim().min(1).max(500),
  completed: z.boolean().describe('Completing sets `completed_at`; reopening clears it.'),
  due_at: datetime.nullable().describe('When the item is due; a reminder is scheduled for it (notifications).'),
  conversation_id: z
    .string()
    .min(1)
    .max(200)
    .nullable()
    .describe("The conversation the item came from, an opaque id of the caller's own system."),
  goal_id: uuid().nullable().describe('A goal of yours the item moves forward.'),
  roadmap_node_id: z
    .string()
    .min(1)
    .max(200)
    .nullable()
    .describe("A node of that goal's roadmap; completing or reopening the item completes or reopens the node."),
});

const createInput = itemFields
  .partial()
  .required({ description: true })
  .strict()
  .refine((item) => !item.roadmap_node_id || item.goal_id, {
    path: ['roadmap_node_id'],
    message: 'a roadmap node needs its goal_id',
    when: onlyIfValid,
  });

const toNewItem = (input: z.output<typeof createInput>): NewItemInput => ({
  ...input,
  due_at: input.due_at == null ? input.due_at : new Date(input.due_at),
});

const notFound = () => new AppError({ code: 'NOT_FOUND', message: 'Action item not found or you have no access to it' });

/** The item `id` of the caller's scope (any owner's in admin mode), read without a lock. */
function findItem(db: Db, ctx: Context, id: string): Promise<ActionItemRow | undefined> {
  return db
    .selectFrom('action_items')
    .selectAll()
    .where('id', '=', id)
    .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
    .executeTakeFirst();
}

async function present(ctx: Context, row: ActionItemRow): Promise<ActionItem & { owner?: Owner }> {
  const [item] = await withOwners(ctx, [row], serializeActionItem);
  return item!;
}

export const list = defineAction({
  summary: 'List action items',
  description:
    'Newest first. `count` is the number of items matching the filter. `dueAfter` is inclusive, `dueBefore` exclusive; either leaves out items without `due_at`.',
  readOnly: true,
  input: z
    .strictObject({
      completed: z.boolean().optional(),
      goalId: uuid().optional().describe('Only items linked to this goal.'),
      dueBefore: datetime.optional().describe('Only items due before this time.'),
      dueAfter: datetime.optional().describe('Only items due at or after this time.'),
      ...pageFields,
    })
    .refine((d) => !d.dueBefore || !d.dueAfter || new Date(d.dueAfter) < new Date(d.dueBefore), {
      path: ['dueAfter'],
      message: 'dueAfter must be before dueBefore',
      when: onlyIfValid,
    }),
  handler: async ({ input, ctx }): Promise<Page<ActionItem & { owner?: Owner }>> => {
    const after = decodeCursor(input.cursor);
    const filtered = ctx.db
      .selectFrom('action_items')
      .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
      .$if(input.completed !== undefined, (qb) => qb.where('completed', '=', input.completed!))
      .$if(input.goalId !== undefined, (qb) => qb.where('goal_id', '=', input.goalId!))
      .$if(input.dueBefore !== undefined, (qb) => qb.where('due_at', '<', new Date(input.dueBefore!)))
      .$if(input.dueAfter !== undefined, (qb) => qb.where('due_at', '>=', new Date(input.dueAfter!)));
    // Without a due-date filter the count is a sum over action_item_counts (kept by triggers, db/0005): a few
    // rows, however many items the owner has. With one, it counts the matches.
    const byDue = input.dueBefore !== undefined || input.dueAfter !== undefined;
    const count = byDue
      ? filtered.select((eb) => eb.fn.countAll<string>().as('count'))
      : ctx.db
          .selectFrom('action_item_counts')
          .select(sql<string>`coalesce(sum(n), 0)`.as('count'))
          .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
          .$if(input.completed !== undefined, (qb) => qb.where('completed', '=', input.completed!))
          .$if(input.goalId !== undefined, (qb) => qb.where('goal_id', '=', input.goalId!));
    const [rows, total] = await Promise.all([
      newestPage(ctx.db, filtered.selectAll(), { after, limit: input.limit }),
      count.executeTakeFirstOrThrow(),
    ]);
    const page = splitPage(rows, input.limit);
    const items = await withOwners(ctx, page.rows, serializeActionItem);
    return { items, count: Number(total.count), next_cursor: page.next_cursor };
  },
});

export const get = defineAction({
  summary: 'Get an action item',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  handler: async ({ id, ctx }) => {
    const row = await findItem(ctx.db, ctx, id);
    if (!row) throw notFound();
    return present(ctx, row);
  },
});

export const create = defineAction({
  summary: 'Create an action item',
  description:
    'A `goal_id` must be one of your goals (NOT_FOUND otherwise); a `roadmap_node_id` needs the `goal_id` and must be a node of its roadmap. An item created completed completes its node.',
  created: true,
  input: createInput,
  handler: async ({ input, ctx }) => {
    const [row] = await createActionItems(ctx.db, {
      ownerId: ctx.scope.actingUserId,
      items: [toNewItem(input)],
      pathOf: () => ['data'],
    });
    return present(ctx, row!);
  },
});

export const batchCreate = defineAction({
  summary: 'Create up to 50 action items at once',
  description:
    'All or nothing, in one INSERT: one invalid item (its index in `details`) or a goal that is not yours writes none. Answers the items in request order.',
  created: true,
  input: z.strictObject({
    action_items: z.array(createInput).min(1).max(50, 'at most 50 action items per batch'),
  }),
  handler: async ({ input, ctx }) => {
    const rows = await createActionItems(ctx.db, {
      ownerId: ctx.scope.actingUserId,
      items: input.action_items.map(toNewItem),
      pathOf: (index) => ['data', 'action_items', index],
    });
    const items = await withOwners(ctx, rows, serializeActionItem);
    return { action_items: items, created_count: items.length };
  },
});

type Patch = Partial<z.output<typeof itemFields>>;

/** The goal link an update leaves: changing the goal drops the node unless the patch names one. */
function linkAfter(row: ActionItemRow, patch: Patch): { goalId: string | null; nodeId: string | null } {
  const goalId = patch.goal_id !== undefined ? patch.goal_id : row.goal_id;
  const nodeId =
    patch.roadmap_node_id !== undefined ? patch.roadmap_node_id : goalId === row.goal_id ? row.roadmap_node_id : null;
  return { goalId, nodeId };
}

/** Which lock an update needs on the goal it leaves the item linked to, if any. */
function goalLockFor(row: ActionItemRow, patch: Patch): { goalId: string; lock: GoalLock } | null {
  const { goalId, nodeId } = linkAfter(row, patch);
  if (goalId === null) return null;
  // Checking a node, or completing/reopening a linked item (which writes the node), reads the roadmap.
  if (nodeId !== null && (patch.roadmap_node_id !== undefined || patch.completed !== undefined)) {
    return { goalId, lock: 'roadmap' };
  }
  if (patch.goal_id !== undefined) return { goalId, lock: 'link' };
  return null;
}

const sameTime = (a: Date | null, b: Date | null) => (a === null || b === null ? a === b : a.getTime() === b.getTime());

export const update = defineAction({
  summary: 'Update an action item',
  description:
    'A partial update. Completing sets `completed_at`, reopening clears it; sending the state the item already has changes nothing. Completing or reopening an item linked to a roadmap node completes or reopens the node and recomputes the goal’s progress. Changing `goal_id` drops the node link unless `roadmap_node_id` names a node of the new goal.',
  id: true,
  input: itemFields
    .partial()
    .strict()
    .refine((data) => Object.keys(data).length > 0, { message: 'name at least one field to change', when: onlyIfValid }),
  handler: async ({ id, input: patch, ctx }) => {
    const row = (await updateAlone(ctx, id, patch)) ?? (await updateLinked(ctx, id, patch));
    return present(ctx, row);
  },
});

/**
 * The common update in one statement, without a transaction: a patch that leaves the goal link alone, of an
 * item whose node (if any) it does not complete or reopen. Nothing else is read or locked, so the goal → items
 * lock order does not arise. Answers nothing when the statement wrote nothing — no such item, a patch that changes
 * nothing, or an item whose node the patch would complete — and `updateLinked` then answers it.
 */
export async function updateAlone(ctx: Context, id: string, patch: Patch): Promise<ActionItemRow | undefined> {
  if (patch.goal_id !== undefined || patch.roadmap_node_id !== undefined) return undefined;
  const description = patch.description ?? null;
  const completed = patch.completed ?? null;
  const dueSet = patch.due_at !== undefined;
  const dueAt = patch.due_at ? new Date(patch.due_at).toISOString() : null;
  const conversationSet = patch.conversation_id !== undefined;
  const conversationId = patch.conversation_id ?? null;
  const owner = ctx.scope.ownerId === null ? sql`` : sql`and owner_id = ${ctx.scope.ownerId}`;
  const { rows } = await sql<ActionItemRow>`
    update action_items set
      description = coalesce(${description}::text, description),
      completed = coalesce(${completed}::boolean, completed),
      completed_at = case when ${completed}::boolean is null or ${completed}::boolean = completed then completed_at
                          when ${completed}::boolean then ${nowMs} end,
      due_at = case when ${dueSet}::boolean then ${dueAt}::timestamptz else due_at end,
      conversation_id = case when ${conversationSet}::boolean then ${conversationId}::text else conversation_id end,
      updated_at = ${nowMs}
    where id = ${id} ${owner}
      and (roadmap_node_id is null or ${completed}::boolean is null or ${completed}::boolean = completed)
      and (coalesce(${description}::text, description) is distinct from description
           or coalesce(${completed}::boolean, completed) is distinct from completed
           or (${dueSet}::boolean and ${dueAt}::timestamptz is distinct from due_at)
           or (${conversationSet}::boolean and ${conversationId}::text is distinct from conversation_id))
    returning *`.execute(ctx.db);
  if (rows[0]) await syncReminders(ctx.db, [{ kind: 'saved', item: rows[0] }]);
  return rows[0];
}

/** Every other update, in a transaction that locks the goal before the item (node-sync.ts). */
async function updateLinked(ctx: Context, id: string, patch: Patch): Promise<ActionItemRow> {
  return ctx.db.transaction().execute(async (trx) => {
    // The goal is locked before the item (see node-sync.ts), so the item is read first without a
    // lock to learn which goal that is.
    const seen = await findItem(trx, ctx, id);
    if (!seen) throw notFound();
    // The goal must be the item owner's (also in admin mode): ownership and lock in one query.
    const lockGoal = async (wanted: { goalId: string; lock: GoalLock }): Promise<GoalRow | undefined> =>
      (await lockGoals(trx, { ownerId: seen.owner_id, goalIds: [wanted.goalId], lock: wanted.lock })).get(wanted.goalId);
    const first = goalLockFor(seen, patch);
    let goal = first ? await lockGoal(first) : undefined;

    const current = await trx
      .selectFrom('action_items')
      .selectAll()
      .where('id', '=', id)
      .where('owner_id', '=', seen.owner_id)
      .forUpdate()
      .executeTakeFirst();
    if (!current) throw notFound();
    // Relinked (or its goal deleted) between the two reads: lock what the item is linked to now
    // (out of the usual order, but only in that race).
    const needed = goalLockFor(current, patch);
    if (needed && (needed.goalId !== first?.goalId || (needed.lock === 'roadmap' && first.lock !== 'roadmap'))) {
      goal = await lockGoal(needed);
    }
    // Only a goal the patch names can be missing: an item's own goal has its owner, or is gone and
    // the item unlinked by the time it is locked.
    if (needed && !goal) throw goalIdNotFound(['data', 'goal_id']);

    const link = linkAfter(current, patch);
    if (link.nodeId !== null && link.goalId === null) {
      throw new AppError({
        code: 'VALIDATION_ERROR',
        message: 'data.roadmap_node_id: a roadmap node needs its goal_id',
        details: [{ path: ['data', 'roadmap_node_id'], message: 'a roadmap node needs its goal_id', type: 'custom' }],
      });
    }
    if (patch.roadmap_node_id && !roadmapNodeIds(goal!.roadmap).has(patch.roadmap_node_id)) {
      throw unknownNodes([['data', 'roadmap_node_id']]);
    }

    const next = {
      description: patch.description ?? current.description,
      completed: patch.completed ?? current.completed,
      due_at: patch.due_at !== undefined ? (patch.due_at === null ? null : new Date(patch.due_at)) : current.due_at,
      conversation_id: patch.conversation_id !== undefined ? patch.conversation_id : current.conversation_id,
      goal_id: link.goalId,
      roadmap_node_id: link.nodeId,
    };
    const completedChanged = next.completed !== current.completed;
    const changed =
      completedChanged ||
      next.description !== current.description ||
      !sameTime(next.due_at, current.due_at) ||
      next.conversation_id !== current.conversation_id ||
      next.goal_id !== current.goal_id ||
      next.roadmap_node_id !== current.roadmap_node_id;
    // Nothing to change (completing a completed item, say): nothing written, updated_at kept.
    if (!changed) return current;

    const updated = await trx
      .updateTable('action_items')
      .set({
        ...next,
        ...(completedChanged && { completed_at: next.completed ? nowMs : null }),
        updated_at: nowMs,
      })
      .where('id', '=', id)
      .where('owner_id', '=', current.owner_id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (completedChanged && link.nodeId !== null) {
      await setRoadmapNodesCompleted(trx, goal!, [{ nodeId: link.nodeId, completed: next.completed }]);
    }
    await syncReminders(trx, [{ kind: 'saved', item: updated }]);
    return updated;
  });
}

export const remove = defineAction({
  summary: 'Delete an action item',
  description: 'Its roadmap node keeps its state; its reminder is cancelled.',
  id: true,
  input: z.strictObject({}),
  handler: async ({ id, ctx }) => {
    return ctx.db.transaction().execute(async (trx) => {
      const row = await trx
        .deleteFrom('action_items')
        .where('id', '=', id)
        .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
        .returning('id')
        .executeTakeFirst();
      if (!row) throw notFound();
      await syncReminders(trx, [{ kind: 'deleted', itemId: row.id }]);
      return { id: row.id, deleted: true as const };
    });
  },
});

/** The action-items resource. */
export const actionItemActions = { list, get, create, 'batch-create': batchCreate, update, delete: remove };
