import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// The active limit and the attachment as database functions, so that `goals.create` and `goals.attach`
// cost one round trip each instead of four (BEGIN, lock, write, COMMIT): measured with `npm run bench`,
// those round trips were most of what made them slower than a bare INSERT. A function runs in the
// caller's implicit transaction, and every statement in it takes a fresh snapshot (READ COMMITTED,
// volatile functions), so a statement run after a lock sees everything committed by whoever held it
// before: exactly the guarantee the transactions gave. The rules live here once; the TypeScript side
// calls these functions for create, attach, update and the deletion of agents alike.
export async function up(db: Kysely<any>): Promise<void> {
  // Serialises writes to one active-limit scope (an agent, or an owner's agent-less goals) by locking its
  // row. False when the agent is not the owner's (or does not exist).
  await sql`
    create or replace function goals_lock_active_scope(p_owner uuid, p_agent uuid) returns boolean
    language plpgsql as $$
    begin
      if p_agent is null then
        perform 1 from users where id = p_owner for no key update;
      else
        perform 1 from agents where id = p_agent and owner_id = p_owner for no key update;
      end if;
      return found;
    end
    $$`.execute(db);

  // Keeps at most p_limit active goals in a scope: p_keep (the goal being created or activated) stays,
  // then the newest others; the oldest are set inactive. Call with the scope locked; returns the ids it
  // deactivated. Status and scope are checked again on the row itself: a goal completed or moved to
  // another agent concurrently, after the subquery chose it, is re-read once its row lock is released
  // and must not be overwritten to inactive.
  await sql`
    create or replace function goals_enforce_active_limit(p_owner uuid, p_agent uuid, p_keep uuid, p_limit integer)
    returns table (id uuid)
    language plpgsql as $$
    #variable_conflict use_column
    declare
      keep_others integer := case when p_keep is null then p_limit else p_limit - 1 end;
    begin
      -- Two statements, not one with IS NOT DISTINCT FROM: that cannot use goals_active_scope_idx.
      -- (PL/pgSQL, not SQL: its plans are kept for the session; a SQL function is planned at every call.)
      if p_agent is null then
        return query
          update goals set status = 'inactive', updated_at = date_trunc('milliseconds', now())
          where status = 'active' and agent_id is null
            and id in (select id from goals
                       where owner_id = p_owner and agent_id is null and status = 'active' and id is distinct from p_keep
                       order by created_at desc, id desc offset keep_others)
          returning id;
      else
        return query
          update goals set status = 'inactive', updated_at = date_trunc('milliseconds', now())
          where status = 'active' and agent_id = p_agent
            and id in (select id from goals
                       where owner_id = p_owner and agent_id = p_agent and status = 'active' and id is distinct from p_keep
                       order by created_at desc, id desc offset keep_others)
          returning id;
      end if;
    end
    $$`.execute(db);

  // goals.create: the scope locked, the limit applied (active goals, p_limit > 0), the goal inserted.
  // p_goal carries every column but the timestamps, as jsonb. No row when the agent is not the owner's.
  await sql`
    create or replace function goals_create(p_goal jsonb, p_limit integer) returns setof goals
    language plpgsql as $$
    declare
      g goals := jsonb_populate_record(null::goals, p_goal);
    begin
      if not goals_lock_active_scope(g.owner_id, g.agent_id) then
        return;
      end if;
      if g.status = 'active' and p_limit > 0 then
        perform goals_enforce_active_limit(g.owner_id, g.agent_id, g.id, p_limit);
      end if;
      return query
        insert into goals (id, owner_id, agent_id, name, description, status, priority, lead_fields, goal_type,
                           target_value, current_value, min_value, max_value, unit, target_date, roadmap, progress)
        values (g.id, g.owner_id, g.agent_id, g.name, g.description, g.status, g.priority, g.lead_fields, g.goal_type,
                g.target_value, g.current_value, g.min_value, g.max_value, g.unit, g.target_date, g.roadmap, g.progress)
        returning *;
    end
    $$`.execute(db);

  // goals.attach: the goal and the agent, of one owner (p_owner, or any owner when null), locked in one
  // statement. The goal FOR KEY SHARE: enough to keep it from being deleted, and unlike SHARE it does not
  // block the active limit deactivating it (which would deadlock with a create holding the agent lock).
  // The agent FOR NO KEY UPDATE: it serialises attaches to one agent, so the attachment read next (a new
  // snapshot, after the lock) is the one being replaced. No row when either is missing or not the owner's.
  await sql`
    create or replace function goals_attach(p_goal uuid, p_agent uuid, p_owner uuid)
    returns table (agent_id uuid, goal_id uuid, attached_at timestamptz, replaced_goal_id uuid)
    language plpgsql as $$
    #variable_conflict use_column
    declare
      v_owner uuid;
      v_previous uuid;
    begin
      select g.owner_id into v_owner
      from goals g join agents a on a.id = p_agent and a.owner_id = g.owner_id
      where g.id = p_goal and (p_owner is null or g.owner_id = p_owner)
      for key share of g for no key update of a;
      if not found then
        return;
      end if;
      select x.goal_id into v_previous from agent_goal_attachments x where x.agent_id = p_agent;
      return query
        insert into agent_goal_attachments as x (agent_id, goal_id, owner_id)
        values (p_agent, p_goal, v_owner)
        on conflict (agent_id) do update set goal_id = excluded.goal_id, attached_at = date_trunc('milliseconds', now())
        returning x.agent_id, x.goal_id, x.attached_at, nullif(v_previous, p_goal);
    end
    $$`.execute(db);
}
