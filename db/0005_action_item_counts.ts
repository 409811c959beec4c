import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// `action-items.list` answers `count`, the number of items matching its filter, exactly. Counted from
// `action_items`, that is an index scan of every item of the owner on every list: 0.7 ms at 10,000 items an
// owner and 7 ms at 100,000 (measured on Postgres 15), however small the page. Agents file items per
// conversation, so an owner's items grow without bound, as goals do not. So the counts are kept in
// `action_item_counts` the way db/0004 keeps goal_counts: delta rows written by triggers in the transaction of
// every write, a key's count the sum of its rows, an owner's rows folded now and then (SKIP LOCKED, so no writer
// waits). A list filtered by due date still counts its matches in `action_items`.
//
// The key is (owner, goal, completed): the filters a list can answer from it. Inserts and deletes are counted by
// statement-level triggers over the statement's rows (a 50-item batch-create adds one row per goal and
// completion state, not 50); an update by a row trigger that fires only when it moves an item to another key.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table action_item_counts (
      owner_id uuid not null,
      goal_id uuid,
      completed boolean not null,
      n integer not null
    )`.execute(db);
  await sql`create index action_item_counts_owner_idx on action_item_counts (owner_id)`.execute(db);

  // As goal_counts_fold (db/0004): an owner's rows into one per key, skipping rows another transaction folds.
  await sql`
    create function action_item_counts_fold(p_owner uuid) returns void
    language plpgsql
    set plan_cache_mode = force_custom_plan
    as $$
    begin
      with folded as (
        delete from action_item_counts
        where ctid = any (array(select ctid from action_item_counts where owner_id = p_owner for update skip locked))
        returning goal_id, completed, n)
      insert into action_item_counts (owner_id, goal_id, completed, n)
      select p_owner, goal_id, completed, sum(n) from folded group by goal_id, completed having sum(n) <> 0;
    end
    $$`.execute(db);

  await sql`
    create function action_items_count_insert() returns trigger
    language plpgsql as $$
    begin
      insert into action_item_counts (owner_id, goal_id, completed, n)
      select owner_id, goal_id, completed, count(*) from inserted_rows group by owner_id, goal_id, completed;
      if random() < 1.0 / 16 then
        perform action_item_counts_fold(owner_id) from (select distinct owner_id from inserted_rows) as owners;
      end if;
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger action_items_count_insert after insert on action_items
    referencing new table as inserted_rows
    for each statement execute function action_items_count_insert()`.execute(db);

  // Items deleted because their owner is being deleted (the cascade of a user's deletion) leave no rows: the
  // owner's rows go with them instead.
  await sql`
    create function action_items_count_delete() returns trigger
    language plpgsql as $$
    begin
      delete from action_item_counts
      where owner_id in (select d.owner_id from deleted_rows d where not exists (select 1 from users u where u.id = d.owner_id));
      insert into action_item_counts (owner_id, goal_id, completed, n)
      select d.owner_id, d.goal_id, d.completed, -count(*) from deleted_rows d
      where exists (select 1 from users u where u.id = d.owner_id)
      group by d.owner_id, d.goal_id, d.completed;
      if random() < 1.0 / 16 then
        perform action_item_counts_fold(owner_id)
        from (select distinct d.owner_id from deleted_rows d where exists (select 1 from users u where u.id = d.owner_id)) as owners;
      end if;
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger action_items_count_delete after delete on action_items
    referencing old table as deleted_rows
    for each statement execute function action_items_count_delete()`.execute(db);

  // An update: a row trigger whose WHEN leaves out every update that keeps the item's key (most of them: a
  // description, a due date), so those cost nothing. A goal's deletion moves its items to no goal this way.
  await sql`
    create function action_items_count_move() returns trigger
    language plpgsql as $$
    begin
      if not exists (select 1 from users where id = old.owner_id) then
        delete from action_item_counts where owner_id = old.owner_id;
        return null;
      end if;
      insert into action_item_counts (owner_id, goal_id, completed, n)
      values (old.owner_id, old.goal_id, old.completed, -1), (new.owner_id, new.goal_id, new.completed, 1);
      if random() < 1.0 / 16 then
        perform action_item_counts_fold(old.owner_id);
        if new.owner_id <> old.owner_id then
          perform action_item_counts_fold(new.owner_id);
        end if;
      end if;
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger action_items_count_move after update of owner_id, goal_id, completed on action_items
    for each row when (old.owner_id is distinct from new.owner_id or old.goal_id is distinct from new.goal_id
                       or old.completed is distinct from new.completed)
    execute function action_items_count_move()`.execute(db);

  // TRUNCATE fires no row or delete trigger: the counts go with the items.
  await sql`
    create function action_items_count_truncate() returns trigger
    language plpgsql as $$
    begin
      truncate action_item_counts;
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger action_items_count_truncate after truncate on action_items
    for each statement execute function action_items_count_truncate()`.execute(db);

  // The items there already are; the migration's transaction holds the triggers' lock on action_items from
  // CREATE TRIGGER to COMMIT, so no write lands between this count and the triggers.
  await sql`
    insert into action_item_counts (owner_id, goal_id, completed, n)
    select owner_id, goal_id, completed, count(*) from action_items group by owner_id, goal_id, completed`.execute(db);
}
