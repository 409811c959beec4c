import { z } from 'zod';
import { nowMs } from '../../db/sql.ts';
import type { Context } from '../../rpc/context.ts';
import { defineAction } from '../../rpc/action.ts';
import { AppError } from '../../rpc/errors.ts';
import { enforceActiveLimit, lockActiveScope } from '../goals/queries.ts';
import { decodeCursor, onlyIfValid, likePattern, newestPage, pageFields, splitPage, withOwners, type Owner, type Page } from '../shared.ts';

const agentFields = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().max(5000).nullable(),
  is_active: z.boolean(),
});

interface AgentRecord {
  id: string;
  owner_id: string;
  name: string;
  description: string | null;
  is_active: boolean;
  attached_goal_id: string | null;
  created_at: Date;
  updated_at: Date;
}

function serializeAgent(row: AgentRecord) {
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

export type Agent = ReturnType<typeof serializeAgent> & { owner?: Owner };

/** Agents with their attachment, limited to the scope. */
function selectAgents(ctx: Context) {
  return ctx.db
    .selectFrom('agents')
    .leftJoin('agent_goal_attachments as a', 'a.agent_id', 'agents.id')
    .selectAll('agents')
    .select('a.goal_id as attached_goal_id')
    .$if(ctx.scope.ownerId !== null, (qb) => qb.where('agents.owner_id', '=', ctx.scope.ownerId!));
}

async function present(ctx: Context, row: AgentRecord): Promise<Agent> {
  const [agent] = await withOwners(ctx, [row], serializeAgent);
  return agent!;
}

const notFound = () => new AppError({ code: 'NOT_FOUND', message: 'Agent not found or you have no access to it' });

export const list = defineAction({
  summary: 'List agents',
  readOnly: true,
  input: z.strictObject({
    search: z.string().min(1).max(200).optional().describe('Case-insensitive match on name or description.'),
    ...pageFields,
  }),
  handler: async ({ input, ctx }): Promise<Page<Agent>> => {
    const after = decodeCursor(input.cursor);
    const search = input.search !== undefined ? likePattern(input.search) : undefined;
    const filtered = ctx.db
      .selectFrom('agents')
      .$if(ctx.scope.ownerId !== null, (qb) => qb.where('agents.owner_id', '=', ctx.scope.ownerId!))
      .$if(search !== undefined, (qb) =>
        qb.where((eb) => eb.or([eb('agents.name', 'ilike', search!), eb('agents.description', 'ilike', search!)])),
      );
    const [rows, total] = await Promise.all([
      newestPage(
        ctx.db,
        filtered
          .leftJoin('agent_goal_attachments as a', 'a.agent_id', 'agents.id')
          .selectAll('agents')
          .select('a.goal_id as attached_goal_id'),
        { after, limit: input.limit },
      ),
      filtered.select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow(),
    ]);
    const page = splitPage(rows, input.limit);
    return { items: await withOwners(ctx, page.rows, serializeAgent), count: Number(total.count), next_cursor: page.next_cursor };
  },
});

export const get = defineAction({
  summary: 'Get an agent',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  handler: async ({ id, ctx }) => {
    const row = await selectAgents(ctx).where('agents.id', '=', id).executeTakeFirst();
    if (!row) throw notFound();
    return present(ctx, row);
  },
});

export const create = defineAction({
  summary: 'Create an agent',
  created: true,
  input: agentFields.partial().required({ name: true }).strict(),
  handler: async ({ input, ctx }) => {
    const row = await ctx.db
      .insertInto('agents')
      .values({
        owner_id: ctx.scope.actingUserId,
        name: input.name,
        description: input.description ?? null,
        is_active: input.is_active ?? true,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return present(ctx, { ...row, attached_goal_id: null });
  },
});

export const update = defineAction({
  summary: 'Update an agent',
  id: true,
  input: agentFields
    .partial()
    .strict()
    .refine((data) => Object.keys(data).length > 0, { message: 'name at least one field to change', when: onlyIfValid }),
  handler: async ({ id, input, ctx }) => {
    const row = await ctx.db
      .updateTable('agents')
      .set({ ...input, updated_at: nowMs })
      .where('id', '=', id)
      .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
      .returningAll()
      .returning((eb) =>
        eb
          .selectFrom('agent_goal_attachments')
          .select('goal_id')
          .whereRef('agent_goal_attachments.agent_id', '=', 'agents.id')
          .as('attached_goal_id'),
      )
      .executeTakeFirst();
    if (!row) throw notFound();
    return present(ctx, row);
  },
});

export const remove = defineAction({
  summary: 'Delete an agent',
  description:
    "Its goals keep living with `agent_id: null` (joining the owner's agent-less goals, so the active limit applies there); its attachment goes.",
  id: true,
  input: z.strictObject({}),
  handler: async ({ id, ctx }) => {
    return ctx.db.transaction().execute(async (trx) => {
      const agent = await trx
        .selectFrom('agents')
        .select('owner_id')
        .where('id', '=', id)
        .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
        .executeTakeFirst();
      if (!agent) throw notFound();
      await lockActiveScope(trx, agent.owner_id, null);
      const row = await trx
        .deleteFrom('agents')
        .where('id', '=', id)
        .where('owner_id', '=', agent.owner_id)
        .returning('id')
        .executeTakeFirst();
      if (!row) throw notFound();
      await enforceActiveLimit(trx, { ownerId: agent.owner_id, agentId: null, keepId: null, limit: ctx.maxActiveGoals });
      return { id: row.id, deleted: true as const };
    });
  },
});

export const agentActions = { list, get, create, update, delete: remove };
