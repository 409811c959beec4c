import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// `goals.list` answers `count`, the number of goals matching its filter, exactly. Counted from `goals`, that
// costs a scan of every goal of the owner (of the agent, of the status) on every list: with 1,000 goals an
// owner it was most of a `limit 10` list (`npm run bench`, scale step: Postgres CPU 58 → 256 µs a request,
// p99 +78% from 10k to 1M goals). So the counts are kept in `goal_counts`, by triggers on `goals`, in the
// transaction of every write (whatever writes: the API, the CLI, SQL by hand), and a list sums the few rows of
// its owner there. A list with `search` still counts its matches in `goals`.
//
// The rows are deltas, not one counter per key: a write adds rows (+1 for the key a goal enters, -1 for the
// one it leaves) and the count of a key is the sum of its rows. A counter row updated in place would be
// locked by each writer until its commit, and writers take it after their goal and scope locks, in the order
// of their rows: an activation waiting on a goal that a deletion holds while the deletion waits on the
// activation's count row deadlocked. Inserting never waits. Now and then (1 write in 16) a write folds its
// owner's rows into one per key, taking only rows no one else is folding (SKIP LOCKED), so that never waits
// either, and a list sums about (agents + 1) × 4 + 16 rows.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table goal_counts (
      owner_id uuid not null,
      agent_id uuid,
      status text not null,
      n integer not null
    )`.execute(db);
  await sql`create index goal_counts_owner_idx on goal_counts (owner_id)`.execute(db);

  // Folds an owner's rows into one per key (none for a key that sums to 0). Rows another transaction is
  // folding are skipped, not waited for; the fold is atomic, so a reader sees the rows before it or after it.
  // Planned at each call (force_custom_plan): a plan kept from when the table was small scans all of it, and
  // within one bulk INSERT (the benchmark's seed: 100,000 goals a statement) the table grows a row a goal.
  await sql`
    create function goal_counts_fold(p_owner uuid) returns void
    language plpgsql
    set plan_cache_mode = force_custom_plan
    as $$
    begin
      with folded as (
        delete from goal_counts
        where ctid = any (array(select ctid from goal_counts where owner_id = p_owner for update skip locked))
        returning agent_id, status, n)
      insert into goal_counts (owner_id, agent_id, status, n)
      select p_owner, agent_id, status, sum(n) from folded group by agent_id, status having sum(n) <> 0;
    end
    $$`.execute(db);

  // A goal deleted or moved because its owner is being deleted (the cascade of a user's deletion) leaves no
  // rows: the owner's rows go with it instead.
  await sql`
    create function goals_count_trigger() returns trigger
    language plpgsql as $$
    declare
      owner uuid := case when tg_op = 'INSERT' then new.owner_id else old.owner_id end;
    begin
      if tg_op <> 'INSERT' and not exists (select 1 from users where id = old.owner_id) then
        delete from goal_counts where owner_id = old.owner_id;
        return null;
      end if;
      if tg_op = 'INSERT' then
        insert into goal_counts (owner_id, agent_id, status, n) values (new.owner_id, new.agent_id, new.status, 1);
      elsif tg_op = 'DELETE' then
        insert into goal_counts (owner_id, agent_id, status, n) values (old.owner_id, old.agent_id, old.status, -1);
      else
        insert into goal_counts (owner_id, agent_id, status, n)
        values (old.owner_id, old.agent_id, old.status, -1), (new.owner_id, new.agent_id, new.status, 1);
        if new.owner_id <> old.owner_id and random() < 1.0 / 16 then
          perform goal_counts_fold(new.owner_id);
        end if;
      end if;
      if random() < 1.0 / 16 then
        perform goal_counts_fold(owner);
      end if;
      return null;
    end
    $$`.execute(db);

  await sql`
    create trigger goals_count_insert_delete after insert or delete on goals
    for each row execute function goals_count_trigger()`.execute(db);
  // Only an update that moves a goal to another key (the WHEN) touches the counts.
  await sql`
    create trigger goals_count_move after update of owner_id, agent_id, status on goals
    for each row when (old.owner_id is distinct from new.owner_id or old.agent_id is distinct from new.agent_id
                       or old.status is distinct from new.status)
    execute function goals_count_trigger()`.execute(db);

  // TRUNCATE fires no row trigger: the counts go with the goals.
  await sql`
    create function goals_count_truncate() returns trigger
    language plpgsql as $$
    begin
      truncate goal_counts;
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger goals_count_truncate after truncate on goals
    for each statement execute function goals_count_truncate()`.execute(db);

  // The goals there already are. The migration's transaction holds the triggers' lock on goals (SHARE ROW
  // EXCLUSIVE) from CREATE TRIGGER to COMMIT, so no write lands between this count and the triggers.
  await sql`
    insert into goal_counts (owner_id, agent_id, status, n)
    select owner_id, agent_id, status, count(*) from goals group by owner_id, agent_id, status`.execute(db);
}
