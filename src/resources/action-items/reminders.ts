import type { Db } from '../../db/client.ts';
import type { ActionItemRow } from '../../db/schema.ts';

/** What happened to an item, as the reminder queue will need to know it. */
export type ReminderChange =
  /** Created, changed, completed or reopened: `item` is its state after the write. */
  | { kind: 'saved'; item: ActionItemRow }
  | { kind: 'deleted'; itemId: string };

/**
 * The one place where an action item's `due_at` meets the reminder queue (SPEC §4 notifications, a
 * later issue). Every write of action items calls it with the items' state after the write: create,
 * batch-create, update (completing and reopening included), delete, and the node → items sync of a
 * roadmap node. Each passes the executor it wrote with: its transaction, except create and batch-create
 * of items without a roadmap node (createActionItems) and an update of the fields alone (updateAlone in
 * actions.ts), which are one statement without a transaction and pass the pool after that statement.
 *
 * It does nothing yet. The notifications issue fills it in: for `saved`, schedule (or move) the item's
 * reminder job when it has a future `due_at` and is not completed, else cancel it; for `deleted`,
 * cancel it. The job queue lives in Postgres, so enqueueing through a transaction commits or rolls
 * back with the write that caused it: that issue must give the one-statement writes a transaction
 * (when an item has a due date) or enqueue in their statement.
 *
 * @example await syncReminders(trx, rows.map((item) => ({ kind: 'saved', item })));
 */
export async function syncReminders(_db: Db, _changes: ReminderChange[]): Promise<void> {
  // Intentionally empty until the notifications issue: no reminder is scheduled anywhere else.
}
