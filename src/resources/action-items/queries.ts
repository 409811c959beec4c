import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Db } from '../../db/client.ts';
import type { ActionItemRow, Database } from '../../db/schema.ts';
import { nowMs, ownedBy } from '../../db/sql.ts';
import { goalIdNotFound, notNodes } from '../errors.ts';
import { newestPage, type CursorPosition } from '../pagination.ts';
import { completeNodes, lockGoals, roadmapNodeIds } from '../roadmaps/sync.ts';

// Every statement on action items. `ownerId` null is admin mode across accounts (see `ownedBy`). Reminders and the
// `action_item.completed` event follow every write by themselves: triggers on action_items write them in the
// writing statement (db/0006), so each commits or rolls back with the write, one-statement writes included.

type Trx = Transaction<Database>;

/**
 * The item `id` of the owner (any owner's when null), read without a lock.
 *
 * @example const row = await findItem(ctx.db, { ownerId: ctx.scope.ownerId, id });
 */
export function findItem(db: Db, target: { ownerId: string | null; id: string }): Promise<ActionItemRow | undefined> {
  return db.selectFrom('action_items').selectAll().where('id', '=', target.id).$call(ownedBy(target.ownerId)).executeTakeFirst();
}

/** The item `id` of `ownerId`, locked FOR UPDATE (after its goal: roadmaps/sync.ts). */
export function lockItem(trx: Trx, target: { ownerId: string; id: string }): Promise<ActionItemRow | undefined> {
  return trx
    .selectFrom('action_items')
    .selectAll()
    .where('id', '=', target.id)
    .where('owner_id', '=', target.ownerId)
    .forUpdate()
    .executeTakeFirst();
}

export interface ItemFilter {
  ownerId: string | null;
  completed?: boolean;
  goalId?: string;
  dueBefore?: Date;
  dueAfter?: Date;
}

/**
 * A page of items matching `filter` (`limit + 1` rows, newest first, after the cursor) and how many match in all.
 * Without a due-date filter the count is a sum over action_item_counts (kept by triggers, db/0005): a few rows,
 * however many items the owner has. With one, it counts the matches.
 */
export async function listItems(
  db: Db,
  filter: ItemFilter,
  page: { after: CursorPosition | undefined; limit: number },
): Promise<{ rows: ActionItemRow[]; total: number }> {
  const filtered = db
    .selectFrom('action_items')
    .$call(ownedBy(filter.ownerId))
    .$if(filter.completed !== undefined, (qb) => qb.where('completed', '=', filter.completed!))
    .$if(filter.goalId !== undefined, (qb) => qb.where('goal_id', '=', filter.goalId!))
    .$if(filter.dueBefore !== undefined, (qb) => qb.where('due_at', '<', filter.dueBefore!))
    .$if(filter.dueAfter !== undefined, (qb) => qb.where('due_at', '>=', filter.dueAfter!));
  const byDue = filter.dueBefore !== undefined || filter.dueAfter !== undefined;
  const count = byDue
    ? filtered.select((eb) => eb.fn.countAll<string>().as('count'))
    : db
        .selectFrom('action_item_counts')
        .select(sql<string>`coalesce(sum(n), 0)`.as('count'))
        .$call(ownedBy(filter.ownerId))
        .$if(filter.completed !== undefined, (qb) => qb.where('completed', '=', filter.completed!))
        .$if(filter.goalId !== undefined, (qb) => qb.where('goal_id', '=', filter.goalId!));
  const [rows, total] = await Promise.all([newestPage(db, filtered.selectAll(), page), count.executeTakeFirstOrThrow()]);
  return { rows, total: Number(total.count) };
}

/** Deletes the item `id` of the owner; answers its id, or nothing when there is no such item. */
export async function deleteItem(db: Db, target: { ownerId: string | null; id: string }): Promise<string | undefined> {
  const row = await db.deleteFrom('action_items').where('id', '=', target.id).$call(ownedBy(target.ownerId)).returning('id').executeTakeFirst();
  return row?.id;
}

/** The fields an update writes; an absent field keeps its value. */
export interface ItemPatch {
  description?: string;
  completed?: boolean;
  due_at?: Date | null;
  conversation_id?: string | null;
  goal_id?: string | null;
  roadmap_node_id?: string | null;
}

/**
 * The one UPDATE of an item, for every update path. It writes the fields `patch` names and decides `completed_at`
 * (set when the item becomes completed, cleared when it stops being, kept otherwise); it writes nothing, and answers
 * nothing, when the patch would change nothing. With `unlessNodeFollows` it also writes nothing for an item linked to
 * a node whose state the patch changes: that write must lock the goal first (roadmaps/sync.ts).
 *
 * @example const row = await updateItem(trx, { id, ownerId, patch: { completed: true } });
 */
