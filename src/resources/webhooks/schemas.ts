import { z } from 'zod';
import { deliveryStatuses, webhookEventTypes } from '../../db/schema.ts';
import { patchOf, uuid } from '../../lib/zod.ts';
import { pageFields } from '../pagination.ts';
import { pageOutput, recordId, timestamp, withOwner } from '../outputs.ts';

/** The longest webhook URL accepted. */
export const URL_MAX = 2000;

const url = z
  .string()
  .max(URL_MAX)
  .pipe(z.url({ protocol: /^https?$/, message: 'must be an http or https URL' }))
  .describe('Where events are POSTed: http(s), at most 2000 characters, a public address (SPEC §4 webhooks).');

const events = z
  .array(z.enum(webhookEventTypes))
  .min(1, 'name at least one event type')
  .max(webhookEventTypes.length * 4)
  // Each type once, in the order given.
  .transform((types) => [...new Set(types)])
  .describe('The event types the webhook receives.');

const webhookFields = z.object({
  url,
  events,
  description: z.string().trim().max(500).nullable().describe('What the endpoint is, for you.'),
  enabled: z.boolean().describe('A disabled webhook receives nothing; a 410 Gone answer disables it.'),
});

export const createInput = webhookFields
  .partial()
  .required({ url: true })
  .extend({ events: events.default(['action_item.due']) })
  .strict();

export const updateInput = patchOf(webhookFields);

export const deliveriesInput = z.strictObject({
  status: z.enum(deliveryStatuses).optional().describe('Only deliveries in this state.'),
  ...pageFields,
});

export const redeliverInput = z.strictObject({
  delivery_id: uuid().describe('A failed delivery of this webhook.'),
});

// ---- Answers ----

export const webhookOutput = withOwner(
  z.strictObject({
    id: recordId(),
    url: z.string(),
    events: z.array(z.enum(webhookEventTypes)),
    description: z.string().nullable(),
    enabled: z.boolean(),
    created_at: timestamp(),
    updated_at: timestamp(),
  }),
).meta({ id: 'Webhook' });

export const createdWebhookOutput = webhookOutput.extend({
  secret: z.string().describe('`whsec_…`: shown once, here. Verifies the signature of every delivery (docs/webhooks.md).'),
});

export const webhookPageOutput = pageOutput(webhookOutput);

export const deliveryOutput = z.strictObject({
  id: recordId(),
  webhook_id: recordId(),
  event_id: z.string(),
  event_type: z.enum(webhookEventTypes),
  status: z.enum(deliveryStatuses),
  attempts: z.number().int().min(0),
  last_status_code: z.number().int().nullable().describe('The HTTP status of the last attempt; null if it got none.'),
  last_error: z.string().nullable(),
  next_attempt_at: timestamp().nullable(),
  delivered_at: timestamp().nullable(),
  created_at: timestamp(),
}).meta({ id: 'Delivery' });

export const deliveryPageOutput = pageOutput(deliveryOutput);
