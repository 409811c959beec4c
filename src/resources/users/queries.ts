import type { Kysely } from 'kysely';
import type { Database, Role, User } from '../../db/schema.ts';
import { createApiKey } from '../api-keys/queries.ts';
import { AppError } from '../../rpc/errors.ts';

/**
 * Creates a user and their first API key: the CLI's `users create`, the first-run demo user, tests.
 * A second user with the same email (any case) is a CONFLICT.
 */
export async function createUserWithKey(
  db: Kysely<Database>,
  options: { email: string; name?: string | null; role?: Role; keyName?: string },
): Promise<{ user: User; key: string }> {
  // One transaction: a user is never left without the key that was to be printed for them.
  return db.transaction().execute(async (trx) => insertUserWithKey(trx, options));
}

async function insertUserWithKey(
  db: Kysely<Database>,
  options: { email: string; name?: string | null; role?: Role; keyName?: string },
): Promise<{ user: User; key: string }> {
  const existing = await db
    .selectFrom('users')
    .select('id')
    .where((eb) => eb(eb.fn('lower', ['email']), '=', options.email.toLowerCase()))
    .executeTakeFirst();
  if (existing) throw new AppError({ code: 'CONFLICT', message: `A user with email ${options.email} exists` });
  const user = await db
    .insertInto('users')
    .values({ email: options.email, name: options.name ?? null, role: options.role ?? 'standard_user' })
    .returningAll()
    .executeTakeFirstOrThrow()
    .catch((error: unknown) => {
      // A concurrent create with the same email passed the check above; the unique index caught it.
      if ((error as { code?: string }).code === '23505') {
        throw new AppError({ code: 'CONFLICT', message: `A user with email ${options.email} exists` });
      }
      throw error;
    });
  const { key } = await createApiKey(db, { userId: user.id, name: options.keyName ?? 'default' });
  return { user, key };
}

/** The user with this email (any case), or nothing: the CLI's `keys` commands name users by email. */
export function findUserByEmail(db: Kysely<Database>, email: string): Promise<User | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
}

/** Every user, oldest first, with how many active API keys each holds: the CLI's `users list`. */
export function listUsers(db: Kysely<Database>): Promise<(User & { active_keys: number })[]> {
  return db
    .selectFrom('users')
    .selectAll('users')
    .select((eb) =>
      eb
        .selectFrom('api_keys')
        .select(eb.fn.countAll<number>().as('n'))
        .whereRef('api_keys.user_id', '=', 'users.id')
        .where('api_keys.revoked_at', 'is', null)
        .$castTo<number>()
        .as('active_keys'),
    )
    .orderBy('users.created_at')
    .orderBy('users.id')
    .execute()
    .then((rows) => rows.map((row) => ({ ...row, active_keys: Number(row.active_keys) })));
}
