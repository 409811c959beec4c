import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

// The value sets of the columns: the one source of these names. The zod schemas of the API build their enums
// from them (`z.enum(goalStatuses)`), and the row types below derive from them.
export const roles = ['standard_user', 'consumer', 'internal_admin'] as const;
export const goalStatuses = ['active', 'inactive', 'completed', 'abandoned'] as const;
export const goalTypes = ['boolean', 'scale', 'numeric'] as const;
export const leadFieldTypes = ['text', 'email', 'phone', 'number', 'date', 'datetime', 'boolean', 'select', 'url'] as const;

export type Role = (typeof roles)[number];
export type GoalStatus = (typeof goalStatuses)[number];
export type GoalType = (typeof goalTypes)[number];
export type LeadFieldType = (typeof leadFieldTypes)[number];

/**
 * A lead field as stored in `goals.lead_fields`. The API's `leadField` schema (resources/goals/schemas.ts) is
 * checked against this type at compile time, so the two cannot drift.
 */
export interface LeadField {
  key: string;
  label: string;
  type: LeadFieldType;
  required: boolean;
  description?: string;
  options?: string[];
}

export interface RoadmapNode {
  id: string;
  label: string;
  completed: boolean;
  position: { x: number; y: number };
}
export interface Roadmap {
  nodes: RoadmapNode[];
  edges: { id: string; source: string; target: string }[];
}

type Json<T> = ColumnType<T, T, T>;

export interface UsersTable {
  id: Generated<string>;
  email: string;
  name: string | null;
  role: Generated<Role>;
  created_at: Generated<Date>;
}

export interface ApiKeysTable {
  id: Generated<string>;
  user_id: string;
  name: string;
  prefix: string;
  key_hash: string;
  created_at: Generated<Date>;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface AgentsTable {
  id: Generated<string>;
  owner_id: string;
  name: string;
  description: string | null;
  is_active: Generated<boolean>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface GoalsTable {
  id: Generated<string>;
  owner_id: string;
  agent_id: string | null;
  name: string;
  description: string | null;
  status: Generated<GoalStatus>;
  priority: number | null;
  lead_fields: Json<LeadField[]>;
  goal_type: Generated<GoalType>;
  target_value: number | null;
  current_value: Generated<number>;
  min_value: Generated<number>;
  max_value: Generated<number>;
  unit: string | null;
  target_date: Date | null;
  roadmap: Json<Roadmap | null> | null;
  progress: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface AgentGoalAttachmentsTable {
  agent_id: string;
  goal_id: string;
  owner_id: string;
  attached_at: Generated<Date>;
}

/**
 * Deltas of how many goals an owner has under one agent (null: none) and status: a key's count is the sum of its
 * rows. Written only by triggers on goals (db/0004).
 */
export interface GoalCountsTable {
  owner_id: string;
  agent_id: string | null;
  status: GoalStatus;
  n: ColumnType<number, never, never>;
}

/**
 * Deltas of how many action items an owner has on one goal (null: none) and completion state: a key's count is
 * the sum of its rows. Written only by triggers on action_items (db/0005).
 */
export interface ActionItemCountsTable {
  owner_id: string;
  goal_id: string | null;
  completed: boolean;
  n: ColumnType<number, never, never>;
}

export interface ActionItemsTable {
  id: Generated<string>;
  owner_id: string;
  description: string;
  completed: Generated<boolean>;
  due_at: Timestamp | null;
  /** Set exactly while `completed` (a check constraint). */
  completed_at: Timestamp | null;
  conversation_id: string | null;
  goal_id: string | null;
  /** A node id of the goal's roadmap; null whenever `goal_id` is (a trigger and a check constraint). */
  roadmap_node_id: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface Database {
  users: UsersTable;
  api_keys: ApiKeysTable;
  agents: AgentsTable;
  goals: GoalsTable;
  agent_goal_attachments: AgentGoalAttachmentsTable;
  goal_counts: GoalCountsTable;
  action_items: ActionItemsTable;
  action_item_counts: ActionItemCountsTable;
}

export type User = Selectable<UsersTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type GoalRow = Selectable<GoalsTable>;
export type ActionItemRow = Selectable<ActionItemsTable>;
export type AgentRow = Selectable<AgentsTable>;
