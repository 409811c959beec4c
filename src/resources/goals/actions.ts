import type { Transaction } from 'kysely';
import { z } from 'zod';
import type { Database } from '../../db/schema.ts';
import { defineAction } from '../../rpc/action.ts';
import { AppError } from '../../rpc/errors.ts';
import { agentNotFound, found, notFound } from '../errors.ts';
import { present, presentAll } from '../owners.ts';
import { deletedOutput } from '../outputs.ts';
import { likePattern, pageOf, pageRequest } from '../pagination.ts';
import { followRoadmap } from '../roadmaps/sync.ts';
import { enforceActiveLimit, entersActiveScope, lockActiveScope } from './active-limit.ts';
import { generate } from './generate.ts';
import { goalChanges, newGoal, serializeFullGoal, serializeListedGoal } from './model.ts';
import { findAgent } from '../agents/queries.ts';
import { attachGoal, deleteAttachment, deleteGoal, findGoal, goalHistory, goalScope, insertGoal, listGoals, lockGoal, updateGoal } from './queries.ts';
import { roadmapActions } from './roadmap.ts';
import {
  attachInput, attachOutput, detachInput, detachOutput, goalCreateInput, goalOutput, goalPageOutput, historyInput, historyOutput, listInput,
  updateInput, type GoalPatch,
} from './schemas.ts';

export const list = defineAction({
  summary: 'List goals',
  description: 'Newest first. `count` is the number of goals matching the filter. Goals in a list carry no `roadmap`.',
  readOnly: true,
  input: listInput,
  output: goalPageOutput,
  handler: async ({ input, ctx }) => {
    const filter = { ownerId: ctx.scope.ownerId, agentId: input.agentId, status: input.status, pattern: input.search && likePattern(input.search) };
    const listed = await listGoals(ctx.db, filter, pageRequest(input));
    return pageOf(listed, input.limit, (rows) => presentAll(ctx, rows, serializeListedGoal));
  },
});

