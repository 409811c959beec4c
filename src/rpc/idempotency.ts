import { createHash } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Db } from '../db/client.ts';
import type { Database } from '../db/schema.ts';
import { AppError } from './errors.ts';

// SPEC §1, `Idempotency-Key`: the first request with a key runs; a retry of the same request within 24 h answers
// what the first answered, writing nothing; the key with another request is IDEMPOTENCY_KEY_REUSED; a retry while
// the first still runs is CONFLICT. The rules, the lock and the row live here; `prepare`/`run` of dispatch.ts call
// them for every transport (docs/decisions.md, Fail fast and never twice).

/** How long a key is remembered. */
export const IDEMPOTENCY_KEY_TTL_HOURS = 24;

const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

/** What a keyed call is known by: whose key, the key, and the request it was first used for. */
export interface IdempotencyClaim {
  userId: string;
  key: string;
  /** SHA-256 of the request (resource, action, id, data), keys of objects in sorted order. */
  fingerprint: string;
}

/** What a keyed call answers: the first run's answer, or the stored one again (`replayed`). */
export interface OnceResult {
  status: 200 | 201;
  data: unknown;
  replayed?: true;
}

/**
 * The claim of a write made with `Idempotency-Key: key`; VALIDATION_ERROR for a key that is not 1–255 printable ASCII
 * characters.
 *
 * @example const claim = idempotencyClaim(principal.userId, key, { resource, action, id, data });
 */
export function idempotencyClaim(userId: string, key: string, request: Record<string, unknown>): IdempotencyClaim {
  if (!KEY_PATTERN.test(key)) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'Idempotency-Key: 1 to 255 printable ASCII characters',
      details: [{ path: ['Idempotency-Key'], message: '1 to 255 printable ASCII characters', type: 'invalid_format' }],
    });
  }
  return { userId, key, fingerprint: createHash('sha256').update(canonicalJson(request)).digest('hex') };
}

/**
 * Runs `work` once per claim, in one transaction with the key's row: the key and the answer are written in the
 * transaction of the action's own writes, so a failure or a crash leaves neither. A transaction-scoped advisory lock
 * on (user, key), taken first without waiting, tells a retry that the first is still running (CONFLICT); the row,
 * read after the lock (both in `idempotency_claim`, db/0008), is the answer to replay (or IDEMPOTENCY_KEY_REUSED for
 * another request). `work` is given a
 * handle on the transaction on which `transaction()` runs inside it (handlers open their own).
 *
 * `omit` names fields of the answer never stored (a secret shown once): a replay answers without them.
 *
 * @example const result = await runOnce(db, claim, (trx) => handler(trx));
 */
export function runOnce(
  db: Db,
  claim: IdempotencyClaim,
  work: (db: Db) => Promise<OnceResult>,
  omit?: readonly string[],
): Promise<OnceResult> {
  return db.transaction().execute(async (trx) => {
    // The lock, then the row, in one round trip (db/0008 `idempotency_claim`).
    const { rows } = await sql<{ locked: boolean; fingerprint: string | null; status: number | null; body: unknown }>`
      select * from idempotency_claim(${claim.userId}, ${claim.key})`.execute(trx);
    const stored = rows[0]!;
    if (!stored.locked) {
      throw new AppError({ code: 'CONFLICT', message: 'A request with this Idempotency-Key is still running; retry once it has finished' });
    }
    if (stored.fingerprint !== null) {
      if (stored.fingerprint !== claim.fingerprint) {
        throw new AppError({
          code: 'IDEMPOTENCY_KEY_REUSED',
          message: 'This Idempotency-Key was used for a different request (resource, action, id or data); use a new key for a new request',
        });
      }
      return { status: stored.status as 200 | 201, data: stored.body, replayed: true };
    }
    const result = await work(reentrant(trx));
    const body = JSON.stringify(omit ? without(result.data, omit) : result.data) ?? 'null';
    // A template rather than Kysely's builder: a keyed write pays five round trips already, and the builder's
    // compiling showed as ~50–75 µs a keyed request in a profile (docs/performance.md, Idempotency keys). An expired row not purged yet
    // gives way; a live one cannot be here (the lock, and the claim's read).
    await sql`
      insert into idempotency_keys (user_id, key, fingerprint, status, body, expires_at)
      values (${claim.userId}, ${claim.key}, ${claim.fingerprint}, ${result.status}, ${body}::text::json,
              now() + make_interval(hours => ${IDEMPOTENCY_KEY_TTL_HOURS}))
      on conflict (user_id, key) do update
        set fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body,
            created_at = excluded.created_at, expires_at = excluded.expires_at
        where idempotency_keys.expires_at <= now()`.execute(trx);
    return result;
  });
}

/**
 * Deletes up to `batch` expired keys; answers how many it deleted (the worker calls it again while batches are full).
 *
 * @example while ((await purgeExpiredKeys(db, 5000)) === 5000);
 */
export async function purgeExpiredKeys(db: Db, batch: number): Promise<number> {
  const result = await db
    .deleteFrom('idempotency_keys')
    .where(({ eb, refTuple, selectFrom }) =>
      eb(
        refTuple('user_id', 'key'),
        'in',
        selectFrom('idempotency_keys')
          .select(['user_id', 'key'])
          .where('expires_at', '<=', sql<Date>`now()`)
          .limit(batch) as never,
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * `trx` as a `Db` whose `transaction()` runs its work in `trx` itself: a handler that opens a transaction of its own
 * joins the keyed call's (Kysely's transactions do not nest). Its failure fails the whole call, which rolls back.
 */
function reentrant(trx: Transaction<Database>): Db {
  const joined = {
    setIsolationLevel: () => joined,
    setAccessMode: () => joined,
    execute: <T>(fn: (trx: Transaction<Database>) => Promise<T>) => fn(trx),
  };
  return new Proxy(trx, {
    get(target, property) {
      if (property === 'transaction') return () => joined;
      const value = Reflect.get(target, property, target);
      // Kysely keeps its state in private fields: its methods must run on the transaction itself.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as unknown as Db;
}

/** JSON with every object's keys in sorted order: one text per request, whatever order its fields came in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object)
      .filter((key) => object[key] !== undefined)
      .sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function without(data: unknown, omit: readonly string[]): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return data;
  const copy: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const field of omit) delete copy[field];
  return copy;
}
