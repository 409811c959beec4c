import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and raw SQL; never imports app code.
//
// Rate-limit leases (issue 22, src/auth/rate-limit-leases.ts): a row of `rate_limits` keeps what it kept for
// rate-limiter-flexible — `points` handed out in the window ending at `expire` (ms) — and now also `granted`, what
// the leasing statement reads back as the units it handed out (an upsert's RETURNING sees only the new row; see
// postgresLeaseStore for how the column is used). A default, so that processes of the version before, writing `points` and `expire` as
// they did, keep working beside new ones during a rolling upgrade.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table rate_limits add column if not exists granted integer not null default 0`.execute(db);
}
