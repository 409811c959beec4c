import { z } from 'zod';
import type { RoadmapGoal } from '../../ai/provider.ts';
import { jsonb } from '../../db/json.ts';
import type { GoalRow } from '../../db/schema.ts';
import { nowMs } from '../../db/sql.ts';
import { defineAction } from '../../rpc/action.ts';
import { AppError } from '../../rpc/errors.ts';
import { serializeActionItem } from '../action-items/model.ts';
import { setLinkedItemsCompleted, setRoadmapNodesCompleted } from '../action-items/node-sync.ts';
import { createActionItems } from '../action-items/queries.ts';
import { withOwners } from '../shared.ts';
import { computeProgress, presentGoal } from './model.ts';
import { findGoal, lockGoalForRoadmap, syncItemsWithRoadmap } from './queries.ts';
import { MAX_ROADMAP_NODES, roadmapFromSuggestion, roadmapId } from './roadmap-graph.ts';

// The actions on a goal's roadmap. Each runs in one transaction that locks the goal row first
// (`lockGoalForRoadmap`, i.e. `lockGoals(..., 'roadmap')`) and its action items after it — the order
// of the item → node direction in action-items/node-sync.ts — so concurrent writers of one roadmap
// apply one after another and never deadlock.

/** VALIDATION_ERROR for node ids the goal's roadmap does not have, each at its path. */
function notNodes(paths: (string | number)[][], hasRoadmap: boolean): AppError {
  const message = hasRoadmap ? "not a node of the goal's roadmap" : 'the goal has no roadmap';
  return new AppError({
    code: 'VALIDATION_ERROR',
    message: `${paths[0]!.join('.')}: ${message}`,
    details: paths.map((path) => ({ path, message, type: 'custom' })),
  });
}

export const updateNode = defineAction({
  summary: 'Complete or reopen one roadmap node',
  description:
    "Sets the node's `completed`, recomputes the goal's progress (the share of completed nodes) and completes or reopens every action item linked to the node, in one transaction. A `node_id` the roadmap does not have is a VALIDATION_ERROR. Concurrent updates of different nodes of one goal all apply.",
  id: true,
  input: z.strictObject({
    node_id: roadmapId.describe("The node's `id` in the goal's roadmap."),
    completed: z.boolean(),
  }),
  handler: async ({ id, input, ctx }) => {
    const row = await ctx.db.transaction().execute(async (trx) => {
      const goal = await lockGoalForRoadmap(trx, ctx, id);
      const nodes = goal.roadmap?.nodes ?? [];
      if (!nodes.some((node) => node.id === input.node_id)) throw notNodes([['data', 'node_id']], nodes.length > 0);
      const updated = await setRoadmapNodesCompleted(trx, goal, [{ nodeId: input.node_id, completed: input.completed }]);
      // Even when the node already had that state: the items linked to it follow it.
      await setLinkedItemsCompleted(trx, { goalId: id, nodeIds: [input.node_id], completed: input.completed });
      return updated;
    });
    return presentGoal(ctx, row);
  },
});

export const convertNodes = defineAction({
  summary: 'Turn roadmap nodes into action items',
  description:
    "Creates one action item per incomplete node that no item is linked to yet — all of them, or those of `node_ids` — described by the node's label and linked to it, in roadmap order. Completed nodes and nodes already linked are skipped, so calling it again creates nothing new. A node id the roadmap does not have is a VALIDATION_ERROR. The items belong to the goal's owner.",
  id: true,
  created: true,
  input: z.strictObject({
    node_ids: z
      .array(roadmapId)
      .min(1)
      .max(MAX_ROADMAP_NODES)
      .optional()
      .describe('Only these nodes (default: every node).'),
  }),
  handler: async ({ id, input, ctx }) => {
    const rows = await ctx.db.transaction().execute(async (trx) => {
      const goal = await lockGoalForRoadmap(trx, ctx, id);
      const nodes = goal.roadmap?.nodes ?? [];
      const known = new Set(nodes.map((node) => node.id));
      if (input.node_ids) {
        const unknown = input.node_ids.flatMap((nodeId, index) => (known.has(nodeId) ? [] : [['data', 'node_ids', index]]));
        if (unknown.length > 0) throw notNodes(unknown, nodes.length > 0);
      }
      const wanted = input.node_ids ? new Set(input.node_ids) : known;
      // Read after the goal lock: a concurrent convert (or link) of this goal has committed by now.
      const linked = await trx
        .selectFrom('action_items')
        .select('roadmap_node_id')
        .distinct()
        .where('goal_id', '=', id)
        .where('roadmap_node_id', 'is not', null)
        .execute();
      const taken = new Set(linked.map((item) => item.roadmap_node_id));
      const chosen = nodes.filter((node) => wanted.has(node.id) && !node.completed && !taken.has(node.id));
      return createActionItems(trx, {
        ownerId: goal.owner_id,
        items: chosen.map((node) => ({ description: node.label, goal_id: id, roadmap_node_id: node.id })),
        pathOf: () => ['data', 'node_ids'],
      });
    });
    const items = await withOwners(ctx, rows, serializeActionItem);
    return { action_items: items, created_count: items.length };
  },
});

