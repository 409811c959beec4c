import { z } from 'zod';
import type { Db } from '../db/client.ts';
import { uuid } from '../lib/zod.ts';
import type { Action, ActionRateLimit, ActionRegistry } from './action.ts';
import { createContext, type Principal, type ProgressEvent, type Scope, type Services } from './context.ts';
import { AppError, validationError } from './errors.ts';
import { idempotencyClaim, runOnce } from './idempotency.ts';

/** The invoke envelope. Unknown top-level keys are refused, as everywhere else. */
export const invokeEnvelope = z.strictObject({
  resource: z.string().min(1).max(100),
  action: z.string().min(1).max(100),
  id: z.unknown().optional(),
  data: z.unknown().optional(),
});

/** Fields any action's `data` may carry; only `internal_admin` may use them. */
export const adminFields = z.object({
  adminMode: z.boolean().optional().describe('internal_admin only: act across every account; objects carry `owner`.'),
  userId: uuid().optional().describe('internal_admin only: act as this user.'),
});

const idSchema = uuid({ message: 'must be a UUID' });

export interface DispatchDeps {
  /** The API: `src/resources/index.ts`. */
  registry: ActionRegistry;
  db: Db;
  maxActiveGoals: number;
  services: Services;
  /** The limiters an action's `rateLimit` names, each counting per user (src/auth/rate-limit.ts makes them). */
  limiters: Record<ActionRateLimit, { consume(key: string): Promise<unknown> }>;
  /**
   * Validate every answer against its action's `output` schema, and fail (500) on a mismatch: the test suite
   * turns it on so that a handler drifting from its declared answer fails a test. Off in production (the hot path
   * does not pay for it; the handler's return type is already checked at compile time).
   */
  checkAnswers?: boolean;
}

export interface DispatchResult {
  status: 200 | 201;
  data: unknown;
  /** The stored answer of an earlier request with the same Idempotency-Key (HTTP: `Idempotent-Replayed: true`). */
  replayed?: true;
}

/** What a transport passes to `prepare` beside the envelope. */
export interface PrepareOptions {
  /**
   * The request's `Idempotency-Key` (HTTP header, WebSocket frame field `idempotencyKey`): a write then runs once, and
   * its retries answer the same (src/rpc/idempotency.ts). Ignored for a read-only action.
   */
  idempotencyKey?: string;
}

/** What a transport hands the handler beside the input: cancellation, and a channel for progress. */
export interface RunOptions {
  /** Aborted when the client goes away (SSE, WebSocket) so upstream work stops. */
  signal?: AbortSignal;
  /** Called with each progress event of a streaming action. */
  onProgress?: (event: ProgressEvent) => void;
}

/** A validated call, ready to run: transports decide how to deliver its answer. */
export interface PreparedCall {
  action: Action;
  run(options?: RunOptions): Promise<DispatchResult>;
}

/** Finds `resource.action` in the registry, or throws INVALID_RESOURCE / INVALID_ACTION. */
export function lookupAction(registry: ActionRegistry, resource: string, action: string): Action {
  if (!Object.hasOwn(registry, resource)) {
    throw new AppError({
      code: 'INVALID_RESOURCE',
      message: `Unknown resource "${resource.slice(0, 100)}"; expected one of: ${Object.keys(registry).join(', ')}`,
    });
  }
  const actions = registry[resource]!;
  if (!Object.hasOwn(actions, action)) {
    throw new AppError({
      code: 'INVALID_ACTION',
      message: `Unknown action "${action.slice(0, 100)}" for ${resource}; expected one of: ${Object.keys(actions).join(', ')}`,
    });
  }
  return actions[action]!;
}

/**
 * The whole protocol after authentication, up to the handler: validate the envelope, look up the action, check
 * the role, validate `id` and `data`, count an action's own rate limit. It knows nothing about any resource.
 * The answer runs the handler; a transport that streams (SSE, WebSocket) opens its stream in between, so a
 * request refused here is answered as a plain error before any stream opens.
 */
