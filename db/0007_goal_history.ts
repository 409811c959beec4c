import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// A goal's progress history (SPEC §4 goals, `history`): one row per goal and UTC day on which its progress, current
// value or status changed, holding that day's last state. Triggers on goals write it, in the statement that changes
// the goal, so no writer can forget it: goals.create and update, update-node and the other roadmap writes, an action
// item completing a node, the active limit setting a goal inactive, an agent's deletion, SQL by hand. Deleted with
// the goal.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table goal_history (
      goal_id uuid not null references goals (id) on delete cascade,
      day date not null,
      progress double precision not null,
      current_value double precision not null,
      status text not null,
      primary key (goal_id, day)
    )`.execute(db);

  // The day a change belongs to, in UTC. `goalpost.now` (a timestamp, set in a session or transaction) stands in for
  // the clock, so that tests can write a history of past days through the same triggers; unset, it is now().
  await sql`
    create function goal_history_today() returns date
    language sql stable as $$
      select (coalesce(nullif(current_setting('goalpost.now', true), '')::timestamptz, now()) at time zone 'utc')::date
    $$`.execute(db);

  await sql`
    create function goals_record_history() returns trigger
    language plpgsql as $$
    begin
      insert into goal_history (goal_id, day, progress, current_value, status)
      values (new.id, goal_history_today(), new.progress, new.current_value, new.status)
      on conflict (goal_id, day) do update
        set progress = excluded.progress, current_value = excluded.current_value, status = excluded.status;
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger goals_history_insert after insert on goals
    for each row execute function goals_record_history()`.execute(db);
  await sql`
    create trigger goals_history_update after update of progress, current_value, status on goals
    for each row when (old.progress is distinct from new.progress or old.current_value is distinct from new.current_value
                       or old.status is distinct from new.status)
    execute function goals_record_history()`.execute(db);

  // The goals there already are: today's state is their first point.
  await sql`
    insert into goal_history (goal_id, day, progress, current_value, status)
    select id, goal_history_today(), progress, current_value, status from goals
    on conflict do nothing`.execute(db);
}
