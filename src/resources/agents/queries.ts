import type { Transaction } from 'kysely';
import type { Db } from '../../db/client.ts';
import type { AgentRow, Database } from '../../db/schema.ts';
import { nowMs, ownedBy } from '../../db/sql.ts';
import { newestPage, type CursorPosition } from '../pagination.ts';

// Every statement on agents. `ownerId` null is admin mode across accounts (see `ownedBy`).

/** An agent as the API answers it: with the goal attached to it. */
export type AgentWithAttachment = AgentRow & { attached_goal_id: string | null };

/** The agent `id` of the owner, with its attachment. */
export function findAgent(db: Db, target: { ownerId: string | null; id: string }): Promise<AgentWithAttachment | undefined> {
  return db
    .selectFrom('agents')
    .leftJoin('agent_goal_attachments as a', 'a.agent_id', 'agents.id')
    .selectAll('agents')
    .select('a.goal_id as attached_goal_id')
    .where('agents.id', '=', target.id)
    .$call(ownedBy(target.ownerId, 'agents.owner_id'))
    .executeTakeFirst();
}

/** A page of the owner's agents (`limit + 1` rows, newest first, after the cursor), and how many match in all. */
export async function listAgents(
  db: Db,
  filter: { ownerId: string | null; pattern?: string },
  page: { after: CursorPosition | undefined; limit: number },
): Promise<{ rows: AgentWithAttachment[]; total: number }> {
  const { pattern } = filter;
  const filtered = db
    .selectFrom('agents')
    .$call(ownedBy(filter.ownerId, 'agents.owner_id'))
    .$if(pattern !== undefined, (qb) => qb.where((eb) => eb.or([eb('agents.name', 'ilike', pattern!), eb('agents.description', 'ilike', pattern!)])));
  const withAttachment = filtered
    .leftJoin('agent_goal_attachments as a', 'a.agent_id', 'agents.id')
    .selectAll('agents')
    .select('a.goal_id as attached_goal_id');
  const [rows, total] = await Promise.all([
    newestPage(db, withAttachment, page),
    filtered.select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(total.count) };
}

export function insertAgent(db: Db, agent: { owner_id: string; name: string; description: string | null; is_active: boolean }) {
  return db.insertInto('agents').values(agent).returningAll().executeTakeFirstOrThrow();
}

/** Writes `changes` to the agent `id` of the owner; answers it with its attachment, or nothing. */
export function updateAgent(
  db: Db,
  target: { ownerId: string | null; id: string },
  changes: { name?: string; description?: string | null; is_active?: boolean },
): Promise<AgentWithAttachment | undefined> {
  return db
    .updateTable('agents')
    .set({ ...changes, updated_at: nowMs })
    .where('id', '=', target.id)
    .$call(ownedBy(target.ownerId))
    .returningAll()
    .returning((eb) =>
      eb.selectFrom('agent_goal_attachments').select('goal_id').whereRef('agent_goal_attachments.agent_id', '=', 'agents.id').as('attached_goal_id'),
    )
    .executeTakeFirst();
}

/** The agent's owner, read without a lock (to lock the owner's active-limit scope before the deletion). */
export function agentOwner(trx: Transaction<Database>, target: { ownerId: string | null; id: string }) {
  return trx.selectFrom('agents').select('owner_id').where('id', '=', target.id).$call(ownedBy(target.ownerId)).executeTakeFirst();
}

/** Deletes the agent `id` of `ownerId` (its goals keep living with `agent_id` null); answers its id. */
export async function deleteAgent(trx: Transaction<Database>, target: { ownerId: string; id: string }): Promise<string | undefined> {
  const row = await trx.deleteFrom('agents').where('id', '=', target.id).where('owner_id', '=', target.ownerId).returning('id').executeTakeFirst();
  return row?.id;
}
