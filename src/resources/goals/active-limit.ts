import { sql, type Transaction } from 'kysely';
import type { Database, GoalStatus } from '../../db/schema.ts';
import { agentNotFound } from '../errors.ts';

// The active limit: an agent pursues at most MAX_ACTIVE_GOALS active goals (goals without an agent count per
// owner); one more deactivates the oldest active one in the same scope, atomically.
//
// The rule lives in the database, in one language, for every writer (db/0003): `goals_lock_active_scope` serialises
// the writes to one scope by locking its row (the agent, or the owner for agent-less goals), and
// `goals_enforce_active_limit` deactivates the oldest beyond the limit. `goals.create` runs both inside
// `goals_create` (one round trip: docs/performance.md); `goals.update` and `agents.delete` call them through this
// module. TypeScript only decides whether a write makes a goal enter a scope. A writer locks the scope before any
// goal row (the order `goals_create` takes), so a create deactivating a goal and an update of that goal never
// deadlock.

type Trx = Transaction<Database>;

/**
 * Locks an active-limit scope (an agent, or the owner's agent-less goals) and checks in the same statement that the
 * agent is the owner's: AGENT_NOT_FOUND otherwise.
 */
export async function lockActiveScope(trx: Trx, scope: { ownerId: string; agentId: string | null }): Promise<void> {
  const { rows } = await sql<{ locked: boolean }>`
    select goals_lock_active_scope(${scope.ownerId}, ${scope.agentId}) as locked`.execute(trx);
  if (scope.agentId !== null && !rows[0]?.locked) throw agentNotFound();
}

/**
 * Keeps at most `limit` active goals in a locked scope: `keepId` (the goal just activated) stays, then the newest
 * others; the oldest are set `inactive`. Answers the ids it deactivated. A limit of 0 is no limit.
 */
export async function enforceActiveLimit(
  trx: Trx,
  options: { ownerId: string; agentId: string | null; keepId: string | null; limit: number },
): Promise<string[]> {
  if (options.limit <= 0) return [];
  const { ownerId, agentId, keepId, limit } = options;
  const { rows } = await sql<{ id: string }>`
    select id from goals_enforce_active_limit(${ownerId}, ${agentId}, ${keepId}, ${limit})`.execute(trx);
  return rows.map((r) => r.id);
}

/** Whether a goal going from `before` to `after` enters an active-limit scope: it becomes active, or moves while active. */
export function entersActiveScope(
  before: { status: GoalStatus; agent_id: string | null },
  after: { status: GoalStatus; agent_id: string | null },
): boolean {
  return after.status === 'active' && (before.status !== 'active' || after.agent_id !== before.agent_id);
}
