import { sql, type Kysely } from 'kysely';
import { displayPrefix, generateApiKey, hashApiKey } from '../../auth/keys.ts';
import type { Db } from '../../db/client.ts';
import type { ApiKeyRow, Database } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import { AppError } from '../../rpc/errors.ts';
import { newestPage, type CursorPosition } from '../pagination.ts';

// Every statement on API keys. Keys belong to one user: no admin mode across accounts here.

export const MAX_ACTIVE_KEYS = 5;

/**
 * Creates a key for `userId`, refusing a sixth active one with CONFLICT. The user row is locked so
 * concurrent creates cannot pass the limit together. Returns the row and the key, shown only now.
 */
export async function createApiKey(db: Kysely<Database>, options: { userId: string; name: string }) {
  // Joins the caller's transaction when there is one (a user created with their first key).
  const inTransaction = <T>(work: (trx: Kysely<Database>) => Promise<T>) =>
    db.isTransaction ? work(db) : db.transaction().execute(work);
  return inTransaction(async (trx) => {
    const user = await trx.selectFrom('users').select('id').where('id', '=', options.userId).forNoKeyUpdate().executeTakeFirst();
    if (!user) throw new AppError({ code: 'NOT_FOUND', message: 'User not found' });
    const { active } = await trx
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<string>().as('active'))
      .where('user_id', '=', options.userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow();
    if (Number(active) >= MAX_ACTIVE_KEYS) {
      throw new AppError({
        code: 'CONFLICT',
        message: `A user may hold at most ${MAX_ACTIVE_KEYS} active API keys; revoke one first`,
      });
    }
    const key = generateApiKey();
    const row = await trx
      .insertInto('api_keys')
      .values({ user_id: options.userId, name: options.name, prefix: displayPrefix(key), key_hash: hashApiKey(key) })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { row, key };
  });
}

/** A page of the user's keys (`limit + 1` rows, newest first, after the cursor, revoked ones included), and the count. */
export async function listApiKeys(
  db: Db,
  userId: string,
  page: { after: CursorPosition | undefined; limit: number },
): Promise<{ rows: ApiKeyRow[]; total: number }> {
  const owned = db.selectFrom('api_keys').where('user_id', '=', userId);
  const [rows, total] = await Promise.all([
    newestPage(db, owned.selectAll(), page),
    owned.select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(total.count) };
}

/** Revokes the key `id` of `userId` (a revoked one keeps its `revoked_at`); answers it, or nothing. */
export function revokeApiKey(db: Db, target: { userId: string; id: string }): Promise<ApiKeyRow | undefined> {
  return db
    .updateTable('api_keys')
    .set({ revoked_at: sql`coalesce(revoked_at, ${nowMs})` })
    .where('id', '=', target.id)
    .where('user_id', '=', target.userId)
    .returningAll()
    .executeTakeFirst();
}

/** The key `id` of any user, revoked or not (the CLI's `keys revoke`), or nothing. */
export function findApiKey(db: Db, id: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
}
