import { ProviderError, type AiProvider, type GenerationOptions, type RoadmapGoal } from '../../ai/provider.ts';
import type { GoalRow } from '../../db/schema.ts';
import type { Context } from '../../rpc/context.ts';
import { AppError, issueDetails, type ErrorCode, type IssueDetail } from '../../rpc/errors.ts';
import { roadmapSuggestion, type RoadmapSuggestion } from '../roadmaps/graph.ts';
import { checkMetric } from './model.ts';
import { goalSuggestion, type GoalSuggestion } from './schemas.ts';

// What the AI provider answers is checked here, against the schemas the writes accept: a suggestion a client can
// save unchanged, a roadmap that is a valid graph. A provider's failure, or an answer that does not validate, is
// UPSTREAM_ERROR; from the offline rules, which are meant to answer valid suggestions only, it is our bug (500).

/**
 * Asks the provider for a goal suggestion and answers it validated as `goals.create` would: the schema, then the
 * metric rules. Progress ends with `validated`.
 */
export async function suggestGoal(ctx: Context, request: { description: string; agent?: { name: string; description: string | null } }) {
  const ai = ctx.services.ai;
  const raw = await ask(() => ai.suggestGoal({ ...request, schema: goalSuggestion }, generationOptions(ctx)));
  const suggestion = validateSuggestion(raw, failureCode(ai));
  ctx.progress({ stage: 'validated', name: suggestion.name });
  return suggestion;
}

/** Asks the provider for the milestones of `goal`'s roadmap and answers them validated. Progress ends with `milestones`. */
export async function suggestRoadmap(ctx: Context, goal: GoalRow, instructions: string | undefined): Promise<RoadmapSuggestion> {
  const ai = ctx.services.ai;
  const request = { goal: roadmapGoalOf(goal), ...(instructions !== undefined && { instructions }), schema: roadmapSuggestion };
  const raw = await ask(() => ai.suggestRoadmap(request, generationOptions(ctx)));
  const suggestion = validateRoadmapSuggestion(raw, failureCode(ai));
  ctx.progress({ stage: 'milestones', milestones: suggestion.milestones.map((m) => ({ id: m.id, label: m.label })) });
  return suggestion;
}

/**
 * Checks a candidate goal suggestion as `goals.create` would. Failures become `code` with the issues in `details`,
 * each path starting at `suggestion`.
 *
 * @example validateSuggestion({ name: 'Demo', lead_fields: [] }) // → the suggestion, parsed
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

/** Checks candidate milestones against `roadmapSuggestion`; failures become `code`, paths starting at `roadmap`. */
export function validateRoadmapSuggestion(candidate: unknown, code: ErrorCode = 'UPSTREAM_ERROR'): RoadmapSuggestion {
  const parsed = roadmapSuggestion.safeParse(candidate);
  if (parsed.success) return parsed.data;
  throw invalidAnswer(code, issueDetails(parsed.error.issues, ['roadmap']), 'is not a valid roadmap', 'roadmap');
}

function invalidAnswer(code: ErrorCode, details: IssueDetail[], what: string, subject = 'suggestion'): AppError {
  const first = details[0];
  return new AppError({
    code,
    message: `The AI provider's ${subject} ${what}${first ? ` (${first.path.join('.')}: ${first.message})` : ''}`,
    details,
  });
}

/** The offline rules answering something invalid is a bug of ours; a model doing so is the upstream's failure. */
const failureCode = (ai: AiProvider): ErrorCode => (ai.name === 'offline' ? 'INTERNAL_ERROR' : 'UPSTREAM_ERROR');

const generationOptions = (ctx: Context): GenerationOptions => ({ signal: ctx.signal, onProgress: ctx.progress, stream: ctx.streaming });

/** The provider's answer, its failure as UPSTREAM_ERROR. */
async function ask(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof ProviderError)) throw error;
    throw new AppError({ code: 'UPSTREAM_ERROR', message: error.message, details: error.details, cause: error.cause ?? error });
  }
}

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
