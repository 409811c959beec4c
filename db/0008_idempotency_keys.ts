import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// Idempotency keys (SPEC §1, `Idempotency-Key`): one row per user and key, written in the transaction of the write it
// belongs to, holding the answer a retry gets again. A request that failed or crashed left no row (its transaction
// rolled back), so its retry runs. Rows live 24 hours; the worker deletes expired ones in bounded batches
// (docs/decisions.md, Fail fast and never twice).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table idempotency_keys (
      user_id uuid not null references users (id) on delete cascade,
      key text not null,
      -- SHA-256 of the request (resource, action, id, data): the same key with another request is refused.
      fingerprint text not null,
      status smallint not null,
      -- json, not jsonb: a replay answers the body as it was first written, key order included.
      body json not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      primary key (user_id, key)
    )`.execute(db);
  // The purge of expired keys.
  await sql`create index idempotency_keys_expires_idx on idempotency_keys (expires_at)`.execute(db);

  // The first step of a keyed call, in one round trip: the transaction-scoped advisory lock on (user, key), taken
  // without waiting (not got: another request with the key is running), then the key's live row, read by a statement
  // of its own (a volatile function's statements each take a fresh snapshot), so a first request that committed
  // while this one asked for the lock is seen.
  await sql`
    create function idempotency_claim(p_user uuid, p_key text)
    returns table (locked boolean, fingerprint text, status smallint, body json)
    language plpgsql volatile as $$
    begin
      if not pg_try_advisory_xact_lock(hashtextextended(p_user::text || ':' || p_key, 0)) then
        return query select false, null::text, null::smallint, null::json;
        return;
      end if;
      return query
        select true, k.fingerprint, k.status, k.body from idempotency_keys k
        where k.user_id = p_user and k.key = p_key and k.expires_at > now();
      if not found then
        return query select true, null::text, null::smallint, null::json;
      end if;
    end $$`.execute(db);
}
