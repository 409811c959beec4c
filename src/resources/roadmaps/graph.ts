import { z } from 'zod';
import type { Roadmap, RoadmapNode } from '../../db/schema.ts';

// A goal's roadmap is a directed acyclic graph of milestones: `nodes` with a label, a completion flag
// and a position on the canvas a frontend draws, `edges` saying which milestone comes before which.
// This module holds everything about the graph itself — its schema (the DAG rules included), the
// layered layout, and the small helpers the actions need — and nothing about the database.

export const MAX_ROADMAP_NODES = 200;
export const MAX_ROADMAP_EDGES = 1000;
/** Positions are canvas coordinates; beyond this they are a client's bug, not a drawing. */
export const MAX_COORDINATE = 1_000_000;

/** Horizontal distance between layers and vertical distance between nodes of one layer. */
export const LAYER_SPACING = 250;
export const NODE_SPACING = 120;

const controlCharacters = /[\u0000-\u001f\u007f]/;

/** A node or edge id: what a frontend graph library uses (`node_1`, a UUID…); an action item's `roadmap_node_id`. */
export const roadmapId = z
  .string()
  .min(1)
  .max(100)
  .refine((id) => !controlCharacters.test(id), 'must not hold control characters');

const coordinate = z.number().min(-MAX_COORDINATE).max(MAX_COORDINATE);

export const roadmapNode = z.strictObject({
  id: roadmapId.describe('Unique in the roadmap; action items link to it as `roadmap_node_id`.'),
  label: z.string().trim().min(1).max(200),
  completed: z.boolean().default(false).describe('Defaults to false.'),
  position: z
    .strictObject({ x: coordinate, y: coordinate })
    .optional()
    .describe('Canvas coordinates. Omitted: the node is placed by the layered layout.'),
});

export const roadmapEdge = z.strictObject({
  id: roadmapId.describe('Unique among the edges.'),
  source: roadmapId.describe('The node that comes first.'),
  target: roadmapId.describe('The node that follows it.'),
});

/**
 * A roadmap as clients write it: unique node ids and edge ids, edges between existing nodes, no cycle,
 * at most 200 nodes and 1000 edges. Each broken rule is an issue whose path points at the offending
 * node or edge (`["roadmap", "edges", 3, "target"]`; the dispatcher prefixes `data`).
 */