export async function updateItem(
  db: Db,
  options: { id: string; ownerId: string | null; patch: ItemPatch; unlessNodeFollows?: boolean },
): Promise<ActionItemRow | undefined> {
  const { patch } = options;
  const value = <K extends keyof ItemPatch>(key: K) => ({ set: patch[key] !== undefined, to: patch[key] ?? null });
  const [description, completed, dueAt, conversation, goal, node] = [
    value('description'), value('completed'), value('due_at'), value('conversation_id'), value('goal_id'), value('roadmap_node_id'),
  ];
  const next = {
    description: sql`case when ${description.set}::boolean then ${description.to}::text else description end`,
    completed: sql`case when ${completed.set}::boolean then ${completed.to}::boolean else completed end`,
    due_at: sql`case when ${dueAt.set}::boolean then ${dueAt.to?.toISOString() ?? null}::timestamptz else due_at end`,
    conversation_id: sql`case when ${conversation.set}::boolean then ${conversation.to}::text else conversation_id end`,
    goal_id: sql`case when ${goal.set}::boolean then ${goal.to}::uuid else goal_id end`,
    roadmap_node_id: sql`case when ${node.set}::boolean then ${node.to}::text else roadmap_node_id end`,
  };
  const changes = Object.entries(next).map(([column, to]) => sql`${to} is distinct from ${sql.ref(column)}`);
  const { rows } = await sql<ActionItemRow>`
    update action_items set
      description = ${next.description}, completed = ${next.completed},
      completed_at = case when ${next.completed} = completed then completed_at when ${next.completed} then ${nowMs} end,
      due_at = ${next.due_at}, conversation_id = ${next.conversation_id},
      goal_id = ${next.goal_id}, roadmap_node_id = ${next.roadmap_node_id}, updated_at = ${nowMs}
    where id = ${options.id} ${options.ownerId === null ? sql`` : sql`and owner_id = ${options.ownerId}`}
      ${options.unlessNodeFollows ? sql`and (roadmap_node_id is null or ${next.completed} = completed)` : sql``}
      and (${sql.join(changes, sql` or `)})
    returning *`.execute(db);
  return rows[0];
}

/** A new item as the API accepts it (dates already parsed). */
export interface NewItemInput {
  description: string;
  completed?: boolean;
  due_at?: Date | null;
  conversation_id?: string | null;
  goal_id?: string | null;
  roadmap_node_id?: string | null;
}

/**
 * Creates items for `ownerId` in one INSERT, all or nothing, and answers them in the order given.
 * Each `goal_id` must be the owner's goal (NOT_FOUND otherwise) and each `roadmap_node_id` a node of
 * that goal's roadmap (VALIDATION_ERROR otherwise). An item created completed completes its node, and
 * the goal's progress follows. `pathOf(i)` says where item `i` sat in the request, for error paths.
 *
 * Items without a roadmap node (the common case) take one statement and no transaction: the statement
 * checks and locks the goals (FOR KEY SHARE, so none is deleted before it commits) and writes the items
 * only if every goal named is the owner's; a single statement is atomic by itself. A BEGIN … COMMIT
 * around it cost 2 more round trips, and held a pooled connection across all of them. Items on roadmap
 * nodes read the roadmap first: their goals are locked for a roadmap write in a transaction (the one given,
 * or one begun here), in the lock order of roadmaps/sync.ts, and the same INSERT follows.
 *
 * The ids are generated here in ascending order: a batch shares one `created_at`, and lists (newest
 * first, then id descending) then show it last item first, as if created one after another.
 *
 * @example const rows = await createActionItems(ctx.db, { ownerId, items, pathOf: (i) => ['data', 'action_items', i] });
 */
export async function createActionItems(db: Db, options: NewItems): Promise<ActionItemRow[]> {
  if (options.items.length === 0) return [];
  if (!options.items.some((item) => item.roadmap_node_id)) return insertItems(db, options);
  if (db.isTransaction) return createOnNodes(db as Trx, options);
  return db.transaction().execute((trx) => createOnNodes(trx, options));
}

interface NewItems {
  ownerId: string;
  items: NewItemInput[];
  pathOf: (index: number) => (string | number)[];
}

