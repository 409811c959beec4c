import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// Webhooks, their events and deliveries, and the reminders of action items (SPEC §4 webhooks; docs/webhooks.md).
// The queue is these tables, not a queue library: a reminder is a column of the item's own row, set by a trigger in
// the statement that writes the item, so it commits or rolls back with it, whatever the writer (an action, the node
// sync, convert-nodes, SQL by hand); the events of a completion are written by triggers the same way. Why not
// pg-boss, and why not a table of reminders: docs/decisions.md.
export async function up(db: Kysely<any>): Promise<void> {
  const nowMs = sql`date_trunc('milliseconds', now())`;

  await sql`
    create table webhooks (
      id uuid primary key default gen_random_uuid(),
      owner_id uuid not null references users (id) on delete cascade,
      url text not null,
      events text[] not null,
      description text,
      enabled boolean not null default true,
      -- Stored as issued: it must be recoverable to sign. Never answered after create, never logged.
      secret text not null,
      created_at timestamptz not null default ${nowMs},
      updated_at timestamptz not null default ${nowMs}
    )`.execute(db);
  // Lists (newest first, per owner), the per-user limit, and the fan-out of an owner's events.
  await sql`create index webhooks_owner_created_idx on webhooks (owner_id, created_at desc, id desc)`.execute(db);

  // One row per event; `data` is the record's row as it was (to_jsonb), serialized as the API's object when sent.
  await sql`
    create table webhook_events (
      id text primary key,
      owner_id uuid not null references users (id) on delete cascade,
      type text not null,
      data jsonb not null,
      created_at timestamptz not null default ${nowMs}
    )`.execute(db);
  // The owner's deletion (the cascade), and the prune of old events.
  await sql`create index webhook_events_owner_idx on webhook_events (owner_id)`.execute(db);
  await sql`create index webhook_events_created_idx on webhook_events (created_at)`.execute(db);

  // One row per (event, webhook): the delivery log and the queue of attempts. A pending row is due at
  // `next_attempt_at`; a worker claims it by moving that time past the attempt's timeout and stamping `claim`, so
  // one process at a time sends it, and only the claim's holder records the outcome.
  await sql`
    create table webhook_deliveries (
      id uuid primary key default gen_random_uuid(),
      webhook_id uuid not null references webhooks (id) on delete cascade,
      event_id text not null references webhook_events (id) on delete cascade,
      event_type text not null,
      status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
      attempts integer not null default 0,
      last_status_code integer,
      last_error text,
      next_attempt_at timestamptz,
      delivered_at timestamptz,
      claim uuid,
      created_at timestamptz not null default ${nowMs},
      unique (event_id, webhook_id)
    )`.execute(db);
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
  await sql`create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, created_at desc, id desc)`.execute(db);
  // The prune of old delivered and failed deliveries (the worker, hourly, in batches).
  await sql`create index webhook_deliveries_done_idx on webhook_deliveries (created_at) where status <> 'pending'`.execute(db);

  // An action item's reminder is its own row: `remind_at` is when it is due (null: none). The worker takes the items
  // whose time has come through this partial index, which holds only the items with a reminder ahead.
  await sql`alter table action_items add column remind_at timestamptz`.execute(db);
  await sql`create index action_items_remind_idx on action_items (remind_at) where remind_at is not null`.execute(db);

  // An event of `p_owner`, fanned out to each of their enabled webhooks that subscribes to its type, in the
  // caller's transaction. Nothing at all when none does (most writes of most users): one index probe.
  await sql`
    create function webhooks_emit(p_owner uuid, p_type text, p_data jsonb) returns void
    language plpgsql as $$
    declare
      event_id text;
    begin
      if not exists (select 1 from webhooks where owner_id = p_owner and enabled and p_type = any (events)) then
        return;
      end if;
      event_id := 'evt_' || replace(gen_random_uuid()::text, '-', '');
      insert into webhook_events (id, owner_id, type, data) values (event_id, p_owner, p_type, p_data);
      insert into webhook_deliveries (webhook_id, event_id, event_type, next_attempt_at)
      select id, event_id, p_type, now() from webhooks
      where owner_id = p_owner and enabled and p_type = any (events);
    end
    $$`.execute(db);

  // The reminder follows the item: a future due date on an open item schedules (or moves) it; anything else
  // (completed, no due date, a date already past) cancels it. A BEFORE trigger sets the column on the row being
  // written, so it costs no other row and no other statement; its WHEN leaves out every write that cannot concern a
  // reminder (an item without a due date, an update that keeps both columns).
  await sql`
    create function action_items_remind_at() returns trigger
    language plpgsql as $$
    begin
      new.remind_at := case when not new.completed and new.due_at > now() then new.due_at end;
      return new;
    end
    $$`.execute(db);
  await sql`
    create trigger action_items_remind_at_insert before insert on action_items
    for each row when (new.due_at is not null or new.remind_at is not null)
    execute function action_items_remind_at()`.execute(db);
  await sql`
    create trigger action_items_remind_at_update before update of due_at, completed on action_items
    for each row when (old.due_at is distinct from new.due_at or old.completed is distinct from new.completed)
    execute function action_items_remind_at()`.execute(db);

  // action_item.completed: an item becomes completed (an update, its roadmap node, or created completed).
  await sql`
    create function action_items_emit_completed() returns trigger
    language plpgsql as $$
    begin
      perform webhooks_emit(new.owner_id, 'action_item.completed', to_jsonb(new) - 'remind_at');
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger action_items_completed_insert after insert on action_items
    for each row when (new.completed)
    execute function action_items_emit_completed()`.execute(db);
  await sql`
    create trigger action_items_completed_update after update of completed on action_items
    for each row when (new.completed and not old.completed)
    execute function action_items_emit_completed()`.execute(db);

  // goal.completed: a goal becomes done — its status turns `completed` or its progress reaches 100, whichever
  // comes first (one event per time it becomes done). Its roadmap stays out of the event.
  await sql`
    create function goals_emit_completed() returns trigger
    language plpgsql as $$
    begin
      perform webhooks_emit(new.owner_id, 'goal.completed', to_jsonb(new) - 'roadmap');
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger goals_completed_insert after insert on goals
    for each row when (new.status = 'completed' or new.progress >= 100)
    execute function goals_emit_completed()`.execute(db);
  await sql`
    create trigger goals_completed_update after update of status, progress on goals
    for each row when ((new.status = 'completed' or new.progress >= 100) and not (old.status = 'completed' or old.progress >= 100))
    execute function goals_emit_completed()`.execute(db);

  // Items already waiting for their due date when this migration runs get their reminders.
  await sql`update action_items set remind_at = due_at where not completed and due_at > now()`.execute(db);
}