export const roadmapSchema = z
  .strictObject({
    nodes: z.array(roadmapNode).max(MAX_ROADMAP_NODES, `a roadmap has at most ${MAX_ROADMAP_NODES} nodes`),
    edges: z.array(roadmapEdge).max(MAX_ROADMAP_EDGES, `a roadmap has at most ${MAX_ROADMAP_EDGES} edges`).default([]),
  })
  .superRefine((roadmap, ctx) => {
    for (const issue of checkGraph(roadmap)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  })
  .describe(
    'A directed acyclic graph of milestones. Progress is the share of completed nodes. Omitted positions are laid out in layers.',
  );

export type RoadmapInput = z.output<typeof roadmapSchema>;

interface GraphIssue {
  path: (string | number)[];
  message: string;
}

interface GraphShape {
  nodes: { id: string }[];
  edges: { id: string; source: string; target: string }[];
}

/**
 * The graph rules beyond each field's own: unique ids, edges between existing nodes, no duplicate
 * edge, no cycle. Answers the issues, empty when the graph is a DAG. The cycle check runs only on an
 * otherwise sound graph, so one mistake is reported once.
 */
export function checkGraph(roadmap: GraphShape): GraphIssue[] {
  const issues: GraphIssue[] = [];
  const nodeIds = new Set<string>();
  roadmap.nodes.forEach((node, index) => {
    if (nodeIds.has(node.id)) issues.push({ path: ['nodes', index, 'id'], message: `duplicate node id "${node.id}"` });
    nodeIds.add(node.id);
  });
  const edgeIds = new Set<string>();
  const pairs = new Set<string>();
  roadmap.edges.forEach((edge, index) => {
    if (edgeIds.has(edge.id)) issues.push({ path: ['edges', index, 'id'], message: `duplicate edge id "${edge.id}"` });
    edgeIds.add(edge.id);
    for (const end of ['source', 'target'] as const) {
      if (!nodeIds.has(edge[end])) issues.push({ path: ['edges', index, end], message: `no node has the id "${edge[end]}"` });
    }
    const pair = JSON.stringify([edge.source, edge.target]);
    if (pairs.has(pair)) issues.push({ path: ['edges', index], message: `duplicate edge from "${edge.source}" to "${edge.target}"` });
    pairs.add(pair);
  });
  if (issues.length > 0) return issues;
  const cycle = findCycle(roadmap);
  if (cycle) {
    const names = [...cycle.nodeIds, cycle.nodeIds[0]].map((id) => `"${id}"`).join(' → ');
    issues.push({ path: ['edges', cycle.closingEdge], message: `this edge closes a cycle: ${names}; a roadmap has no cycles` });
  }
  return issues;
}

/**
 * A cycle of the graph, if it has one: its nodes in order and the index of the edge that closes it
 * (a self-loop is a cycle of one). Depth-first, iterative (200 nodes deep is fine either way, but a
 * client's graph should not decide our stack depth).
 */
export function findCycle(roadmap: GraphShape): { nodeIds: string[]; closingEdge: number } | null {
  const outgoing = adjacency(roadmap);
  const state = new Map<string, 'open' | 'done'>();
  for (const start of roadmap.nodes) {
    if (state.has(start.id)) continue;
    // Each frame: a node and how many of its outgoing edges were followed.
    const stack: { id: string; next: number }[] = [{ id: start.id, next: 0 }];
    state.set(start.id, 'open');
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const edges = outgoing.get(frame.id) ?? [];
      if (frame.next >= edges.length) {
        state.set(frame.id, 'done');
        stack.pop();
        continue;
      }
      const { target, index } = edges[frame.next++]!;
      const seen = state.get(target);
      if (seen === 'open') {
        const from = stack.findIndex((f) => f.id === target);
        return { nodeIds: stack.slice(from).map((f) => f.id), closingEdge: index };
      }
      if (seen === undefined) {
        state.set(target, 'open');
        stack.push({ id: target, next: 0 });
      }
    }
  }
  return null;
}

function adjacency(roadmap: GraphShape): Map<string, { target: string; index: number }[]> {
  const outgoing = new Map<string, { target: string; index: number }[]>();
  roadmap.edges.forEach((edge, index) => {
    const list = outgoing.get(edge.source) ?? [];
    list.push({ target: edge.target, index });
    outgoing.set(edge.source, list);
  });
  return outgoing;
}

/**
 * Where each node goes on the canvas, by a layered (Sugiyama-style) layout of the DAG, left to right:
 *
 * 1. layers by longest path from the sources (a node sits one layer after its latest predecessor),
 *    then each source pulled right to just before its earliest successor, so a side branch joins
 *    where it is needed instead of waiting in the first column;
 * 2. order within a layer by the barycenter heuristic (the mean position of a node's neighbours in
 *    the layers before, then after), a few sweeps down and up, ties kept in the nodes' given order;
 * 3. x = layer × 250, y = index × 120, each layer centred on the tallest.
 *
 * Deterministic: the same graph always gets the same positions. The graph must be a DAG.
 *
 * @example layoutRoadmap({ nodes: [{ id: 'a' }, { id: 'b' }], edges: [{ id: 'e', source: 'a', target: 'b' }] })
 * // → Map { 'a' → { x: 0, y: 0 }, 'b' → { x: 250, y: 0 } }
 */
export function layoutRoadmap(roadmap: GraphShape): Map<string, { x: number; y: number }> {
  const graph = neighboursOf(roadmap);
  const topological = topologicalOrder(graph);
  const layer = layerOf(graph, topological);
  const layerCount = Math.max(0, ...[...layer.values()].map((l) => l + 1));
  const layers: string[][] = Array.from({ length: layerCount }, () => []);
  for (const id of topological) layers[layer.get(id)!]!.push(id);
  orderWithinLayers(graph, layers, layer);

  const tallest = Math.max(1, ...layers.map((nodes) => nodes.length));
  const positions = new Map<string, { x: number; y: number }>();
  layers.forEach((nodes, l) => {
    const offset = (tallest - nodes.length) / 2;
    nodes.forEach((id, i) => positions.set(id, { x: l * LAYER_SPACING, y: (i + offset) * NODE_SPACING }));
  });
  return positions;
}

