import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { AppError } from '../../rpc/errors.ts';

type Q = Kysely<Database> | Transaction<Database>;

/**
 * Serialises writes to one active-limit scope (an agent, or an owner's agent-less goals) by locking
 * its row, and checks in the same query that the agent belongs to `ownerId`.
 */
export async function lockActiveScope(trx: Transaction<Database>, ownerId: string, agentId: string | null): Promise<void> {
  if (agentId === null) {
    await trx.selectFrom('users').select('id').where('id', '=', ownerId).forNoKeyUpdate().execute();
    return;
  }
  const agent = await trx
    .selectFrom('agents')
    .select('id')
    .where('id', '=', agentId)
    .where('owner_id', '=', ownerId)
    .forNoKeyUpdate()
    .executeTakeFirst();
  if (!agent) throw new AppError({ code: 'AGENT_NOT_FOUND' });
}

/**
 * Keeps at most `limit` active goals in a scope: `keepId` (the goal just created or activated) stays,
 * then the newest others; the oldest are set `inactive`. Call with the scope locked. Returns the ids
 * it deactivated.
 */
export async function enforceActiveLimit(
  trx: Transaction<Database>,
  options: { ownerId: string; agentId: string | null; keepId: string | null; limit: number },
): Promise<string[]> {
  if (options.limit <= 0) return [];
  const rows = await trx
    .updateTable('goals')
    .set({ status: 'inactive', updated_at: sql`date_trunc('milliseconds', now())` })
    // Status and scope are checked again on the row itself: a goal completed or moved to another
    // agent concurrently, after the subquery chose it, is re-read once its row lock is released and
    // must not be overwritten to inactive.
    .where('status', '=', 'active')
    .where((eb) => (options.agentId === null ? eb('agent_id', 'is', null) : eb('agent_id', '=', options.agentId)))
    .where(
      'id',
      'in',
      trx
        .selectFrom('goals')
        .select('id')
        .where('owner_id', '=', options.ownerId)
        .where((eb) =>
          options.agentId === null ? eb('agent_id', 'is', null) : eb('agent_id', '=', options.agentId),
        )
        .where('status', '=', 'active')
        .$if(options.keepId !== null, (qb) => qb.where('id', '!=', options.keepId!))
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .offset(options.keepId !== null ? options.limit - 1 : options.limit),
    )
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export type { Q };
