import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { z } from 'zod';
import { jsonb } from '../../db/json.ts';
import type { GoalRow } from '../../db/schema.ts';
import { nowMs, whereAll } from '../../db/sql.ts';
import { defineAction } from '../../rpc/action.ts';
import { AppError } from '../../rpc/errors.ts';
import { decodeCursor, isoDateTime, onlyIfValid, likePattern, PAGE_ROWS_MAX, pageFields, splitPage, uuid, withOwners, type Owner, type Page } from '../shared.ts';
import { generate } from './generate.ts';
import { checkMetric, computeProgress, goalListColumnsSql, presentGoal as present, serializeGoal, type Goal, type GoalListRow } from './model.ts';
import { enforceActiveLimit, findGoal, goalNotFound, lockActiveScope, syncItemsWithRoadmap } from './queries.ts';
import { completeRoadmap } from './roadmap-graph.ts';
import { roadmapActions } from './roadmap.ts';
import { goalCreateInput, goalFields, goalStatuses } from './schemas.ts';

export const list = defineAction({
  summary: 'List goals',
  description: 'Newest first. `count` is the number of goals matching the filter. Goals in a list carry no `roadmap`.',
  readOnly: true,
  input: z.strictObject({
    agentId: uuid().optional().describe('Only goals of this agent.'),
    status: z.enum(goalStatuses).optional(),
    search: z.string().min(1).max(200).optional().describe('Case-insensitive match on name or description.'),
    ...pageFields,
  }),
  handler: async ({ input, ctx }): Promise<Page<Goal & { owner?: Owner }>> => {
    const after = decodeCursor(input.cursor);
    // Written as `sql` templates rather than built: this is the hottest list, and Kysely's builder and compiler
    // cost ~40 µs of the ~250 µs a `goals.list` cost the server (`npm run bench -- --cpu-prof`).
    const ownerId = ctx.scope.ownerId;
    const scope = [
      ...(ownerId !== null ? [sql`owner_id = ${ownerId}`] : []),
      ...(input.agentId !== undefined ? [sql`agent_id = ${input.agentId}`] : []),
      ...(input.status !== undefined ? [sql`status = ${input.status}`] : []),
    ];
    const pattern = input.search !== undefined ? likePattern(input.search) : undefined;
    const matching = pattern === undefined ? scope : [...scope, sql`(name ilike ${pattern} or description ilike ${pattern})`];
    // The page and the count of every match in one statement (one round trip, not two): the count is an
    // uncorrelated subquery, which Postgres runs once. Without `search` it is a sum over goal_counts (kept by
    // triggers, db/0004): a few rows, however many goals the owner has. A page without rows carries no count;
    // it is 0 then, unless a cursor paged past the end, which asks for the count alone.
    const count =
      pattern === undefined
        ? sql`select coalesce(sum(n), 0) from goal_counts ${whereAll(scope)}`
        : sql`select count(*) from goals ${whereAll(matching)}`;
    const newer = after === undefined ? matching : [...matching, sql`(created_at, id) < (${after.createdAt}, ${after.id})`];
    // The requested page of at most PAGE_ROWS_MAX newest rows (why two limits: PAGE_ROWS_MAX).
    const { rows } = await sql<GoalListRow & { total: string }>`
      select *, (${count}) as total
      from (select ${goalListColumnsSql} from goals ${whereAll(newer)}
            order by created_at desc, id desc limit ${sql.lit(PAGE_ROWS_MAX)}) as page
      order by created_at desc, id desc limit ${input.limit + 1}`.execute(ctx.db);
    const total =
      rows.length > 0
        ? rows[0]!.total
        : after === undefined
          ? 0
          : (await sql<{ total: string }>`select (${count}) as total`.execute(ctx.db)).rows[0]!.total;
    const page = splitPage(rows, input.limit);
    const items = await withOwners(ctx, page.rows, (r) => serializeGoal(r, { withRoadmap: false }));
    return { items, count: Number(total), next_cursor: page.next_cursor };
  },
});

export const get = defineAction({
  summary: 'Get a goal',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  handler: async ({ id, ctx }) => present(ctx, await findGoal(ctx, id)),
});

