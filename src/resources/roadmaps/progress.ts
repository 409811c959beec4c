import type { GoalType, Roadmap } from '../../db/schema.ts';

/** What a goal's progress is computed from, beside its status and roadmap. */
export interface MetricState {
  goal_type: GoalType;
  target_value: number | null;
  current_value: number;
  min_value: number;
  max_value: number;
}

/**
 * Progress, 0–100: with roadmap nodes, the share completed; else with a target, how far current has
 * come from min toward target (boolean: 0 or 100); else 100 when completed, 0 otherwise.
 */
export function computeProgress(goal: MetricState & { status: string; roadmap: Roadmap | null }): number {
  const nodes = goal.roadmap?.nodes ?? [];
  if (nodes.length > 0) {
    return round((nodes.filter((n) => n.completed).length / nodes.length) * 100);
  }
  if (goal.target_value !== null) {
    if (goal.goal_type === 'boolean') return goal.current_value >= goal.target_value ? 100 : 0;
    const span = goal.target_value - goal.min_value;
    if (span === 0) return goal.current_value >= goal.target_value ? 100 : 0;
    return round(clamp(((goal.current_value - goal.min_value) / span) * 100));
  }
  return goal.status === 'completed' ? 100 : 0;
}

const clamp = (v: number) => Math.min(100, Math.max(0, v));
const round = (v: number) => Math.round(v * 100) / 100;
