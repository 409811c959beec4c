import { z } from 'zod';
import type { ApiKeyRow } from '../../db/schema.ts';
import { defineAction } from '../../rpc/action.ts';
import type { Context } from '../../rpc/context.ts';
import { AppError } from '../../rpc/errors.ts';
import { found } from '../errors.ts';
import { iso } from '../owners.ts';
import { pageOutput, recordId, timestamp } from '../outputs.ts';
import { pageFields, pageOf, pageRequest } from '../pagination.ts';
import { createApiKey, listApiKeys, MAX_ACTIVE_KEYS, revokeApiKey } from './queries.ts';

function serializeApiKey(row: ApiKeyRow) {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    created_at: row.created_at.toISOString(),
    last_used_at: iso(row.last_used_at as Date | null),
    revoked_at: iso(row.revoked_at as Date | null),
  };
}

export type ApiKey = ReturnType<typeof serializeApiKey>;

const apiKeyOutput = z.strictObject({
  id: recordId(),
  name: z.string(),
  prefix: z.string().describe('The first characters of the key, to tell keys apart.'),
  created_at: timestamp(),
  last_used_at: timestamp().nullable(),
  revoked_at: timestamp().nullable(),
}).meta({ id: 'ApiKey' });
const apiKeyPageOutput = pageOutput(apiKeyOutput);
const createdApiKeyOutput = apiKeyOutput.extend({
  // Not kept for an Idempotency-Key replay (`secretFields`): a retry answers the key's record without it.
  key: z.string().optional().describe('The key itself (`gp_live_…`): shown once, here; absent from an Idempotency-Key replay.'),
});

/** API keys belong to the acting user; admin mode across accounts does not list other users' keys. */
const ownerOf = (ctx: Context) => ctx.scope.actingUserId;

/**
 * A key is a lasting credential: an admin acting as someone (`data.userId`) may list their keys but
 * not mint or revoke them — that is the user's own act (or the CLI's).
 */
function ownKeysOnly(ctx: Context) {
  if (ctx.scope.actingUserId !== ctx.principal.userId) {
    throw new AppError({ code: 'FORBIDDEN', message: "API keys are created and revoked by their owner, not as another user" });
  }
}

export const list = defineAction({
  summary: 'List API keys',
  description: 'Your keys, newest first, revoked ones included. The key itself is never shown again.',
  readOnly: true,
  input: z.strictObject({ ...pageFields }),
  output: apiKeyPageOutput,
  handler: async ({ input, ctx }) => {
    return pageOf(await listApiKeys(ctx.db, ownerOf(ctx), pageRequest(input)), input.limit, (rows) => rows.map(serializeApiKey));
  },
});

export const create = defineAction({
  summary: 'Create an API key',
  description: `The answer alone holds \`key\`: store it now. At most ${MAX_ACTIVE_KEYS} active keys per user (CONFLICT beyond).`,
  created: true,
  // Stored only as a hash: a retry with the same Idempotency-Key answers the key's record without it.
  secretFields: ['key'],
  input: z.strictObject({ name: z.string().trim().min(1).max(100).default('API key') }),
  output: createdApiKeyOutput,
  example: { name: 'CI' },
  handler: async ({ input, ctx }) => {
    ownKeysOnly(ctx);
    const { row, key } = await createApiKey(ctx.db, { userId: ownerOf(ctx), name: input.name });
    return { ...serializeApiKey(row), key };
  },
});

export const remove = defineAction({
  summary: 'Revoke an API key',
  description: 'Revokes at once in the serving process; other processes stop accepting it within KEY_CACHE_TTL_SECONDS. Revoking a revoked key changes nothing.',
  id: true,
  input: z.strictObject({}),
  output: apiKeyOutput,
  handler: async ({ id, ctx }) => {
    ownKeysOnly(ctx);
    const row = found(await revokeApiKey(ctx.db, { userId: ownerOf(ctx), id }), 'API key');
    ctx.services.forgetApiKey(row.key_hash);
    return serializeApiKey(row);
  },
});

export const apiKeyActions = { list, create, delete: remove };