export async function prepare(
  deps: DispatchDeps,
  principal: Principal,
  body: unknown,
  options: PrepareOptions = {},
): Promise<PreparedCall> {
  const envelope = invokeEnvelope.safeParse(body);
  if (!envelope.success) throw validationError(envelope.error.issues);
  const { resource, action: actionName, id: rawId, data: rawData } = envelope.data;
  const action = lookupAction(deps.registry, resource, actionName);
  const id = parseId(action, rawId, `${resource}.${actionName}`);
  const { admin, data } = splitData(rawData);
  const scope = await resolveScope(deps.db, principal, admin);
  if (!action.readOnly && principal.role === 'consumer') {
    throw new AppError({ code: 'FORBIDDEN', message: 'The consumer role is read-only: list and get only' });
  }
  const input = action.input.safeParse(data);
  if (!input.success) throw validationError(input.error.issues, ['data']);
  // Per user, not per credential: several keys of one user share one budget of expensive calls.
  // Keyed by the credential's user; the request as sent (admin fields included) is what a retry must repeat.
  const claim =
    options.idempotencyKey !== undefined && !action.readOnly
      ? idempotencyClaim(principal.userId, options.idempotencyKey, { resource, action: actionName, id: rawId, data: rawData })
      : undefined;
  if (action.rateLimit) await deps.limiters[action.rateLimit].consume(principal.userId);

  const execute = async (db: Db, options: RunOptions): Promise<DispatchResult> => {
    const ctx = createContext({
      db,
      principal,
      scope,
      maxActiveGoals: deps.maxActiveGoals,
      services: deps.services,
      signal: options.signal,
      progress: options.onProgress,
    });
    const result = await action.handler({ id, input: input.data, ctx });
    if (deps.checkAnswers) checkAnswer(action, result, `${resource}.${actionName}`);
    return { status: action.created ? 201 : 200, data: result };
  };
  return {
    action,
    run: claim
      ? (options = {}) => runOnce(deps.db, claim, (db) => execute(db, options), action.secretFields)
      : (options = {}) => execute(deps.db, options),
  };
}

function checkAnswer(action: Action, result: unknown, name: string): void {
  const checked = action.output.safeParse(result);
  if (!checked.success) {
    throw new Error(`The answer of ${name} does not match its output schema: ${z.prettifyError(checked.error)}`);
  }
}

/** The envelope's `id`: a UUID for an action that takes one, absent otherwise (`''` then). */
function parseId(action: Action, rawId: unknown, name: string): string {
  if (!action.id) {
    if (rawId === undefined) return '';
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: `id: ${name} takes no id`,
      details: [{ path: ['id'], message: 'not expected for this action', type: 'unrecognized_keys' }],
    });
  }
  const parsed = idSchema.safeParse(rawId);
  if (parsed.success) return parsed.data;
  throw rawId === undefined
    ? new AppError({ code: 'VALIDATION_ERROR', message: 'id: required', details: [{ path: ['id'], message: 'required', type: 'invalid_type' }] })
    : validationError(parsed.error.issues, ['id']);
}

/** `data` split into the admin fields (validated here) and the action's own input (validated by the action). */
function splitData(rawData: unknown): { admin: z.output<typeof adminFields>; data: Record<string, unknown> } {
  if (rawData !== undefined && (rawData === null || typeof rawData !== 'object' || Array.isArray(rawData))) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'data: must be an object',
      details: [{ path: ['data'], message: 'must be an object', type: 'invalid_type' }],
    });
  }
  const { adminMode, userId, ...data } = (rawData ?? {}) as Record<string, unknown>;
  const admin = adminFields.safeParse({ adminMode, userId });
  if (!admin.success) throw validationError(admin.error.issues, ['data']);
  return { admin: admin.data, data };
}

async function resolveScope(db: Db, principal: Principal, admin: z.output<typeof adminFields>): Promise<Scope> {
  const own: Scope = { ownerId: principal.userId, actingUserId: principal.userId, admin: false };
  if (admin.adminMode === undefined && admin.userId === undefined) return own;
  // Passing either field at all (even `adminMode: false`) is for admins only.
  if (principal.role !== 'internal_admin') {
    throw new AppError({ code: 'FORBIDDEN', message: 'adminMode and userId need the internal_admin role' });
  }
  if (admin.adminMode !== true && admin.userId === undefined) return own;
  if (admin.userId !== undefined) {
    const user = await db.selectFrom('users').select('id').where('id', '=', admin.userId).executeTakeFirst();
    if (!user) throw new AppError({ code: 'NOT_FOUND', message: 'data.userId: no such user' });
    return { ownerId: admin.userId, actingUserId: admin.userId, admin: true };
  }
  return { ownerId: null, actingUserId: principal.userId, admin: true };
}