export const generateRoadmap = defineAction({
  summary: "Generate a goal's roadmap with the AI provider",
  description: [
    "Asks the configured AI provider for the milestones of the goal — from its name, description, lead fields, metric and target date, and your `instructions` — lays them out in layers, saves the roadmap (replacing any; every action item linked to the old one is unlinked from its node) and answers the goal with its new progress.",
    'With `Accept: text/event-stream` (or over the WebSocket) it streams `progress` events — the provider’s stages, then `layout` and `saved` — then one `result` or `error` event.',
    'A model that fails or answers an invalid graph (a cycle, a dependency on nothing) is UPSTREAM_ERROR (502), the issues in `details`. Counts against GENERATE_RATE_LIMIT_PER_MINUTE like `generate`.',
  ].join('\n\n'),
  id: true,
  streams: true,
  rateLimit: 'generate',
  input: z.strictObject({
    instructions: z
      .string()
      .trim()
      .min(1)
      .max(2000)
      .optional()
      .describe('What the roadmap should take into account, in plain words (1–2000 characters).'),
  }),
  handler: async ({ id, input, ctx }) => {
    // NOT_FOUND before anything is asked of the provider.
    const goal = await findGoal(ctx, id);
    const ai = ctx.services.ai;
    const suggestion = await ai.suggestRoadmap(
      { goal: roadmapGoalOf(goal), ...(input.instructions !== undefined && { instructions: input.instructions }) },
      { signal: ctx.signal, onProgress: ctx.progress, stream: ctx.streaming },
    );
    const roadmap = roadmapFromSuggestion(suggestion);
    ctx.progress({
      stage: 'layout',
      nodes: roadmap.nodes.length,
      edges: roadmap.edges.length,
      layers: new Set(roadmap.nodes.map((n) => n.position.x)).size,
    });
    // A caller gone by now wanted nothing saved.
    if (ctx.signal.aborted) throw new AppError({ code: 'UPSTREAM_ERROR', message: 'Generation was cancelled: the client went away' });
    const row = await ctx.db.transaction().execute(async (trx) => {
      const locked = await lockGoalForRoadmap(trx, ctx, id);
      const saved = await trx
        .updateTable('goals')
        .set({ roadmap: jsonb(roadmap), progress: computeProgress({ ...locked, roadmap }), updated_at: nowMs })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await syncItemsWithRoadmap(trx, { goalId: id, before: locked.roadmap, after: roadmap, relinkAll: true });
      return saved;
    });
    ctx.progress({ stage: 'saved', nodes: roadmap.nodes.length, progress: row.progress });
    return presentGoal(ctx, row);
  },
});

/** What the provider is told about the goal. */
function roadmapGoalOf(goal: GoalRow): RoadmapGoal {
  return {
    name: goal.name,
    description: goal.description,
    lead_fields: goal.lead_fields.map((f) => ({ key: f.key, label: f.label, type: f.type, required: f.required })),
    goal_type: goal.goal_type,
    target_value: goal.target_value,
    current_value: goal.current_value,
    min_value: goal.min_value,
    max_value: goal.max_value,
    unit: goal.unit,
    target_date: goal.target_date ? goal.target_date.toISOString() : null,
    created_at: goal.created_at.toISOString(),
  };
}

/** The roadmap actions of the goals resource, merged into `goalActions`. */
export const roadmapActions = { 'generate-roadmap': generateRoadmap, 'update-node': updateNode, 'convert-nodes': convertNodes };
