import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { hostOf, nonPublicHost } from '../../lib/public-address.ts';
import { defineAction } from '../../rpc/action.ts';
import { deletedOutput } from '../outputs.ts';
import type { Context } from '../../rpc/context.ts';
import { AppError } from '../../rpc/errors.ts';
import { found } from '../errors.ts';
import { present, presentAll } from '../owners.ts';
import { pageFields, pageOf, pageRequest } from '../pagination.ts';
import { attemptDelivery, leaseMs } from './delivery.ts';
import { serializeDelivery, serializeWebhook } from './model.ts';
import {
  claimFailedDelivery,
  createTestDelivery,
  deleteWebhook,
  findDelivery,
  findWebhook,
  insertWebhook,
  listDeliveries,
  listWebhooks,
  MAX_WEBHOOKS,
  updateWebhook,
} from './queries.ts';
import {
  createdWebhookOutput, createInput, deliveriesInput, deliveryOutput, deliveryPageOutput, redeliverInput, updateInput, webhookOutput, webhookPageOutput,
} from './schemas.ts';

/** `whsec_` and the base64 of 24 random bytes: the form Standard Webhooks libraries take as a secret. */
const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/**
 * The SSRF guard at create and update: a URL whose host is, or resolves to, an address that is not public is
 * VALIDATION_ERROR at `data.url` (unless WEBHOOK_ALLOW_PRIVATE_URLS). Each delivery checks again (delivery.ts).
 */
async function checkUrl(ctx: Context, url: string | undefined): Promise<void> {
  if (url === undefined || ctx.services.webhooks.allowPrivateUrls) return;
  const reason = await nonPublicHost(hostOf(new URL(url)));
  if (reason) {
    const message = `must be a public address: ${reason}`;
    throw new AppError({ code: 'VALIDATION_ERROR', message: `data.url: ${message}`, details: [{ path: ['data', 'url'], message, type: 'custom' }] });
  }
}

export const list = defineAction({
  summary: 'List webhooks',
  readOnly: true,
  input: z.strictObject({ ...pageFields }),
  output: webhookPageOutput,
  handler: async ({ input, ctx }) => {
    return pageOf(await listWebhooks(ctx.db, ctx.scope.ownerId, pageRequest(input)), input.limit, (rows) => presentAll(ctx, rows, serializeWebhook));
  },
});

export const get = defineAction({
  summary: 'Get a webhook',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  output: webhookOutput,
  handler: async ({ id, ctx }) => {
    return present(ctx, found(await findWebhook(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Webhook'), serializeWebhook);
  },
});

export const create = defineAction({
  summary: 'Create a webhook',
  description:
    `The answer alone holds \`secret\` (\`whsec_…\`): keep it to verify signatures (docs/webhooks.md). At most ${MAX_WEBHOOKS} webhooks per user ` +
    '(CONFLICT beyond). The URL must be http(s) and resolve to a public address.',
  created: true,
  input: createInput,
  output: createdWebhookOutput,
  example: { url: 'https://example.com/goalpost-events', events: ['action_item.due', 'goal.completed'] },
  handler: async ({ input, ctx }) => {
    await checkUrl(ctx, input.url);
    const row = await insertWebhook(ctx.db, {
      owner_id: ctx.scope.actingUserId,
      url: input.url,
      events: input.events,
      description: input.description ?? null,
      enabled: input.enabled ?? true,
      secret: newSecret(),
    });
    const webhook = await present(ctx, row, serializeWebhook);
    return { ...webhook, secret: row.secret };
  },
});

export const update = defineAction({
  summary: 'Update a webhook',
  description: 'A partial update of `url`, `events`, `description`, `enabled`. Re-enable a webhook that a 410 Gone disabled here.',
  id: true,
  input: updateInput,
  output: webhookOutput,
  example: { enabled: false },
  handler: async ({ id, input, ctx }) => {
    await checkUrl(ctx, input.url);
    return present(ctx, found(await updateWebhook(ctx.db, { ownerId: ctx.scope.ownerId, id }, input), 'Webhook'), serializeWebhook);
  },
});

export const remove = defineAction({
  summary: 'Delete a webhook',
  description: 'Its delivery log goes with it; deliveries not yet made are dropped.',
  id: true,
  input: z.strictObject({}),
  output: deletedOutput,
  handler: async ({ id, ctx }) => {
    return { id: found(await deleteWebhook(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Webhook'), deleted: true as const };
  },
});

export const deliveries = defineAction({
  summary: "A webhook's delivery log",
  description: 'Newest first: each event sent to this webhook, its status (pending, delivered, failed), attempts and last answer.',
  id: true,
  readOnly: true,
  input: deliveriesInput,
  output: deliveryPageOutput,
  handler: async ({ id, input, ctx }) => {
    const webhook = found(await findWebhook(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Webhook');
    const listed = await listDeliveries(ctx.db, { webhookId: webhook.id, status: input.status }, pageRequest(input));
    return pageOf(listed, input.limit, (rows) => rows.map(serializeDelivery));
  },
});

export const test = defineAction({
  summary: 'Send a test event',
  description:
    'Sends one `webhook.test` event (data `{ webhook_id }`) to this webhook now, even if it is disabled or does not subscribe to ' +
    'the type, and answers its delivery after the attempt; a failed attempt is retried like any other.',
  id: true,
  input: z.strictObject({}),
  output: deliveryOutput,
  handler: async ({ id, ctx }) => {
    const webhook = found(await findWebhook(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Webhook');
    const settings = ctx.services.webhooks;
    const claimed = await createTestDelivery(ctx.db, { webhookId: webhook.id, ownerId: webhook.owner_id, leaseMs: leaseMs(settings) });
    // A test goes to the webhook as it is, enabled or not: checking an endpoint before enabling it is the point.
    const row = await attemptDelivery(ctx.db, { ...claimed, enabled: true }, settings, { retry: true });
    return serializeDelivery(row ?? found(await findDelivery(ctx.db, { webhookId: webhook.id, id: claimed.id }), 'Delivery'));
  },
});

export const redeliver = defineAction({
  summary: 'Redeliver a failed delivery',
  description:
    'One more attempt of a failed delivery of this webhook, now; answers the delivery after it (delivered, or failed again). ' +
    'CONFLICT when the delivery is not failed, or the webhook is disabled (enable it first).',
  id: true,
  input: redeliverInput,
  output: deliveryOutput,
  example: { delivery_id: '00000000-0000-4000-8000-000000000003' },
  handler: async ({ id, input, ctx }) => {
    const webhook = found(await findWebhook(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Webhook');
    if (!webhook.enabled) throw new AppError({ code: 'CONFLICT', message: 'The webhook is disabled; enable it before redelivering' });
    const settings = ctx.services.webhooks;
    const claimed = await claimFailedDelivery(ctx.db, {
      webhookId: webhook.id,
      id: input.delivery_id,
      leaseMs: leaseMs(settings),
      maxAttempts: settings.maxAttempts,
    });
    if (!claimed) {
      const delivery = found(await findDelivery(ctx.db, { webhookId: webhook.id, id: input.delivery_id }), 'Delivery');
      throw new AppError({ code: 'CONFLICT', message: `Only a failed delivery can be redelivered; this one is ${delivery.status}` });
    }
    const row = await attemptDelivery(ctx.db, claimed, settings, { retry: false });
    return serializeDelivery(row ?? found(await findDelivery(ctx.db, { webhookId: webhook.id, id: claimed.id }), 'Delivery'));
  },
});

/** The webhooks resource. */
export const webhookActions = { list, get, create, update, delete: remove, deliveries, test, redeliver };
