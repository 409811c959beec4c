import { checkMetric } from '../resources/goals/model.ts';
import { roadmapSuggestion, type RoadmapSuggestion } from '../resources/goals/roadmap-graph.ts';
import { goalSuggestion, type GoalSuggestion } from '../resources/goals/schemas.ts';
import type { ProgressEvent } from '../rpc/context.ts';
import { AppError, issueDetails, type ErrorCode, type IssueDetail } from '../rpc/errors.ts';
import type { RoadmapGoal } from './roadmap-rules.ts';

export type { RoadmapGoal } from './roadmap-rules.ts';

/** The sampling temperature the spec asks every provider for. */
export const GENERATION_TEMPERATURE = 0.5;

/** What a generation call may use beside its request. */
export interface GenerationOptions {
  /** Aborted when the caller went away: stop and throw. */
  signal: AbortSignal;
  /** Progress while it works (the model's output as it arrives, or the stages of the rules). */
  onProgress: (event: ProgressEvent) => void;
  /** The transport delivers progress (SSE): worth asking an upstream model to stream. */
  stream: boolean;
}

/** The agent a goal is generated for, when the caller named one: context for the model. */
export interface AgentContext {
  name: string;
  description: string | null;
}

export interface GoalSuggestionRequest {
  description: string;
  agent?: AgentContext;
}

/**
 * A goal-generation provider. Each method asks for one kind of suggestion and answers it validated
 * against the schema the matching write accepts, so a client can save it unchanged; providers throw
 * AppError (UPSTREAM_ERROR when the model fails or answers something invalid).
 *
 * `suggestRoadmap` answers the milestones of a goal's roadmap (`goals.generate-roadmap` lays them out and
 * saves them), validated against `roadmapSuggestion` (unique ids, dependencies that exist, no cycle).
 *
 * @example const { suggestion } = await provider.suggestGoal({ description: 'Collect name and email' }, options);
 */
export interface AiProvider {
  /** `offline` or `openai`, as `AI_PROVIDER` names it. */
  readonly name: 'offline' | 'openai';
  readonly model: string;
  readonly temperature: number;
  suggestGoal(request: GoalSuggestionRequest, options: GenerationOptions): Promise<GoalSuggestion>;
  suggestRoadmap(request: RoadmapRequest, options: GenerationOptions): Promise<RoadmapSuggestion>;
}

/** A roadmap to plan: the goal as it is, and the caller's wishes. */
export interface RoadmapRequest {
  goal: RoadmapGoal;
  instructions?: string;
}

/**
 * Checks candidate milestones against `roadmapSuggestion`. Failures become `code` (UPSTREAM_ERROR for a
 * model's answer) with the issues in `details`, each path starting at `roadmap`.
 */
export function validateRoadmapSuggestion(candidate: unknown, code: ErrorCode = 'UPSTREAM_ERROR'): RoadmapSuggestion {
  const parsed = roadmapSuggestion.safeParse(candidate);
  if (parsed.success) return parsed.data;
  throw invalidAnswer(code, issueDetails(parsed.error.issues, ['roadmap']), 'is not a valid roadmap', 'roadmap');
}

/**
 * Checks a candidate suggestion as `goals.create` would: the schema, then the metric rules. Failures
 * become `code` (UPSTREAM_ERROR for a model's answer) with the issues in `details`, each path starting
 * at `suggestion`.
 */
export function validateSuggestion(candidate: unknown, code: ErrorCode = 'UPSTREAM_ERROR'): GoalSuggestion {
  const parsed = goalSuggestion.safeParse(candidate);
  if (!parsed.success) {
    throw invalidAnswer(code, issueDetails(parsed.error.issues, ['suggestion']), 'does not match the goal schema');
  }
  try {
    checkMetric({
      goal_type: parsed.data.goal_type ?? 'scale',
      target_value: parsed.data.target_value ?? null,
      current_value: 0,
      min_value: parsed.data.min_value ?? 0,
      max_value: parsed.data.max_value ?? 10,
    });
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    const details = (error.details as IssueDetail[]).map((d) => ({ ...d, path: ['suggestion', ...d.path.slice(1)] }));
    throw invalidAnswer(code, details, 'breaks the metric rules');
  }
  return parsed.data;
}

function invalidAnswer(code: ErrorCode, details: IssueDetail[], what: string, subject = 'suggestion'): AppError {
  const first = details[0];
  return new AppError({
    code,
    message: `The AI provider's ${subject} ${what}${first ? ` (${first.path.join('.')}: ${first.message})` : ''}`,
    details,
  });
}
