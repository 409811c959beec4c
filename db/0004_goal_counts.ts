import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// `goals.list` answers `count`, the number of goals matching its filter, exactly. Counted from `goals`, that
// costs a scan of every goal of the owner (of the agent, of the status) on every list: with 1,000 goals an
// owner it was most of a `limit 10` list (`npm run bench`, scale step: Postgres CPU 58 → 256 µs a request,
// p99 +78% from 10k to 1M goals). So the counts are kept per (owner, agent, status) in `goal_counts`, by
// triggers on `goals`, in the transaction of every write (whatever writes: the API, the CLI, SQL by hand), and a
// list sums at most 4 × (agents + 1) rows of it. A list with `search` still counts its matches in `goals`.
export async function up(db: Kysely<any>): Promise<void> {
  // No foreign keys: a row is removed when its count reaches 0, which also happens to the rows of a deleted
  // agent (its goals move to agent_id null) or user (its goals are deleted), whatever order cascades run in.
  await sql`
    create table goal_counts (
      owner_id uuid not null,
      agent_id uuid,
      status text not null,
      n bigint not null check (n >= 0),
      constraint goal_counts_key unique nulls not distinct (owner_id, agent_id, status)
    )`.execute(db);

  // One goal more or less under a key. A decrement locks the row (UPDATE … RETURNING) before it removes an
  // emptied one, so a concurrent increment of the same key waits for it and then inserts a fresh row. (The
  // check allows the 0 that lives from that UPDATE to the DELETE.)
  await sql`
    create function goal_counts_add(p_owner uuid, p_agent uuid, p_status text, p_delta integer) returns void
    language plpgsql as $$
    declare
      remaining bigint;
    begin
      if p_delta > 0 then
        insert into goal_counts as c (owner_id, agent_id, status, n) values (p_owner, p_agent, p_status, p_delta)
        on conflict (owner_id, agent_id, status) do update set n = c.n + excluded.n;
      else
        update goal_counts set n = n + p_delta
        where owner_id = p_owner and agent_id is not distinct from p_agent and status = p_status
        returning n into remaining;
        if remaining = 0 then
          delete from goal_counts where owner_id = p_owner and agent_id is not distinct from p_agent and status = p_status;
        end if;
      end if;
    end
    $$`.execute(db);

  // Row triggers (one goal is what the API writes at a time; a statement trigger's transition table cost more
  // per single-row insert, measured with pgbench). An update touches the counts only when it moves a goal to
  // another key (the trigger's WHEN), and then the two keys in a fixed order, so that two moves in opposite
  // directions (completed → inactive, inactive → completed) cannot deadlock on each other's count rows.
  await sql`
    create function goals_count_trigger() returns trigger
    language plpgsql as $$
    begin
      if tg_op = 'INSERT' then
        perform goal_counts_add(new.owner_id, new.agent_id, new.status, 1);
      elsif tg_op = 'DELETE' then
        perform goal_counts_add(old.owner_id, old.agent_id, old.status, -1);
      elsif (old.owner_id, coalesce(old.agent_id, '00000000-0000-0000-0000-000000000000'), old.status)
            < (new.owner_id, coalesce(new.agent_id, '00000000-0000-0000-0000-000000000000'), new.status) then
        perform goal_counts_add(old.owner_id, old.agent_id, old.status, -1);
        perform goal_counts_add(new.owner_id, new.agent_id, new.status, 1);
      else
        perform goal_counts_add(new.owner_id, new.agent_id, new.status, 1);
        perform goal_counts_add(old.owner_id, old.agent_id, old.status, -1);
      end if;
      return null;
    end
    $$`.execute(db);

  await sql`
    create trigger goals_count_insert_delete after insert or delete on goals
    for each row execute function goals_count_trigger()`.execute(db);
  await sql`
    create trigger goals_count_move after update of owner_id, agent_id, status on goals
    for each row when (old.owner_id is distinct from new.owner_id or old.agent_id is distinct from new.agent_id
                       or old.status is distinct from new.status)
    execute function goals_count_trigger()`.execute(db);

  // The goals there already are. The migration's transaction holds the trigger's lock on goals (SHARE ROW
  // EXCLUSIVE) from CREATE TRIGGER to COMMIT, so no write lands between this count and the triggers.
  await sql`
    insert into goal_counts (owner_id, agent_id, status, n)
    select owner_id, agent_id, status, count(*) from goals group by owner_id, agent_id, status`.execute(db);
}
