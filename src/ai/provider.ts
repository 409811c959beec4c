import type { z } from 'zod';
import type { RoadmapGoal } from './roadmap-rules.ts';

export type { RoadmapGoal } from './roadmap-rules.ts';

/** The sampling temperature the spec asks every provider for. */
export const GENERATION_TEMPERATURE = 0.5;

/** A step of a generation, reported while it works: `stage` names it, the rest is the step's own. */
export interface GenerationProgress {
  stage: string;
  [key: string]: unknown;
}

/** What a generation call may use beside its request. */
export interface GenerationOptions {
  /** Aborted when the caller went away: stop and throw. */
  signal: AbortSignal;
  /** Progress while it works (the model's output as it arrives, or the stages of the rules). */
  onProgress: (event: GenerationProgress) => void;
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
  /** The shape the caller validates the answer against; a model is asked for it (structured output). */
  schema: z.ZodType;
}

/** A roadmap to plan: the goal as it is, and the caller's wishes. */
export interface RoadmapRequest {
  goal: RoadmapGoal;
  instructions?: string;
  /** The shape the caller validates the answer against; a model is asked for it (structured output). */
  schema: z.ZodType;
}

/**
 * A provider failed: the model could not be reached, refused, timed out, or answered something that is not
 * JSON. The resource that asked turns it into its own error (UPSTREAM_ERROR); `details` point at the answer.
 */
export class ProviderError extends Error {
  override name = 'ProviderError';
  readonly details?: { path: (string | number)[]; message: string; type: string }[];

  constructor(message: string, options: { details?: ProviderError['details']; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.details = options.details;
  }
}

/**
 * A goal-generation provider. Each method asks for one kind of suggestion and answers it as the provider made
 * it, **unvalidated**: the resource that asked validates it against the schema its write accepts. Failures to
 * get an answer at all are `ProviderError`s.
 *
 * @example const raw = await provider.suggestGoal({ description: 'Collect name and email', schema }, options);
 */
export interface AiProvider {
  /** `offline` or `openai`, as `AI_PROVIDER` names it. */
  readonly name: 'offline' | 'openai';
  readonly model: string;
  readonly temperature: number;
  suggestGoal(request: GoalSuggestionRequest, options: GenerationOptions): Promise<unknown>;
  suggestRoadmap(request: RoadmapRequest, options: GenerationOptions): Promise<unknown>;
}