/** Items of which some name a roadmap node: the goals locked and the nodes checked, then the insert. */
async function createOnNodes(trx: Trx, options: NewItems): Promise<ActionItemRow[]> {
  const { items, pathOf } = options;
  const goals = await lockGoals(trx, {
    ownerId: options.ownerId,
    goalIds: items.flatMap((item) => (item.goal_id ? [item.goal_id] : [])),
    lock: 'roadmap',
  });
  const missing = items.findIndex((item) => item.goal_id && !goals.has(item.goal_id));
  if (missing !== -1) throw goalIdNotFound([...pathOf(missing), 'goal_id']);
  const badNodes = items.flatMap((item, index) =>
    item.roadmap_node_id && !roadmapNodeIds(goals.get(item.goal_id!)!.roadmap).has(item.roadmap_node_id)
      ? [[...pathOf(index), 'roadmap_node_id']]
      : [],
  );
  if (badNodes.length > 0) throw notNodes(badNodes, { hasRoadmap: true });
  const rows = await insertItems(trx, options);

  // Items created completed complete their nodes: one roadmap write per goal.
  const completions = new Map<string, { nodeId: string; completed: boolean }[]>();
  for (const row of rows) {
    if (!row.completed || row.goal_id === null || row.roadmap_node_id === null) continue;
    const list = completions.get(row.goal_id) ?? [];
    list.push({ nodeId: row.roadmap_node_id, completed: true });
    completions.set(row.goal_id, list);
  }
  for (const [goalId, changes] of completions) {
    await completeNodes(trx, goals.get(goalId)!, changes);
  }
  return rows;
}

/** The INSERT, with the goals' ownership check and lock in the same statement; answers the rows as written. */
async function insertItems(db: Db, options: NewItems): Promise<ActionItemRow[]> {
  const { items, pathOf } = options;
  const goalIds = [...new Set(items.flatMap((item) => (item.goal_id ? [item.goal_id.toLowerCase()] : [])))];
  const ids = items.map(() => randomUUID()).sort();
  // Over column arrays (unnest): the same statement, and one prepared plan, for 1 item or 50, with 8
  // parameters instead of 9 per item — building, sending and binding a 450-parameter VALUES list cost a
  // 50-item batch more than the rows themselves (npm run bench). `completed` goes as text: postgres.js
  // types an array parameter by its first element, and would declare booleans a boolean.
  const column = <T>(pick: (item: NewItemInput) => T) => items.map(pick);
  // Only the one timestamp comes back, not the rows: every column of a new row is either sent here or
  // that timestamp (created_at and updated_at default to it, completed_at is set to it), so the rows
  // are built below as written: reading 50 rows back (`returning *`) was a measurable part of a batch's
  // cost, on the server and in Postgres (docs/performance.md).
  // `owned` is materialised (it is read twice): the goals are locked once, in id order, and the items
  // are written only if every goal named is among them; else no row, and `owned` says which are.
  const { rows: written } = await sql<{ created_at: Date | null; owned: string[] }>`
    with owned as (
      select id from goals where id = any(${goalIds}::uuid[]) and owner_id = ${options.ownerId}
      order by id for key share
    ), inserted as (
      insert into action_items
        (id, owner_id, description, completed, completed_at, due_at, conversation_id, goal_id, roadmap_node_id)
      select t.id, ${options.ownerId}, t.description, t.completed, case when t.completed then ${nowMs} end,
             t.due_at, t.conversation_id, t.goal_id, t.roadmap_node_id
      from unnest(
        ${ids}::uuid[], ${column((i) => i.description)}::text[], ${column((i) => String(i.completed ?? false))}::text[]::boolean[],
        ${column((i) => i.due_at?.toISOString() ?? null)}::timestamptz[], ${column((i) => i.conversation_id ?? null)}::text[],
        ${column((i) => i.goal_id ?? null)}::uuid[], ${column((i) => i.roadmap_node_id ?? null)}::text[]
      ) as t(id, description, completed, due_at, conversation_id, goal_id, roadmap_node_id)
      where (select count(*) from owned) = ${goalIds.length}
      returning created_at
    )
    select (select created_at from inserted limit 1) as created_at, array(select id from owned) as owned`.execute(db);
  const at = written[0]!.created_at;
  if (at === null) {
    const owned = new Set(written[0]!.owned);
    const missing = items.findIndex((item) => item.goal_id && !owned.has(item.goal_id.toLowerCase()));
    if (missing === -1) throw new Error('createActionItems: every goal is owned, yet nothing was inserted');
    throw goalIdNotFound([...pathOf(missing), 'goal_id']);
  }
  const rows: ActionItemRow[] = items.map((item, index) => ({
    id: ids[index]!,
    // Uuids as Postgres writes them (an admin's `userId` may come in upper case).
    owner_id: options.ownerId.toLowerCase(),
    // As stored: postgres.js writes text as UTF-8, which turns a lone surrogate into U+FFFD.
    description: item.description.toWellFormed(),
    completed: item.completed ?? false,
    due_at: item.due_at ?? null,
    completed_at: item.completed ? at : null,
    conversation_id: item.conversation_id?.toWellFormed() ?? null,
    goal_id: item.goal_id?.toLowerCase() ?? null,
    roadmap_node_id: item.roadmap_node_id?.toWellFormed() ?? null,
    created_at: at,
    updated_at: at,
  }));
  return rows;
}
