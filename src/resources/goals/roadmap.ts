import { defineAction } from '../../rpc/action.ts';
import { AppError } from '../../rpc/errors.ts';
import { serializeActionItem } from '../action-items/model.ts';
import { createActionItems } from '../action-items/queries.ts';
import { createdItemsOutput } from '../action-items/schemas.ts';
import { found, notNodes } from '../errors.ts';
import { present, presentAll } from '../owners.ts';
import { roadmapFromSuggestion } from '../roadmaps/graph.ts';
import { completeLinkedItems, completeNodes, followRoadmap, linkedNodeIds, saveRoadmap, withGoalLocked } from '../roadmaps/sync.ts';
import { serializeFullGoal } from './model.ts';
import { findGoal } from './queries.ts';
import { convertNodesInput, generateRoadmapInput, goalOutput, updateNodeInput } from './schemas.ts';
import { suggestRoadmap } from './suggestions.ts';

// The actions on a goal's roadmap. Each writes in `withGoalLocked`: the lock order of roadmaps/sync.ts.

export const updateNode = defineAction({
  summary: 'Complete or reopen one roadmap node',
  description: "Sets the node's `completed`, recomputes the goal's progress (the share of completed nodes) and completes or reopens every action item linked to the node, in one transaction. A `node_id` the roadmap does not have is a VALIDATION_ERROR. Concurrent updates of different nodes of one goal all apply.",
  id: true,
  input: updateNodeInput,
  output: goalOutput,
  example: { node_id: 'n1', completed: true },
  handler: async ({ id, input, ctx }) => {
    const row = await withGoalLocked(ctx.db, { ownerId: ctx.scope.ownerId, goalId: id }, async (trx, goal) => {
      const nodes = goal.roadmap?.nodes ?? [];
      if (!nodes.some((node) => node.id === input.node_id)) throw notNodes([['data', 'node_id']], { hasRoadmap: nodes.length > 0 });
      const updated = await completeNodes(trx, goal, [{ nodeId: input.node_id, completed: input.completed }]);
      // Even when the node already had that state: the items linked to it follow it.
      await completeLinkedItems(trx, { goalId: id, nodeIds: [input.node_id], completed: input.completed });
      return updated;
    });
    return present(ctx, row, serializeFullGoal);
  },
});

export const convertNodes = defineAction({
  summary: 'Turn roadmap nodes into action items',
  description: "Creates one action item per incomplete node that no item is linked to yet — all of them, or those of `node_ids` — described by the node's label and linked to it, in roadmap order. Completed nodes and nodes already linked are skipped, so calling it again creates nothing new. A node id the roadmap does not have is a VALIDATION_ERROR. The items belong to the goal's owner.",
  id: true,
  created: true,
  input: convertNodesInput,
  output: createdItemsOutput,
  handler: async ({ id, input, ctx }) => {
    const rows = await withGoalLocked(ctx.db, { ownerId: ctx.scope.ownerId, goalId: id }, async (trx, goal) => {
      const nodes = goal.roadmap?.nodes ?? [];
      const known = new Set(nodes.map((node) => node.id));
      const unknown = (input.node_ids ?? []).flatMap((nodeId, index) => (known.has(nodeId) ? [] : [['data', 'node_ids', index]]));
      if (unknown.length > 0) throw notNodes(unknown, { hasRoadmap: nodes.length > 0 });
      const wanted = input.node_ids ? new Set(input.node_ids) : known;
      const taken = await linkedNodeIds(trx, id);
      const chosen = nodes.filter((node) => wanted.has(node.id) && !node.completed && !taken.has(node.id));
      return createActionItems(trx, {
        ownerId: goal.owner_id,
        items: chosen.map((node) => ({ description: node.label, goal_id: id, roadmap_node_id: node.id })),
        pathOf: () => ['data', 'node_ids'],
      });
    });
    const items = await presentAll(ctx, rows, serializeActionItem);
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
  input: generateRoadmapInput,
  output: goalOutput,
  example: { instructions: 'Three milestones at most' },
  handler: async ({ id, input, ctx }) => {
    // NOT_FOUND before anything is asked of the provider.
    const goal = found(await findGoal(ctx.db, { ownerId: ctx.scope.ownerId, id }), 'Goal');
    const roadmap = roadmapFromSuggestion(await suggestRoadmap(ctx, goal, input.instructions));
    const layers = new Set(roadmap.nodes.map((n) => n.position.x)).size;
    ctx.progress({ stage: 'layout', nodes: roadmap.nodes.length, edges: roadmap.edges.length, layers });
    // A caller gone by now wanted nothing saved.
    if (ctx.signal.aborted) throw new AppError({ code: 'UPSTREAM_ERROR', message: 'Generation was cancelled: the client went away' });
    const row = await withGoalLocked(ctx.db, { ownerId: ctx.scope.ownerId, goalId: id }, async (trx, locked) => {
      const saved = await saveRoadmap(trx, locked, roadmap);
      await followRoadmap(trx, { goalId: id, before: locked.roadmap, after: roadmap, relinkAll: true });
      return saved;
    });
    ctx.progress({ stage: 'saved', nodes: roadmap.nodes.length, progress: row.progress });
    return present(ctx, row, serializeFullGoal);
  },
});

/** The roadmap actions of the goals resource, merged into `goalActions`. */
export const roadmapActions = { 'generate-roadmap': generateRoadmap, 'update-node': updateNode, 'convert-nodes': convertNodes };
