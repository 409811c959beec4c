import { z } from 'zod';
import { patchOf } from '../../lib/zod.ts';
import { defineAction } from '../../rpc/action.ts';
import { found } from '../errors.ts';
import { enforceActiveLimit, lockActiveScope } from '../goals/active-limit.ts';
import { deletedOutput, pageOutput, recordId, timestamp, withOwner } from '../outputs.ts';
import { present, presentAll } from '../owners.ts';
import { likePattern, pageFields, pageOf, pageRequest } from '../pagination.ts';
import { serializeAgent } from './model.ts';
import { agentOwner, deleteAgent, findAgent, insertAgent, listAgents, updateAgent } from './queries.ts';

const agentFields = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().max(5000).nullable(),
  is_active: z.boolean(),
});

const agentOutput = withOwner(
  z.strictObject({
    id: recordId(),
    name: z.string(),
    description: z.string().nullable(),
    is_active: z.boolean(),
    attached_goal_id: recordId().nullable().describe('The goal attached as its lead-info preset (`goals.attach`).'),
    created_at: timestamp(),
    updated_at: timestamp(),
  }),
).meta({ id: 'Agent' });
const agentPageOutput = pageOutput(agentOutput);

export const list = defineAction({
  summary: 'List agents',
  readOnly: true,
  input: z.strictObject({
    search: z.string().min(1).max(200).optional().describe('Case-insensitive match on name or description.'),
    ...pageFields,
  }),
  output: agentPageOutput,
  handler: async ({ input, ctx }) => {
    const listed = await listAgents(ctx.db, { ownerId: ctx.scope.ownerId, pattern: input.search && likePattern(input.search) }, pageRequest(input));
    return pageOf(listed, input.limit, (rows) => presentAll(ctx, rows, serializeAgent));
  },
});

export const get = defineAction({
  summary: 'Get an agent',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  output: agentOutput,
  handler: async ({ id, ctx }) => {
    return present(ctx, found(await findAgent(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Agent'), serializeAgent);
  },
});

export const create = defineAction({
  summary: 'Create an agent',
  created: true,
  input: agentFields.partial().required({ name: true }).strict(),
  output: agentOutput,
  example: { name: 'Sales assistant', description: 'Answers inbound calls' },
  handler: async ({ input, ctx }) => {
    const row = await insertAgent(ctx.db, {
      owner_id: ctx.scope.actingUserId,
      name: input.name,
      description: input.description ?? null,
      is_active: input.is_active ?? true,
    });
    return present(ctx, { ...row, attached_goal_id: null }, serializeAgent);
  },
});

export const update = defineAction({
  summary: 'Update an agent',
  id: true,
  input: patchOf(agentFields),
  output: agentOutput,
  example: { is_active: false },
  handler: async ({ id, input, ctx }) => {
    return present(ctx, found(await updateAgent(ctx.db, { ownerId: ctx.scope.ownerId, id }, input), 'Agent'), serializeAgent);
  },
});

export const remove = defineAction({
  summary: 'Delete an agent',
  description: "Its goals keep living with `agent_id: null` (joining the owner's agent-less goals, so the active limit applies there); its attachment goes.",
  id: true,
  input: z.strictObject({}),
  output: deletedOutput,
  handler: async ({ id, ctx }) => {
    return ctx.db.transaction().execute(async (trx) => {
      const agent = found(await agentOwner(trx, { ownerId: ctx.scope.ownerId, id }), 'Agent');
      // The goals join the owner's agent-less scope: lock it first (goals/active-limit.ts), then apply the limit.
      await lockActiveScope(trx, { ownerId: agent.owner_id, agentId: null });
      const deleted = found(await deleteAgent(trx, { ownerId: agent.owner_id, id }), 'Agent');
      await enforceActiveLimit(trx, { ownerId: agent.owner_id, agentId: null, keepId: null, limit: ctx.maxActiveGoals });
      return { id: deleted, deleted: true as const };
    });
  },
});

export const agentActions = { list, get, create, update, delete: remove };
