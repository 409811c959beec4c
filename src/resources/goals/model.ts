import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { GoalRow, Roadmap } from '../../db/schema.ts';
import { AppError, type IssueDetail } from '../../rpc/errors.ts';
import { iso } from '../owners.ts';
import { completeRoadmap } from '../roadmaps/graph.ts';
import { computeProgress, type MetricState } from '../roadmaps/progress.ts';
import type { goalCreateInput, GoalPatch } from './schemas.ts';

type GoalCreateInput = z.output<typeof goalCreateInput>;

/**
 * Every column of a goal but the roadmap: what lists read. A list answers no roadmap, so none is fetched from
 * Postgres or parsed (a roadmap is most of a goal's bytes).
 */
export const goalListColumns = [
  'id', 'owner_id', 'agent_id', 'name', 'description', 'status', 'priority', 'lead_fields', 'goal_type', 'target_value',
  'current_value', 'min_value', 'max_value', 'unit', 'target_date', 'progress', 'created_at', 'updated_at',
] as const satisfies readonly (keyof GoalRow)[];
export type GoalListRow = Pick<GoalRow, (typeof goalListColumns)[number]>;

/** The goal object of the API as lists answer it: every field but the roadmap. */
export function serializeListedGoal(row: GoalListRow) {
  return {
    id: row.id,
    agent_id: row.agent_id,
    name: row.name,
    description: row.description,
    status: row.status,
    is_active: row.status === 'active',
    priority: row.priority,
    lead_fields: row.lead_fields,
    goal_type: row.goal_type,
    target_value: row.target_value,
    current_value: row.current_value,
    min_value: row.min_value,
    max_value: row.max_value,
    unit: row.unit,
    target_date: iso(row.target_date),
    progress: row.progress,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * A goal as get, create and the other single-goal actions answer it: with its roadmap. Added with `Object.assign`,
 * not `{ ...goal, roadmap }`: V8 builds an object literal with a key after a spread on a slow path, on every
 * `goals.get` (docs/performance.md).
 */
export function serializeFullGoal(row: GoalRow) {
  return Object.assign(serializeListedGoal(row), { roadmap: row.roadmap ? inWrittenOrder(row.roadmap) : null });
}

export type Goal = ReturnType<typeof serializeFullGoal>;

/** jsonb keeps keys in its own order; answers list them as the API documents them. */
function inWrittenOrder(roadmap: Roadmap): Roadmap {
  return {
    nodes: roadmap.nodes.map((n) => ({
      id: n.id,
      label: n.label,
      completed: n.completed,
      position: { x: n.position.x, y: n.position.y },
    })),
    edges: roadmap.edges.map((e) => ({ id: e.id, source: e.source, target: e.target })),
  };
}

/**
 * The metric rules of the spec, on the state a write would leave: scale keeps min < max with target
 * and current inside; boolean uses 0/1. `path` prefixes point at `data`.
 */
export function checkMetric(state: MetricState): void {
  const issues: IssueDetail[] = [];
  const issue = (field: string, message: string) =>
    issues.push({ path: ['data', field], message, type: 'custom' });
  if (state.goal_type === 'scale') {
    if (!(state.min_value < state.max_value)) issue('min_value', 'min_value must be below max_value');
    else {
      const inside = (v: number) => v >= state.min_value && v <= state.max_value;
      if (state.target_value !== null && !inside(state.target_value)) {
        issue('target_value', `target_value must lie within ${state.min_value}–${state.max_value}`);
      }
      if (!inside(state.current_value)) {
        issue('current_value', `current_value must lie within ${state.min_value}–${state.max_value}`);
      }
    }
  }
  if (state.goal_type === 'boolean') {
    const bit = (v: number) => v === 0 || v === 1;
    if (state.target_value !== null && !bit(state.target_value)) issue('target_value', 'a boolean goal uses 0 or 1');
    if (!bit(state.current_value)) issue('current_value', 'a boolean goal uses 0 or 1');
  }
  if (issues.length > 0) {
    throw new AppError({ code: 'VALIDATION_ERROR', message: `${issues[0]!.path.join('.')}: ${issues[0]!.message}`, details: issues });
  }
}

/** A new goal: every column but the timestamps. */
export type NewGoal = Omit<GoalRow, 'created_at' | 'updated_at'>;

/**
 * The goal `goals.create` writes: the input with its defaults, the metric rules checked, the roadmap laid out and
 * the progress computed.
 */
export function newGoal(input: GoalCreateInput, ownerId: string): NewGoal {
  const metric = {
    goal_type: input.goal_type ?? 'scale',
    target_value: input.target_value ?? null,
    current_value: input.current_value ?? 0,
    min_value: input.min_value ?? 0,
    max_value: input.max_value ?? 10,
  };
  checkMetric(metric);
  const status = input.status ?? 'active';
  const roadmap = input.roadmap ? completeRoadmap(input.roadmap) : null;
  return {
    id: randomUUID(),
    owner_id: ownerId,
    agent_id: input.agent_id ?? null,
    name: input.name,
    description: input.description ?? null,
    status,
    priority: input.priority ?? null,
    lead_fields: input.lead_fields ?? [],
    ...metric,
    unit: input.unit ?? null,
    target_date: input.target_date ? new Date(input.target_date) : null,
    roadmap,
    progress: computeProgress({ ...metric, status, roadmap }),
  };
}

/**
 * What `goals.update` writes for `patch` on `current`: the named fields, and always the metric, status and agent
 * as they will be (checked against the metric rules) with the progress they give.
 */
export function goalChanges(current: GoalRow, patch: GoalPatch): GoalChanges {
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
  const roadmap = patch.roadmap === undefined ? current.roadmap : patch.roadmap === null ? null : completeRoadmap(patch.roadmap);
  return {
    ...(patch.name !== undefined && { name: patch.name }),
    ...(patch.description !== undefined && { description: patch.description }),
    ...(patch.priority !== undefined && { priority: patch.priority }),
    ...(patch.lead_fields !== undefined && { lead_fields: patch.lead_fields }),
    ...(patch.unit !== undefined && { unit: patch.unit }),
    ...(patch.target_date !== undefined && { target_date: patch.target_date === null ? null : new Date(patch.target_date) }),
    ...(patch.roadmap !== undefined && { roadmap }),
    ...next,
    progress: computeProgress({ ...next, roadmap }),
  };
}

/** The columns an update writes (every one optional but those `goalChanges` always sets). */
export type GoalChanges = Partial<Omit<GoalRow, 'id' | 'owner_id' | 'created_at' | 'updated_at'>> &
  Pick<GoalRow, 'goal_type' | 'target_value' | 'current_value' | 'min_value' | 'max_value' | 'status' | 'agent_id' | 'progress'>;
