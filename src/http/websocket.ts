import { upgradeWebSocket } from '@hono/node-server';
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { WSContext } from 'hono/ws';
import { z } from 'zod';
import type { RateLimitVerdict } from '../auth/rate-limit.ts';
import { uuid } from '../lib/zod.ts';
import type { Logger } from '../logger.ts';
import { prepare } from '../rpc/dispatch.ts';
import { AppError, errorEnvelope, logFailure, toAppError, validationError } from '../rpc/errors.ts';
import { admit, headerCredentials, type Admitted, type AdmissionDeps, type Credentials } from './admission.ts';

// The invoke protocol over one WebSocket (`GET /v1/ws`). After authenticating — the upgrade's
// `Authorization`/`X-API-Key` header, or a first `{"type":"auth","token":…}` frame — a client sends
// request frames `{ request_id, resource, action, id?, data?, idempotencyKey? }` and gets, for each, any number of
// `{ request_id, type: "progress", … }` frames and exactly one `{ request_id, type: "result", success,
// status, data | error }`. Several requests may be in flight at once; their answers interleave.
//
// Each request goes through the admission step of HTTP (admission.ts) — the credentials checked again (cached,
// so a revoked key or an expired token stops working on an open socket too), one point of the credential's
// rate limit, then `prepare` and `run` of the dispatcher — and fails with the same error envelope.
// Frames that are not requests (binary, too big, not JSON, no `request_id`) get an `{ type: "error",
// request_id: null, success: false, error }` frame (and, on an authenticated socket, cost a point as well); the socket stays open.

/** Requests one socket may have in flight; beyond, RATE_LIMIT_EXCEEDED until one finishes. */
export const MAX_IN_FLIGHT = 32;
/** How long a socket may stay open without credentials. */
export const AUTH_TIMEOUT_MS = 30_000;

/**
 * Close codes: 1008 policy violation (credentials refused or never sent), 1013 try again later (the credentials
 * could not be checked: the database or the identity provider is away), 1001 going away (shutdown).
 */
const CLOSE_POLICY = 1008;
const CLOSE_TRY_AGAIN_LATER = 1013;
const CLOSE_GOING_AWAY = 1001;
const OPEN = 1;

const requestIdSchema = z.union([z.string().min(1).max(200), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]);
type RequestId = z.output<typeof requestIdSchema>;

const authFrame = z.strictObject({
  type: z.literal('auth'),
  token: z.string().min(1).max(8192).describe('An API key, a session JWT, or the service key.'),
  user_id: uuid().optional().describe('With the service key: the user to act as (the `x-user-id` header of HTTP).'),
  request_id: requestIdSchema.optional(),
});

interface Session {
  socket: WSContext;
  credentials: Credentials | null;
  /** Request frames whose answer is not sent yet, by request id. */
  inFlight: Map<RequestId, AbortController>;
  /** Frames are admitted (auth, rate limit) one after another, in the order they came. */
  admission: Promise<void>;
  closed: boolean;
  authTimer?: NodeJS.Timeout;
}

/**
 * The open sockets of one server, so that shutdown can drain them: no new request frames, the ones in
 * flight answered, then every socket closed with 1001.
 *
 * @example const hub = createWebSocketHub(); const app = createApp({ ...deps, webSockets: hub });
 *          await hub.drain(10_000);
 */
