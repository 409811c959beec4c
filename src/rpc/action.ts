import type { z } from 'zod';
import type { Context } from './context.ts';

/**
 * One action: its input schema beside its handler, plus what the dispatcher needs to know.
 * `input` validates `data`; `id: true` makes the envelope's `id` a required UUID.
 */
export interface Action<I extends z.ZodType = z.ZodType, O = unknown> {
  summary: string;
  description?: string;
  input: I;
  /** The action names a record by the envelope's `id`. */
  id?: boolean;
  /** Allowed to the read-only `consumer` role. */
  readOnly?: boolean;
  /** Answers 201 Created. */
  created?: boolean;
  /**
   * Reports progress through `ctx.progress`; with `Accept: text/event-stream` the answer is Server-Sent
   * Events (`progress` events, then one `result` or `error` event).
   */
  streams?: boolean;
  /**
   * An extra per-user rate limit on top of the general one, for expensive actions: the name of one of
   * the limiters the app is given (`DispatchDeps.limiters`). Counted once the request is valid, before
   * the handler runs (and before any stream opens).
   */
  rateLimit?: ActionRateLimit;
  /**
   * Fields of the answer never kept for an `Idempotency-Key` replay (a secret shown once): a replay answers without
   * them. Every write (`readOnly` unset) takes an Idempotency-Key.
   */
  secretFields?: readonly string[];
  handler: (args: { id: string; input: z.output<I>; ctx: Context }) => Promise<O>;
}

/**
 * Declares an action with its types inferred from the schema and the handler.
 *
 * @example
 * export const get = defineAction({
 *   summary: 'Get a goal', id: true, readOnly: true, input: z.object({}).strict(),
 *   handler: ({ id, ctx }) => findGoal(ctx, id),
 * });
 */
export function defineAction<I extends z.ZodType, O>(action: Action<I, O>): Action<I, O> {
  return action;
}

export type ActionMap = Record<string, Action<any, any>>;

/** Every resource and its actions: what `src/resources/index.ts` exports, and what the transports are given. */
export type ActionRegistry = Record<string, ActionMap>;

/** The extra rate limits an action may name; `generate` is `GENERATE_RATE_LIMIT_PER_MINUTE`. */
export type ActionRateLimit = 'generate';

/** The input (`data`) and output types of every action, for a typed client. */
export type RegistryTypes<R extends Record<string, ActionMap>> = {
  [Res in keyof R]: {
    [Act in keyof R[Res]]: {
      input: z.input<R[Res][Act]['input']>;
      output: Awaited<ReturnType<R[Res][Act]['handler']>>;
      id: R[Res][Act]['id'] extends true ? string : never;
    };
  };
};