interface Adjacency {
  ids: string[];
  order: Map<string, number>;
  predecessors: Map<string, string[]>;
  successors: Map<string, string[]>;
}

function neighboursOf(roadmap: GraphShape): Adjacency {
  const ids = roadmap.nodes.map((n) => n.id);
  const predecessors = new Map<string, string[]>(ids.map((id) => [id, []]));
  const successors = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const edge of roadmap.edges) {
    successors.get(edge.source)?.push(edge.target);
    predecessors.get(edge.target)?.push(edge.source);
  }
  return { ids, order: new Map(ids.map((id, i) => [id, i])), predecessors, successors };
}

/** Kahn's algorithm, taking ready nodes in their given order: a stable topological order. */
function topologicalOrder({ ids, order, predecessors, successors }: Adjacency): string[] {
  const indegree = new Map(ids.map((id) => [id, predecessors.get(id)!.length]));
  const ready = ids.filter((id) => indegree.get(id) === 0);
  const topological: string[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => order.get(a)! - order.get(b)!);
    const id = ready.shift()!;
    topological.push(id);
    for (const next of successors.get(id)!) {
      indegree.set(next, indegree.get(next)! - 1);
      if (indegree.get(next) === 0) ready.push(next);
    }
  }
  if (topological.length !== ids.length) throw new Error('layoutRoadmap: the graph has a cycle');
  return topological;
}

/** Each node's layer: the longest path to it; a source pulled right to sit just before its nearest successor. */
function layerOf({ predecessors, successors }: Adjacency, topological: string[]): Map<string, number> {
  const layer = new Map<string, number>();
  for (const id of topological) {
    layer.set(id, Math.max(0, ...predecessors.get(id)!.map((p) => layer.get(p)! + 1)));
  }
  for (const id of topological) {
    const next = successors.get(id)!;
    if (predecessors.get(id)!.length === 0 && next.length > 0) {
      layer.set(id, Math.min(...next.map((s) => layer.get(s)!)) - 1);
    }
  }
  return layer;
}

/** Orders each layer by the barycentre of its neighbours, a few sweeps down and up, ties in the given order. */
function orderWithinLayers({ predecessors, successors }: Adjacency, layers: string[][], layer: Map<string, number>): void {
  const index = new Map<string, number>();
  const renumber = (nodes: string[]) => nodes.forEach((id, i) => index.set(id, i));
  layers.forEach(renumber);
  const reorder = (nodes: string[], neighbours: Map<string, string[]>, towards: (l: number) => boolean) => {
    const weight = new Map(
      nodes.map((id) => {
        const near = neighbours.get(id)!.filter((n) => towards(layer.get(n)!));
        const mean = near.length > 0 ? near.reduce((sum, n) => sum + index.get(n)!, 0) / near.length : index.get(id)!;
        return [id, mean] as const;
      }),
    );
    nodes.sort((a, b) => weight.get(a)! - weight.get(b)! || index.get(a)! - index.get(b)!);
    renumber(nodes);
  };
  for (let sweep = 0; sweep < 4; sweep++) {
    for (let l = 1; l < layers.length; l++) reorder(layers[l]!, predecessors, (n) => n < l);
    for (let l = layers.length - 2; l >= 0; l--) reorder(layers[l]!, successors, (n) => n > l);
  }
}

/**
 * The roadmap as stored: every node with a position — the client's where it gave one, the layered
 * layout's where it did not.
 */
export function completeRoadmap(input: RoadmapInput): Roadmap {
  const needsLayout = input.nodes.some((node) => node.position === undefined);
  const laidOut = needsLayout ? layoutRoadmap(input) : new Map<string, { x: number; y: number }>();
  return {
    nodes: input.nodes.map(
      (node): RoadmapNode => ({
        id: node.id,
        label: node.label,
        completed: node.completed,
        position: node.position ?? laidOut.get(node.id)!,
      }),
    ),
    edges: input.edges.map((edge) => ({ id: edge.id, source: edge.source, target: edge.target })),
  };
}

