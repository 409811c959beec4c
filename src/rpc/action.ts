import type { z } from 'zod';
import type { Context } from './context.ts';

/**
 * One action: its input and output schemas beside its handler, plus what the dispatcher needs to know.
 * `input` validates `data`; `output` is the answer's `data` (the handler's return type is checked against it at
 * compile time, and the test suite validates every answer against it); `id: true` makes the envelope's `id` a
 * required UUID.
 */
export interface Action<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  summary: string;
  description?: string;
  input: I;
  /** The answer's `data`. Plain schemas only (no defaults or transforms): what the handler returns is sent as is. */
  output: O;
  /**
   * A `data` that the action accepts, for the reference page's "try it" body and the docs (checked by the tests:
   * for a standard user it succeeds, or is NOT_FOUND where it names records by id). Default: `{}`.
   */
  example?: z.input<I>;
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
  handler: (args: { id: string; input: z.output<I>; ctx: Context }) => Promise<z.output<O>>;
}

/**
 * Declares an action with its types inferred from its schemas; the handler must answer the output schema's type.
 *
 * @example
 * export const get = defineAction({
 *   summary: 'Get a goal', id: true, readOnly: true, input: z.strictObject({}), output: goalOutput,
 *   handler: ({ id, ctx }) => findGoal(ctx, id),
 * });
 */
export function defineAction<I extends z.ZodType, O extends z.ZodType>(action: Action<I, O>): Action<I, O> {
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
      output: z.output<R[Res][Act]['output']>;
      id: R[Res][Act]['id'] extends true ? string : never;
    };
  };
};
