import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Db } from '../../db/client.ts';
import type { ActionItemRow, Database } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import { AppError, type IssueDetail } from '../../rpc/errors.ts';
import { lockGoals, roadmapNodeIds, setRoadmapNodesCompleted } from './node-sync.ts';
import { syncReminders } from './reminders.ts';

type Trx = Transaction<Database>;

/** A new item as the API accepts it (dates already parsed). */
export interface NewItemInput {
  description: string;
  completed?: boolean;
  due_at?: Date | null;
  conversation_id?: string | null;
  goal_id?: string | null;
  roadmap_node_id?: string | null;
}

/** NOT_FOUND for a goal named in `data`, the same whether it does not exist or is someone else's. */
export function goalIdNotFound(path: (string | number)[]): AppError {
  return new AppError({ code: 'NOT_FOUND', message: `${path.join('.')}: goal not found or you have no access to it` });
}

/** VALIDATION_ERROR for node ids that are not in their goal's roadmap. */
export function unknownNodes(paths: (string | number)[][]): AppError {
  const details: IssueDetail[] = paths.map((path) => ({
    path,
    message: "not a node of the goal's roadmap",
    type: 'custom',
  }));
  return new AppError({ code: 'VALIDATION_ERROR', message: `${paths[0]!.join('.')}: ${details[0]!.message}`, details });
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
 * nodes read the roadmap first: their goals are locked FOR NO KEY UPDATE in a transaction (the one given,
 * or one begun here), as node-sync.ts's protocol asks, and the same INSERT follows.
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
  if (badNodes.length > 0) throw unknownNodes(badNodes);
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
    await setRoadmapNodesCompleted(trx, goals.get(goalId)!, changes);
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
  // are built below as written. Reading 50 rows back (`returning *`) cost ~6 µs of server CPU an item
  // (parsing 11 columns, three of them timestamps) and ~3 µs of Postgres (output functions): a 50-item
  // batch ~300 + ~150 µs, measured in-process against the previous code, alternating.
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

  await syncReminders(db, rows.map((item) => ({ kind: 'saved' as const, item })));
  return rows;
}