/** The ids of the nodes whose `completed` differs between two roadmaps, by the new state (nodes in both only). */
export function changedCompletions(before: Roadmap | null, after: Roadmap | null): { completed: string[]; reopened: string[] } {
  const previous = new Map((before?.nodes ?? []).map((node) => [node.id, node.completed]));
  const completed: string[] = [];
  const reopened: string[] = [];
  for (const node of after?.nodes ?? []) {
    const was = previous.get(node.id);
    if (was === undefined || was === node.completed) continue;
    (node.completed ? completed : reopened).push(node.id);
  }
  return { completed, reopened };
}

// ---------------------------------------------------------------------------------------------------
// Generated roadmaps

const milestoneId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'lowercase letters, digits, - and _ (at most 40)')
  .describe('A short id for the milestone, unique in the roadmap (m1, m2, …).');

/** At most this many milestones in a generated roadmap: a plan a person reads, not a task list. */
export const MAX_GENERATED_MILESTONES = 30;

/**
 * What an AI provider answers for `goals.generate-roadmap`: milestones and what each depends on, no
 * positions (the layered layout places them) and nothing completed. Validated like any roadmap — unique
 * ids, dependencies that exist, no cycles — with paths starting at `roadmap`.
 */
export const roadmapSuggestion = z
  .strictObject({
    milestones: z
      .array(
        z.strictObject({
          id: milestoneId,
          label: z.string().trim().min(1).max(200).describe('What is done when the milestone is reached, in a few words.'),
          depends_on: z.array(milestoneId).max(10).describe('The ids of the milestones that must come first.'),
        }),
      )
      .min(1)
      .max(MAX_GENERATED_MILESTONES),
  })
  .superRefine((suggestion, ctx) => {
    const graph = suggestionGraph(suggestion);
    for (const issue of checkGraph(graph)) {
      // Edge issues point at the dependency that made the edge: milestones.<i>.depends_on.<j>.
      const [kind, index, field] = issue.path;
      const origin = kind === 'edges' && typeof index === 'number' ? graph.origins[index]! : undefined;
      const path = origin
        ? ['milestones', origin.milestone, 'depends_on', origin.dependency]
        : kind === 'nodes'
          ? ['milestones', index!, ...(field !== undefined ? [field] : [])]
          : [];
      ctx.addIssue({ code: 'custom', path, message: issue.message });
    }
  });

export type RoadmapSuggestion = z.output<typeof roadmapSuggestion>;

function suggestionGraph(suggestion: RoadmapSuggestion) {
  const origins: { milestone: number; dependency: number }[] = [];
  const edges: { id: string; source: string; target: string }[] = [];
  suggestion.milestones.forEach((milestone, m) =>
    // A dependency named twice is one edge: a model's repetition, not a broken plan.
    milestone.depends_on.forEach((source, d) => {
      if (milestone.depends_on.indexOf(source) !== d) return;
      origins.push({ milestone: m, dependency: d });
      edges.push({ id: `${source}->${milestone.id}`, source, target: milestone.id });
    }),
  );
  return { nodes: suggestion.milestones.map((m) => ({ id: m.id })), edges, origins };
}

/**
 * A validated suggestion as a roadmap: one node per milestone (not completed), one edge per dependency
 * (`<source>-><target>`), positions from the layered layout.
 *
 * @example roadmapFromSuggestion({ milestones: [{ id: 'm1', label: 'Start', depends_on: [] }] })
 * // → { nodes: [{ id: 'm1', label: 'Start', completed: false, position: { x: 0, y: 0 } }], edges: [] }
 */
export function roadmapFromSuggestion(suggestion: RoadmapSuggestion): Roadmap {
  const { edges } = suggestionGraph(suggestion);
  return completeRoadmap({
    nodes: suggestion.milestones.map((m) => ({ id: m.id, label: m.label, completed: false })),
    edges,
  });
}
