import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

// The value sets of the columns: the one source of these names. The zod schemas of the API build their enums
// from them (`z.enum(goalStatuses)`), and the row types below derive from them.
export const roles = ['standard_user', 'consumer', 'internal_admin'] as const;
export const goalStatuses = ['active', 'inactive', 'completed', 'abandoned'] as const;
export const goalTypes = ['boolean', 'scale', 'numeric'] as const;
export const leadFieldTypes = ['text', 'email', 'phone', 'number', 'date', 'datetime', 'boolean', 'select', 'url'] as const;
export const webhookEventTypes = ['action_item.due', 'action_item.completed', 'goal.completed', 'webhook.test'] as const;
export const deliveryStatuses = ['pending', 'delivered', 'failed'] as const;

export type Role = (typeof roles)[number];
export type GoalStatus = (typeof goalStatuses)[number];
export type GoalType = (typeof goalTypes)[number];
export type LeadFieldType = (typeof leadFieldTypes)[number];
export type WebhookEventType = (typeof webhookEventTypes)[number];
export type DeliveryStatus = (typeof deliveryStatuses)[number];

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
  // Not declared: `remind_at`, the reminder queue's column (db/0006), kept by a trigger and read only by the worker's
  // statements (resources/webhooks/queries.ts). An item as the app reads and writes it has no such field.
}

export interface WebhooksTable {
  id: Generated<string>;
  owner_id: string;
  url: string;
  events: WebhookEventType[];
  description: string | null;
  enabled: Generated<boolean>;
  /** `whsec_…`, kept so that it can sign; answered only by create. */
  secret: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** An event as it happened: `data` is the record's row then (to_jsonb), serialized as the API's object when sent. */
export interface WebhookEventsTable {
  id: string;
  owner_id: string;
  type: WebhookEventType;
  data: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
}

/** One (event, webhook): the delivery log and the queue of its attempts (db/0006). */
export interface WebhookDeliveriesTable {
  id: Generated<string>;
  webhook_id: string;
  event_id: string;
  event_type: WebhookEventType;
  status: Generated<DeliveryStatus>;
  attempts: Generated<number>;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: Timestamp | null;
  delivered_at: Timestamp | null;
  /** Who holds the attempt in flight; only they record its outcome. */
  claim: string | null;
  created_at: Generated<Date>;
}

/** A goal's state at the end of a UTC day on which it changed (db/0007), written only by triggers on goals. */
export interface GoalHistoryTable {
  goal_id: string;
  day: ColumnType<string, string, string>;
  progress: number;
  current_value: number;
  status: GoalStatus;
}

/** The answer of a write made with an `Idempotency-Key`, kept 24 h for its retries (db/0008). */
export interface IdempotencyKeysTable {
  user_id: string;
  key: string;
  fingerprint: string;
  status: number;
  body: ColumnType<unknown, string, string>;
  created_at: Generated<Date>;
  expires_at: ColumnType<Date, Date | string, Date | string>;
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
  webhooks: WebhooksTable;
  webhook_events: WebhookEventsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  goal_history: GoalHistoryTable;
  idempotency_keys: IdempotencyKeysTable;
}

export type User = Selectable<UsersTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type GoalRow = Selectable<GoalsTable>;
export type ActionItemRow = Selectable<ActionItemsTable>;
export type AgentRow = Selectable<AgentsTable>;
export type WebhookRow = Selectable<WebhooksTable>;
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
