import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { displayPrefix, generateApiKey, hashApiKey } from '../../auth/keys.ts';
import { AppError } from '../../rpc/errors.ts';

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
