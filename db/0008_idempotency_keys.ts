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
}