export const create = defineAction({
  summary: 'Create a goal',
  description:
    'An active goal beyond the active limit of its agent (or of the owner, for goals without an agent) deactivates the oldest active one, atomically.',
  created: true,
  input: goalCreateInput,
  handler: async ({ input, ctx }) => {
    const ownerId = ctx.scope.actingUserId;
    const metric = {
      goal_type: input.goal_type ?? 'scale',
      target_value: input.target_value ?? null,
      current_value: input.current_value ?? 0,
      min_value: input.min_value ?? 0,
      max_value: input.max_value ?? 10,
    };
    checkMetric(metric);
    const status = input.status ?? 'active';
    const agentId = input.agent_id ?? null;
    const roadmap = input.roadmap ? completeRoadmap(input.roadmap) : null;
    const goal = {
      id: randomUUID(),
      owner_id: ownerId,
      agent_id: agentId,
      name: input.name,
      description: input.description ?? null,
      status,
      priority: input.priority ?? null,
      lead_fields: input.lead_fields ?? [],
      ...metric,
      unit: input.unit ?? null,
      target_date: input.target_date ? new Date(input.target_date).toISOString() : null,
      roadmap,
      progress: computeProgress({ ...metric, status, roadmap }),
    };
    // One round trip, no explicit transaction: the database function locks the scope, applies the active
    // limit (for an active goal) and inserts, as one statement (db/0003_goal_write_functions.ts).
    const { rows } = await sql<GoalRow>`select * from goals_create(${jsonb(goal)}, ${ctx.maxActiveGoals})`.execute(ctx.db);
    const [row] = rows;
    if (!row) throw new AppError({ code: 'AGENT_NOT_FOUND' });
    return present(ctx, row);
  },
});

export const update = defineAction({
  summary: 'Update a goal',
  description:
    'A partial update. Activating a goal (or moving an active one to another agent) applies the active limit. Send `expected_updated_at` to fail with CONFLICT instead of overwriting a newer change.',
  id: true,
  input: goalFields
    .partial()
    .extend({
      expected_updated_at: isoDateTime()
        .optional()
        .describe('Fail with CONFLICT unless the goal still has this updated_at.'),
    })
    .strict()
    .refine((data) => Object.keys(data).some((key) => key !== 'expected_updated_at'), {
      message: 'name at least one field to change',
      when: onlyIfValid,
    }),
  handler: async ({ id, input, ctx }) => {
    const { expected_updated_at: expected, ...patch } = input;
    const row = await ctx.db.transaction().execute(async (trx) => {
      // Lock the scope the goal may enter before the goal row, in the order create and agents.delete
      // take theirs: the goal row first deadlocks with a create (or an agent deletion) that holds the
      // scope and is deactivating (or un-assigning) this very goal.
      let lockedScope: string | null | undefined;
      if (patch.status === 'active' || patch.agent_id !== undefined) {
        const before = await trx
          .selectFrom('goals')
          .select(['owner_id', 'agent_id'])
          .where('id', '=', id)
          .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
          .executeTakeFirst();
        if (!before) throw goalNotFound();
        lockedScope = patch.agent_id !== undefined ? patch.agent_id : before.agent_id;
        await lockActiveScope(trx, before.owner_id, lockedScope);
      }
      const current = await trx
        .selectFrom('goals')
        .selectAll()
        .where('id', '=', id)
        .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
        // NO KEY UPDATE, not UPDATE: no key changes, and FOR UPDATE would conflict with the KEY SHARE an
        // attach takes on the goal while holding its agent — a deadlock with this update's agent lock.
        .forNoKeyUpdate()
        .executeTakeFirst();
      if (!current) throw goalNotFound();
      if (expected !== undefined && new Date(expected).getTime() !== current.updated_at.getTime()) {
        throw new AppError({
          code: 'CONFLICT',
          message: `The goal changed since ${expected}; it was updated at ${current.updated_at.toISOString()}`,
          details: { updated_at: current.updated_at.toISOString() },
        });
      }
      const next = {
        goal_type: patch.goal_type ?? current.goal_type,
        target_value: patch.target_value !== undefined ? patch.target_value : current.target_value,
        current_value: patch.current_value ?? current.current_value,
        min_value: patch.min_value ?? current.min_value,
        max_value: patch.max_value ?? current.max_value,
        status: patch.status ?? current.status,
        agent_id: patch.agent_id !== undefined ? patch.agent_id : current.agent_id,
      };
      checkMetric(next);
      const roadmap =
        patch.roadmap === undefined ? current.roadmap : patch.roadmap === null ? null : completeRoadmap(patch.roadmap);
      const entersScope =
        next.status === 'active' && (current.status !== 'active' || next.agent_id !== current.agent_id);
      if ((entersScope || (patch.agent_id !== undefined && patch.agent_id !== null)) && lockedScope !== next.agent_id) {
        await lockActiveScope(trx, current.owner_id, next.agent_id);
      }
      const updated = await trx
        .updateTable('goals')
        .set({
          ...(patch.name !== undefined && { name: patch.name }),
          ...(patch.description !== undefined && { description: patch.description }),
          ...(patch.priority !== undefined && { priority: patch.priority }),
          ...(patch.lead_fields !== undefined && { lead_fields: jsonb(patch.lead_fields) }),
          ...(patch.unit !== undefined && { unit: patch.unit }),
          ...(patch.target_date !== undefined && {
            target_date: patch.target_date === null ? null : new Date(patch.target_date),
          }),
          ...(patch.roadmap !== undefined && { roadmap: roadmap === null ? null : jsonb(roadmap) }),
          ...next,
          progress: computeProgress({ ...next, roadmap }),
          updated_at: nowMs,
        })
        .where('id', '=', id)
        .where('owner_id', '=', current.owner_id)
        .returningAll()
        .executeTakeFirstOrThrow();
      // The goal row is locked (FOR NO KEY UPDATE, as the roadmap writers lock it), so its items come after it.
      if (patch.roadmap !== undefined) {
        await syncItemsWithRoadmap(trx, { goalId: id, before: current.roadmap, after: roadmap });
      }
      if (entersScope) {
        await enforceActiveLimit(trx, {
          ownerId: current.owner_id,
          agentId: next.agent_id,
          keepId: id,
          limit: ctx.maxActiveGoals,
        });
      }
      return updated;
    });
    return present(ctx, row);
  },
});