export function createWebSocketHub() {
  const sessions = new Set<Session>();
  let draining = false;
  return {
    add: (session: Session) => void sessions.add(session),
    remove: (session: Session) => void sessions.delete(session),
    get draining() {
      return draining;
    },
    /** How many sockets are open (for tests and metrics). */
    get size() {
      return sessions.size;
    },
    async drain(timeoutMs: number): Promise<void> {
      draining = true;
      const deadline = Date.now() + timeoutMs;
      while ([...sessions].some((s) => s.inFlight.size > 0) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      for (const session of sessions) session.socket.close(CLOSE_GOING_AWAY, 'server shutting down');
    },
  };
}

export type WebSocketHub = ReturnType<typeof createWebSocketHub>;

export interface WebSocketDeps extends AdmissionDeps {
  logger: Logger;
  /** The largest text frame accepted (the HTTP body limit); larger ones get PAYLOAD_TOO_LARGE. */
  maxFrameBytes: number;
  hub: WebSocketHub;
}

/**
 * The `GET /v1/ws` handler: upgrades to a WebSocket speaking the invoke protocol. Needs a server made
 * with `websocket: { server: new WebSocketServer({ noServer: true }) }` (see `listen` in server.ts).
 */
export function webSocketRoute(deps: WebSocketDeps): MiddlewareHandler {
  return upgradeWebSocket(async (c) => {
    const headers = headerCredentials(c.req);
    const sentCredentials = headers.authorization !== undefined || headers.apiKey !== undefined;
    // Checked before the upgrade; a refusal is answered as the socket's first frame, then it closes.
    const refusal = sentCredentials ? await refusalOf(deps, headers) : undefined;
    let session: Session | undefined;
    return {
      onOpen: (_event, socket) => {
        session = { socket, credentials: null, inFlight: new Map(), admission: Promise.resolve(), closed: false };
        deps.hub.add(session);
        if (refusal) refuse(session, refusal);
        else if (sentCredentials) session.credentials = headers;
        else startAuthTimer(session);
      },
      onMessage: (event) => {
        if (!session || session.closed) return;
        void onFrame(deps, session, event.data).catch((error) => {
          deps.logger.error('websocket frame failed', { error: error instanceof Error ? error.stack : String(error) });
        });
      },
      onClose: () => {
        if (!session) return;
        session.closed = true;
        clearTimeout(session.authTimer);
        // Streaming calls in flight stop their upstream work; nobody is left to answer.
        for (const controller of session.inFlight.values()) controller.abort(new Error('websocket closed'));
        deps.hub.remove(session);
      },
    };
  });
}

/** Why the upgrade's credentials are refused, if they are. */
async function refusalOf(deps: WebSocketDeps, credentials: Credentials): Promise<AppError | undefined> {
  try {
    await deps.authenticator.authenticate(credentials);
    return undefined;
  } catch (error) {
    return toAppError(error);
  }
}

/** Answers the refusal of the upgrade's credentials as the first frame, then closes the socket. */
function refuse(session: Session, refusal: AppError): void {
  send(session, { type: 'error', request_id: null, ...envelope(refusal) });
  if (refusal.code === 'SERVICE_UNAVAILABLE') session.socket.close(CLOSE_TRY_AGAIN_LATER, 'credentials could not be checked');
  else session.socket.close(CLOSE_POLICY, 'credentials refused');
}

/** A socket opened without credentials has `AUTH_TIMEOUT_MS` to send an auth frame. */
function startAuthTimer(session: Session): void {
  session.authTimer = setTimeout(() => {
    if (session.credentials || session.closed) return;
    send(session, {
      type: 'error',
      request_id: null,
      ...envelope(new AppError({ code: 'UNAUTHORIZED', message: `No credentials within ${AUTH_TIMEOUT_MS / 1000} s` })),
    });
    session.socket.close(CLOSE_POLICY, 'authentication timeout');
  }, AUTH_TIMEOUT_MS);
  session.authTimer.unref();
}

/** A frame refused before it is known to be a request: its answer has no request id. */
class FrameError extends Error {
  constructor(readonly appError: AppError) {
    super(appError.message);
  }
}

async function onFrame(deps: WebSocketDeps, session: Session, raw: unknown): Promise<void> {
  let frame: Record<string, unknown>;
  try {
    frame = decode(raw, deps.maxFrameBytes);
  } catch (error) {
    await refuseFrame(deps, session, error instanceof FrameError ? error.appError : toAppError(error));
    return;
  }
  if (frame.type === 'auth') {
    await inFrameOrder(session, () => authenticateFrame(deps, session, frame));
    return;
  }
  const requestId = requestIdSchema.safeParse(frame.request_id);
  if (!requestId.success) {
    await refuseFrame(
      deps,
      session,
      frame.request_id === undefined
        ? new AppError({
            code: 'VALIDATION_ERROR',
            message: 'request_id: required, a string (1–200 characters) or an integer, echoed in every answer',
            details: [{ path: ['request_id'], message: 'required', type: 'invalid_type' }],
          })
        : validationError(requestId.error.issues, ['request_id']),
    );
    return;
  }
  await onRequest(deps, session, frame, requestId.data);
}

/** Answers a frame that is not a request; on an authenticated socket it counts against the limit like any HTTP request. */
async function refuseFrame(deps: WebSocketDeps, session: Session, error: AppError): Promise<void> {
  const limited = session.credentials ? await consumeQuietly(deps, session) : undefined;
  send(session, { type: 'error', request_id: null, ...envelope(limited ?? error) });
}

/** A request frame: admitted in frame order, then prepared and run beside the others in flight. */
async function onRequest(deps: WebSocketDeps, session: Session, frame: Record<string, unknown>, id: RequestId): Promise<void> {
  const serverRequestId = randomUUID();
  const result = resultSender(session, id, serverRequestId);
  const refusal = inFlightRefusal(session, id);
  if (refusal) return result(refusal);
  const controller = new AbortController();
  session.inFlight.set(id, controller);
  let verdict: RateLimitVerdict | undefined;
  try {
    if (deps.hub.draining) throw new AppError({ code: 'SERVICE_UNAVAILABLE', message: 'The server is shutting down; reconnect' });
    // Admission in frame order: an auth frame sent just before takes effect first.
    const admitted = await inFrameOrder(session, () => admitFrame(deps, session));
    verdict = admitted.verdict;
    const call = await prepare(deps.dispatch, admitted.principal, requestEnvelope(frame), idempotencyOf(frame));
    const answer = await call.run({
      signal: controller.signal,
      onProgress: (progress) => send(session, { ...progress, request_id: id, type: 'progress' }),
    });
    if (!controller.signal.aborted) result(answer, verdict);
  } catch (error) {
    if (controller.signal.aborted) return;
    const appError = toAppError(error);
    logFailure(deps.logger, {
      message: 'websocket request failed',
      appError,
      thrown: error,
      fields: { request_id: serverRequestId, client_request_id: frame.request_id, resource: frame.resource, action: frame.action },
    });
    result(appError, verdict ?? rateLimitOf(appError));
  } finally {
    session.inFlight.delete(id);
  }
}

/** The frame's `idempotencyKey` (the `Idempotency-Key` header of HTTP); VALIDATION_ERROR when it is not a string. */
function idempotencyOf(frame: Record<string, unknown>): { idempotencyKey?: string } | undefined {
  const key = frame.idempotencyKey;
  if (key === undefined) return undefined;
  if (typeof key === 'string') return { idempotencyKey: key };
  throw new AppError({
    code: 'VALIDATION_ERROR',
    message: 'idempotencyKey: a string of 1 to 255 printable ASCII characters',
    details: [{ path: ['idempotencyKey'], message: 'expected a string', type: 'invalid_type' }],
  });
}

/** Sends the one `result` frame of a request: the success or error envelope, and the `rate_limit` when counted. */
function resultSender(session: Session, id: RequestId, serverRequestId: string) {
  return (answer: AppError | { status: number; data: unknown; replayed?: true }, rateLimit?: RateLimitVerdict) =>
    send(session, {
      request_id: id,
      type: 'result',
      ...(answer instanceof AppError
        ? envelope(answer, serverRequestId)
        : { success: true, status: answer.status, data: answer.data, ...(answer.replayed && { replayed: true }) }),
      // The RateLimit-* headers of HTTP, as a field.
      ...(rateLimit && { rate_limit: { limit: rateLimit.limit, remaining: rateLimit.remaining, reset: rateLimit.resetSeconds } }),
    });
}

/** Why a request cannot be taken on this socket now: its id is in use, or too many are in flight. */
function inFlightRefusal(session: Session, id: RequestId): AppError | undefined {
  if (session.inFlight.has(id)) {
    return new AppError({ code: 'VALIDATION_ERROR', message: `request_id ${JSON.stringify(id)} is already in flight on this socket` });
  }
  if (session.inFlight.size >= MAX_IN_FLIGHT) {
    return new AppError({ code: 'RATE_LIMIT_EXCEEDED', message: `At most ${MAX_IN_FLIGHT} requests may be in flight on one socket` });
  }
  return undefined;
}

/** The shared admission step with the socket's credentials; UNAUTHORIZED when it has none yet. */
async function admitFrame(deps: WebSocketDeps, session: Session): Promise<Admitted> {
  if (!session.credentials) {
    throw new AppError({
      code: 'UNAUTHORIZED',
      message: 'Authenticate first: an Authorization or X-API-Key header on the upgrade, or a {"type":"auth","token":"…"} frame',
    });
  }
  return admit(deps, session.credentials);
}

/** A request frame without its `request_id` and `type`: the invoke envelope. */
function requestEnvelope(frame: Record<string, unknown>): Record<string, unknown> {
  const { request_id: _id, type, idempotencyKey: _key, ...envelopeFields } = frame;
  if (type !== undefined && type !== 'request') {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'type: a frame is "auth", or a request (type omitted or "request")',
      details: [{ path: ['type'], message: 'expected "auth" or "request"', type: 'invalid_value' }],
    });
  }
  return envelopeFields;
}

