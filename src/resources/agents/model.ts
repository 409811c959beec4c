import type { AgentWithAttachment } from './queries.ts';

/** The agent object of the API. */
export function serializeAgent(row: AgentWithAttachment) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    is_active: row.is_active,
    attached_goal_id: row.attached_goal_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export type Agent = ReturnType<typeof serializeAgent>;
