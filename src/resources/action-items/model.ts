import type { ActionItemRow } from '../../db/schema.ts';
import { iso } from '../owners.ts';

/** The action item object of the API. */
export function serializeActionItem(row: ActionItemRow) {
  return {
    id: row.id,
    description: row.description,
    completed: row.completed,
    due_at: iso(row.due_at),
    completed_at: iso(row.completed_at),
    conversation_id: row.conversation_id,
    goal_id: row.goal_id,
    roadmap_node_id: row.roadmap_node_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export type ActionItem = ReturnType<typeof serializeActionItem>;