export const get = defineAction({
  summary: 'Get a goal',
  id: true,
  readOnly: true,
  input: z.strictObject({}),
  output: goalOutput,
  handler: async ({ id, ctx }) => {
    return present(ctx, found(await findGoal(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Goal'), serializeFullGoal);
  },
});

export const create = defineAction({
  summary: 'Create a goal',
  description: 'An active goal beyond the active limit of its agent (or of the owner, for goals without an agent) deactivates the oldest active one, atomically.',
  created: true,
  input: goalCreateInput,
  output: goalOutput,
  example: { name: 'Qualify inbound leads', lead_fields: [{ key: 'email', label: 'Email', type: 'email', required: true }], target_value: 8 },
  handler: async ({ input, ctx }) => {
    const row = await insertGoal(ctx.db, newGoal(input, ctx.scope.actingUserId), ctx.maxActiveGoals);
    if (!row) throw agentNotFound();
    return present(ctx, row, serializeFullGoal);
  },
});

export const update = defineAction({
  summary: 'Update a goal',
  description: 'A partial update. Activating a goal (or moving an active one to another agent) applies the active limit. Send `expected_updated_at` to fail with CONFLICT instead of overwriting a newer change.',
  id: true,
  input: updateInput,
  output: goalOutput,
  example: { current_value: 5 },
  handler: async ({ id, input, ctx }) => {
    const { expected_updated_at: expected, ...patch } = input;
    const row = await ctx.db.transaction().execute(async (trx) => {
      const lockedScope = await lockScopeFirst(trx, { ownerId: ctx.scope.ownerId, id }, patch);
      const current = found(await lockGoal(trx, { ownerId: ctx.scope.ownerId, id }), 'Goal');
      if (expected !== undefined && new Date(expected).getTime() !== current.updated_at.getTime()) {
        throw new AppError({
          code: 'CONFLICT',
          message: `The goal changed since ${expected}; it was updated at ${current.updated_at.toISOString()}`,
          details: { updated_at: current.updated_at.toISOString() },
        });
      }
      const changes = goalChanges(current, patch);
      const scope = { ownerId: current.owner_id, agentId: changes.agent_id };
      const enters = entersActiveScope(current, changes);
      if ((enters || patch.agent_id != null) && lockedScope !== changes.agent_id) await lockActiveScope(trx, scope);
      const updated = await updateGoal(trx, { ownerId: current.owner_id, id }, changes);
      if (patch.roadmap !== undefined) await followRoadmap(trx, { goalId: id, before: current.roadmap, after: updated.roadmap });
      if (enters) await enforceActiveLimit(trx, { ...scope, keepId: id, limit: ctx.maxActiveGoals });
      return updated;
    });
    return present(ctx, row, serializeFullGoal);
  },
});

/**
 * Locks the active-limit scope an update may make the goal enter before the goal row, in the order a create takes
 * them (goals/active-limit.ts). Answers the agent whose scope it locked (null: the owner's agent-less goals), or
 * `undefined` when the patch neither activates nor moves the goal.
 */
async function lockScopeFirst(
  trx: Transaction<Database>,
  target: { ownerId: string | null; id: string },
  patch: GoalPatch,
): Promise<string | null | undefined> {
  if (patch.status !== 'active' && patch.agent_id === undefined) return undefined;
  const before = found(await goalScope(trx, target), 'Goal');
  const agentId = patch.agent_id !== undefined ? patch.agent_id : before.agent_id;
  await lockActiveScope(trx, { ownerId: before.owner_id, agentId });
  return agentId;
}

export const remove = defineAction({
  summary: 'Delete a goal',
  description: 'Its attachments go with it; its action items stay, unlinked (`goal_id` and `roadmap_node_id` null).',
  id: true,
  input: z.strictObject({}),
  output: deletedOutput,
  handler: async ({ id, ctx }) => {
    return { id: found(await deleteGoal(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Goal'), deleted: true as const };
  },
});

export const attach = defineAction({
  summary: 'Attach a goal to an agent',
  description: "Makes the goal the agent's lead-info preset. An agent has one attachment: an existing one is replaced, and its goal returned as `replaced_goal_id`. The goal and the agent must have the same owner.",
  input: attachInput,
  output: attachOutput,
  example: { goalId: '00000000-0000-4000-8000-000000000001', agentId: '00000000-0000-4000-8000-000000000002' },
  handler: async ({ input, ctx }) => {
    const attachment = await attachGoal(ctx.db, { goalId: input.goalId, agentId: input.agentId, ownerId: ctx.scope.ownerId });
    if (!attachment) {
      // Which one is missing (or someone else's), for the error code only.
      if (!(await findGoal(ctx.db, { ownerId: ctx.scope.ownerId, id: input.goalId }))) throw notFound('Goal');
      throw agentNotFound();
    }
    return { ...attachment, attached_at: attachment.attached_at.toISOString() };
  },
});

export const detach = defineAction({
  summary: 'Detach a goal from an agent',
  description: 'Idempotent: `detached: false` when nothing (or, with `goalId`, not that goal) was attached.',
  input: detachInput,
  output: detachOutput,
  example: { agentId: '00000000-0000-4000-8000-000000000002' },
  handler: async ({ input, ctx }) => {
    const agent = await findAgent(ctx.db, { ownerId: ctx.scope.ownerId, id: input.agentId });
    if (!agent) throw agentNotFound();
    if (input.goalId !== undefined && !(await findGoal(ctx.db, { ownerId: ctx.scope.ownerId, id: input.goalId }))) {
      throw notFound('Goal');
    }
    const removed = await deleteAttachment(ctx.db, { agentId: input.agentId, ownerId: agent.owner_id, goalId: input.goalId });
    return { agent_id: input.agentId, goal_id: removed ?? input.goalId ?? null, detached: removed !== undefined };
  },
});

export const history = defineAction({
  summary: "A goal's progress history",
  description:
    'One point per UTC day on which the goal’s progress, current value or status changed — that day’s last state — over the ' +
    'last `days` days (today included, 1–365, default 30), oldest first. Its creation is its first point. Also `GET /v1/goals/{id}/history?days=`.',
  id: true,
  readOnly: true,
  input: historyInput,
  output: historyOutput,
  example: { days: 7 },
  handler: async ({ id, input, ctx }) => {
    const goal = found(await goalHistory(ctx.db, { ownerId: ctx.scope.ownerId, id, days: input.days }), 'Goal');
    return present(ctx, goal, (row) => ({ goal_id: row.id, days: input.days, points: row.points }));
  },
});

/** The goals resource: CRUD, attachment, history, the roadmap actions (./roadmap.ts) and `generate` (./generate.ts). */
export const goalActions = { list, get, create, update, delete: remove, attach, detach, history, ...roadmapActions, generate };
