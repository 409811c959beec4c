import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and the schema builder; never imports app code.
export async function up(db: Kysely<any>): Promise<void> {
  // Millisecond timestamps, like every other table: list cursors and JSON clients compare them exactly.
  const nowMs = sql`date_trunc('milliseconds', now())`;

  await db.schema
    .createTable('action_items')
    .ifNotExists()
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('completed', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('due_at', 'timestamptz')
    .addColumn('completed_at', 'timestamptz')
    // An opaque reference to a conversation in the caller's own system (Omi's ids are not UUIDs), so
    // text with no foreign key; the API bounds it to 1–200 characters.
    .addColumn('conversation_id', 'text')
    // A deleted goal leaves its items in place, unlinked.
    .addColumn('goal_id', 'uuid', (c) => c.references('goals.id').onDelete('set null'))
    // The id of a node in the goal's `roadmap` jsonb; nodes are not rows, so no foreign key.
    .addColumn('roadmap_node_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .addCheckConstraint('action_items_completed_at_check', sql`completed = (completed_at is not null)`)
    .addCheckConstraint('action_items_node_needs_goal_check', sql`roadmap_node_id is null or goal_id is not null`)
    .execute();

  // Whatever clears goal_id (the goal's deletion through ON DELETE SET NULL, or an update) clears the
  // node link too: a node id means nothing without its goal. A BEFORE trigger runs ahead of the check
  // constraint, so the deletion of a goal with linked items succeeds.
  await sql`
    create or replace function action_items_unlink_node() returns trigger language plpgsql as $$
    begin
      new.roadmap_node_id := null;
      return new;
    end
    $$`.execute(db);
  await sql`drop trigger if exists action_items_unlink_node on action_items`.execute(db);
  await sql`
    create trigger action_items_unlink_node
    before update of goal_id on action_items
    for each row when (new.goal_id is null and new.roadmap_node_id is not null)
    execute function action_items_unlink_node()`.execute(db);

  // Every list (newest first, per owner) and every ownership check (id is the primary key).
  await sql`create index if not exists action_items_owner_created_idx on action_items (owner_id, created_at desc, id desc)`.execute(db);
  // list with `completed`.
  await sql`create index if not exists action_items_owner_completed_idx on action_items (owner_id, completed, created_at desc, id desc)`.execute(db);
  // list with `goalId`, the ON DELETE SET NULL of a goal's deletion, and the node sync (a goal's items).
  await sql`create index if not exists action_items_goal_idx on action_items (goal_id, created_at desc, id desc) where goal_id is not null`.execute(db);
  // list with `dueBefore` / `dueAfter`.
  await sql`create index if not exists action_items_owner_due_idx on action_items (owner_id, due_at) where due_at is not null`.execute(db);
}
