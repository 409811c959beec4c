import type { ActionItemRow, DeliveryRow, GoalRow, WebhookEventType, WebhookRow } from '../../db/schema.ts';
import { serializeActionItem } from '../action-items/model.ts';
import { serializeListedGoal } from '../goals/model.ts';
import { iso } from '../owners.ts';

/** The webhook object of the API: never its secret (create alone answers it, beside this). */
export function serializeWebhook(row: WebhookRow) {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    description: row.description,
    enabled: row.enabled,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export type Webhook = ReturnType<typeof serializeWebhook>;

/** A row of the delivery log. */
export function serializeDelivery(row: DeliveryRow) {
  return {
    id: row.id,
    webhook_id: row.webhook_id,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.status,
    attempts: row.attempts,
    last_status_code: row.last_status_code,
    last_error: row.last_error,
    next_attempt_at: iso(row.next_attempt_at as Date | null),
    delivered_at: iso(row.delivered_at as Date | null),
    created_at: row.created_at.toISOString(),
  };
}

export type Delivery = ReturnType<typeof serializeDelivery>;

/** An event as stored: `data` is the record's row as Postgres wrote it out (to_jsonb), for the records' own events. */
export interface StoredEvent {
  id: string;
  type: WebhookEventType;
  created_at: Date;
  data: Record<string, unknown>;
}

/**
 * The body every attempt of an event sends, the same bytes each time: `{id, type, created_at, data}`, with `data` the
 * API's own object for the record (the item, the goal without its roadmap) as it was when the event happened.
 */
export function eventBody(event: StoredEvent): string {
  return JSON.stringify({ id: event.id, type: event.type, created_at: event.created_at.toISOString(), data: eventData(event) });
}

function eventData(event: StoredEvent): object {
  switch (event.type) {
    case 'action_item.due':
    case 'action_item.completed':
      return serializeActionItem(revive<ActionItemRow>(event.data, ['due_at', 'completed_at', 'created_at', 'updated_at']));
    case 'goal.completed':
      return serializeListedGoal(revive<GoalRow>(event.data, ['target_date', 'created_at', 'updated_at']));
    case 'webhook.test':
      return event.data;
  }
}

/** A row written out by to_jsonb, with its timestamps read back as dates. */
function revive<R>(json: Record<string, unknown>, timestamps: (keyof R & string)[]): R {
  const row: Record<string, unknown> = { ...json };
  for (const column of timestamps) {
    const value = row[column];
    row[column] = typeof value === 'string' ? new Date(value) : null;
  }
  return row as R;
}