export const remove = defineAction({
  summary: 'Delete a goal',
  description: 'Its attachments go with it; its action items stay, unlinked (`goal_id` and `roadmap_node_id` null).',
  id: true,
  input: z.strictObject({}),
  handler: async ({ id, ctx }) => {
    const row = await ctx.db
      .deleteFrom('goals')
      .where('id', '=', id)
      .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
      .returning('id')
      .executeTakeFirst();
    if (!row) throw goalNotFound();
    return { id: row.id, deleted: true as const };
  },
});

export const attach = defineAction({
  summary: 'Attach a goal to an agent',
  description:
    "Makes the goal the agent's lead-info preset. An agent has one attachment: an existing one is replaced, and its goal returned as `replaced_goal_id`. The goal and the agent must have the same owner.",
  input: z.strictObject({ goalId: uuid(), agentId: uuid() }),
  handler: async ({ input, ctx }) => {
    // One round trip: the database function locks the goal and the agent, reads the attachment it
    // replaces and writes the new one (db/0003_goal_write_functions.ts).
    const { rows } = await sql<{ agent_id: string; goal_id: string; attached_at: Date; replaced_goal_id: string | null }>`
      select * from goals_attach(${input.goalId}, ${input.agentId}, ${ctx.scope.ownerId})`.execute(ctx.db);
    const attachment = rows[0];
    if (!attachment) {
      // Which one is missing (or someone else's), for the error code only.
      await findGoal(ctx, input.goalId);
      throw new AppError({ code: 'AGENT_NOT_FOUND' });
    }
    return { ...attachment, attached_at: attachment.attached_at.toISOString() };
  },
});

export const detach = defineAction({
  summary: 'Detach a goal from an agent',
  description:
    'Idempotent: `detached: false` when nothing (or, with `goalId`, not that goal) was attached.',
  input: z.strictObject({ agentId: uuid(), goalId: uuid().optional() }),
  handler: async ({ input, ctx }) => {
    const agent = await ctx.db
      .selectFrom('agents')
      .select(['id', 'owner_id'])
      .where('id', '=', input.agentId)
      .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
      .executeTakeFirst();
    if (!agent) throw new AppError({ code: 'AGENT_NOT_FOUND' });
    if (input.goalId !== undefined) {
      await findGoal(ctx, input.goalId);
    }
    const removed = await ctx.db
      .deleteFrom('agent_goal_attachments')
      .where('agent_id', '=', input.agentId)
      .where('owner_id', '=', agent.owner_id)
      .$if(input.goalId !== undefined, (qb) => qb.where('goal_id', '=', input.goalId!))
      .returning('goal_id')
      .executeTakeFirst();
    return {
      agent_id: input.agentId,
      goal_id: removed?.goal_id ?? input.goalId ?? null,
      detached: removed !== undefined,
    };
  },
});

/** The goals resource: CRUD, attachment, the roadmap actions, and `generate` (src/resources/goals/generate.ts). */
export const goalActions = { list, get, create, update, delete: remove, attach, detach, ...roadmapActions, generate };