/** Text → the frame object, or a FrameError saying why not. */
function decode(raw: unknown, maxBytes: number): Record<string, unknown> {
  if (typeof raw !== 'string') {
    throw new FrameError(
      new AppError({ code: 'VALIDATION_ERROR', message: 'Binary frames are not part of the protocol; send JSON as text frames' }),
    );
  }
  if (Buffer.byteLength(raw, 'utf8') > maxBytes) {
    throw new FrameError(new AppError({ code: 'PAYLOAD_TOO_LARGE', message: `A frame is limited to ${maxBytes} bytes` }));
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new FrameError(
      new AppError({
        code: 'VALIDATION_ERROR',
        message: `Malformed JSON: ${error instanceof SyntaxError ? error.message : 'could not parse the frame'}`,
      }),
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError(
      new AppError({
        code: 'VALIDATION_ERROR',
        message: 'A frame is a JSON object: {"request_id", "resource", "action", "id"?, "data"?} or {"type":"auth","token"}',
      }),
    );
  }
  return value as Record<string, unknown>;
}

/** `{type:"auth", token, user_id?}`: replaces the socket's credentials when they are good. */
async function authenticateFrame(deps: WebSocketDeps, session: Session, frame: Record<string, unknown>): Promise<void> {
  const requestId = requestIdSchema.safeParse(frame.request_id).data ?? null;
  try {
    const parsed = authFrame.safeParse(frame);
    if (!parsed.success) throw validationError(parsed.error.issues);
    const credentials: Credentials = { authorization: `Bearer ${parsed.data.token}`, userId: parsed.data.user_id };
    const principal = await deps.authenticator.authenticate(credentials);
    session.credentials = credentials;
    clearTimeout(session.authTimer);
    send(session, { type: 'auth', request_id: requestId, success: true, data: { user_id: principal.userId, role: principal.role } });
  } catch (error) {
    const appError = toAppError(error);
    const serverRequestId = randomUUID();
    logFailure(deps.logger, { message: 'websocket request failed', appError, thrown: error, fields: { request_id: serverRequestId } });
    send(session, { type: 'auth', request_id: requestId, ...envelope(appError, serverRequestId) });
  }
}

/** Runs `step` after every frame admitted before it. */
function inFrameOrder<T>(session: Session, step: () => Promise<T>): Promise<T> {
  const run = session.admission.then(step);
  session.admission = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

/** One point for a frame that is not a request; the 429 if that was one too many, else nothing. */
async function consumeQuietly(deps: WebSocketDeps, session: Session): Promise<AppError | undefined> {
  try {
    await inFrameOrder(session, () => admit(deps, session.credentials!));
    return undefined;
  } catch (error) {
    const appError = toAppError(error);
    return appError.code === 'RATE_LIMIT_EXCEEDED' ? appError : undefined;
  }
}

/** The RateLimit-* headers of a 429, as the frame's `rate_limit`. */
function rateLimitOf(error: AppError): RateLimitVerdict | undefined {
  const h = error.headers;
  if (error.code !== 'RATE_LIMIT_EXCEEDED' || !h?.['RateLimit-Limit']) return undefined;
  return { limit: Number(h['RateLimit-Limit']), remaining: Number(h['RateLimit-Remaining']), resetSeconds: Number(h['RateLimit-Reset']) };
}

/**
 * The error envelope of HTTP. Its `request_id` is the server's own id for the frame (the one in the
 * logs), as `X-Request-Id` is for an HTTP request; the frame's `request_id` is the client's.
 */
const envelope = (error: AppError, serverRequestId: string = randomUUID()) => errorEnvelope(error, serverRequestId);

function send(session: Session, frame: Record<string, unknown>): void {
  if (session.closed || session.socket.readyState !== OPEN) return;
  session.socket.send(JSON.stringify(frame));
}
