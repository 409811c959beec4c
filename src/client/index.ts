// goalpost/client: the typed client of the Goalpost API, for browsers and Node ≥ 20 (anything with `fetch`).
// Its types are generated from the server's registry (./actions.gen.ts); at run time it is this file alone: no
// server code, no Node-only module, no dependency but a small SSE parser.
import { createParser } from 'eventsource-parser';
import type { Actions, ApiErrorCode } from './actions.gen.js';

export type { Actions, ApiErrorCode } from './actions.gen.js';
export type * from './actions.gen.js';

export type Resource = keyof Actions;
export type ActionOf<R extends Resource> = keyof Actions[R] & string;
type Def<R extends Resource, A extends ActionOf<R>> = Actions[R][A] extends {
  input: infer I;
  output: infer O;
  takesId: infer T;
  streams: infer S;
  readOnly: infer W;
}
  ? { input: I; output: O; takesId: T; streams: S; readOnly: W }
  : never;

/** The `data` an action takes. */
export type Input<R extends Resource, A extends ActionOf<R>> = Def<R, A>['input'];
/** The `data` of an action's answer. */
export type Output<R extends Resource, A extends ActionOf<R>> = Def<R, A>['output'];

/** `{}` when an action's every field is optional (then `data` may be left out). */
type DataField<I> = {} extends I ? { data?: I } : { data: I };
type IdField<T> = T extends true ? { id: string } : { id?: never };

/** A call: the resource, the action, its `id` where it takes one, its `data` (required when it has a required field). */
export type Call<R extends Resource, A extends ActionOf<R>> = { resource: R; action: A } & IdField<Def<R, A>['takesId']> &
  DataField<Input<R, A>>;

/** The actions that stream progress (`stream` takes these). */
export type StreamingAction<R extends Resource> = { [A in ActionOf<R>]: Def<R, A>['streams'] extends true ? A : never }[ActionOf<R>];

/** The error envelope's `error`. `INVALID_RESPONSE` is the client's own: the server's answer was not the API's JSON. */
export interface ApiError {
  code: ApiErrorCode | 'INVALID_RESPONSE';
  message: string;
  status: number;
  details?: unknown;
  request_id: string | null;
}

/** What `invoke` resolves to: the API's envelope, as `ApiService.invoke` gives it. */
export type Envelope<T> = { success: true; data: T } | { success: false; error: ApiError };

/** An answer of the API that is an error (`call` and `stream` throw it). */
export class GoalpostError extends Error {
  readonly code: ApiError['code'];
  readonly status: number;
  readonly details: unknown;
  readonly requestId: string | null;

  constructor(error: ApiError) {
    super(error.message);
    this.name = 'GoalpostError';
    this.code = error.code;
    this.status = error.status;
    this.details = error.details;
    this.requestId = error.request_id;
  }
}

/** No answer at all: the server could not be reached, the connection broke, or the call was aborted. */
export class GoalpostNetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GoalpostNetworkError';
  }
}

export interface ClientOptions {
  /** Where the API is, e.g. `https://goalpost.example.com` (the client adds `/v1`). */
  baseUrl: string;
  /** An API key (`gp_live_…`), sent as `Authorization: Bearer`. */
  apiKey?: string;
  /** A session JWT, sent as `Authorization: Bearer`. */
  token?: string;
  /** Any other headers, on every request (e.g. the service key and `x-user-id`). */
  headers?: Record<string, string>;
  /** The `fetch` to use; the global one by default. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Sent as `Idempotency-Key` (writes): a retry with the same key answers the first result and writes nothing. */
  idempotencyKey?: string;
  /** Aborts the request (a `GoalpostNetworkError` then). */
  signal?: AbortSignal;
}

/** One event of `stream`: the action's progress, then its result. */
export type StreamEvent<T> = { type: 'progress'; data: { stage: string; [key: string]: unknown } } | { type: 'result'; data: T };

/**
 * A client of the Goalpost API.
 *
 * @example
 * const goalpost = createClient({ baseUrl: 'http://localhost:8787', apiKey: process.env.GOALPOST_API_KEY });
 * const goal = await goalpost.call({ resource: 'goals', action: 'create', data: { name: 'Qualify leads' } });
 * const page = await goalpost.invoke({ resource: 'goals', action: 'list', data: { limit: 10 } });
 * if (page.success) console.log(page.data.items.map((g) => g.name));
 */
export function createClient(options: ClientOptions) {
  const endpoint = `${options.baseUrl.replace(/\/+$/, '')}/v1`;
  const doFetch = options.fetch ?? ((...args: Parameters<typeof fetch>) => globalThis.fetch(...args));
  const credential = options.apiKey ?? options.token;

  async function send(call: object, callOptions: CallOptions, accept: string): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept, ...options.headers };
    if (credential) headers.authorization = `Bearer ${credential}`;
    if (callOptions.idempotencyKey !== undefined) headers['idempotency-key'] = callOptions.idempotencyKey;
    try {
      return await doFetch(endpoint, { method: 'POST', headers, body: JSON.stringify(call), signal: callOptions.signal });
    } catch (error) {
      throw new GoalpostNetworkError(`Could not reach ${endpoint}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }

  async function invoke<R extends Resource, A extends ActionOf<R>>(call: Call<R, A>, callOptions: CallOptions = {}): Promise<Envelope<Output<R, A>>> {
    const response = await send(call, callOptions, 'application/json');
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new GoalpostNetworkError(`The answer from ${endpoint} broke off: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    return readEnvelope<Output<R, A>>(response, text);
  }

  return {
    /** Runs an action; resolves to the API's envelope, success or error (rejects only with `GoalpostNetworkError`). */
    invoke,

    /** Runs an action; resolves to its `data`, or throws `GoalpostError` (or `GoalpostNetworkError`). */
    async call<R extends Resource, A extends ActionOf<R>>(call: Call<R, A>, callOptions: CallOptions = {}): Promise<Output<R, A>> {
      const envelope = await invoke(call, callOptions);
      if (!envelope.success) throw new GoalpostError(envelope.error);
      return envelope.data;
    },

    /**
     * Runs a streaming action (`goals.generate`, `goals.generate-roadmap`) as Server-Sent Events: yields its progress
     * events, then its result, and ends; an error answer throws `GoalpostError`.
     */
    async *stream<R extends Resource, A extends StreamingAction<R>>(
      call: Call<R, A>,
      callOptions: CallOptions = {},
    ): AsyncGenerator<StreamEvent<Output<R, A>>, void, undefined> {
      const response = await send(call, callOptions, 'text/event-stream');
      if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
        // Refused before the stream opened (validation, auth, rate limit): a plain answer.
        const envelope = readEnvelope<Output<R, A>>(response, await response.text().catch(() => ''));
        if (!envelope.success) throw new GoalpostError(envelope.error);
        yield { type: 'result', data: envelope.data };
        return;
      }
      const queue: { event: string | undefined; data: string }[] = [];
      const parser = createParser({ onEvent: (event) => queue.push({ event: event.event, data: event.data }) });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (error) {
            throw new GoalpostNetworkError('The event stream broke off', { cause: error });
          }
          if (chunk.done) break;
          parser.feed(chunk.value);
          while (queue.length > 0) {
            const { event, data } = queue.shift()!;
            const parsed = parseJson(data);
            if (event === 'progress') yield { type: 'progress', data: parsed as { stage: string } };
            else if (event === 'result') {
              yield { type: 'result', data: (parsed as { data: Output<R, A> }).data };
              return;
            } else if (event === 'error') throw new GoalpostError(errorOf(parsed, response));
          }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
      throw new GoalpostNetworkError('The event stream ended without a result');
    },
  };
}

export type GoalpostClient = ReturnType<typeof createClient>;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The answer as the API's envelope; anything else (a proxy's HTML page, an empty body) as INVALID_RESPONSE. */
function readEnvelope<T>(response: Response, text: string): Envelope<T> {
  const body = parseJson(text) as { success?: unknown; data?: unknown; error?: unknown } | undefined;
  if (body && typeof body === 'object' && body.success === true && 'data' in body) return { success: true, data: body.data as T };
  return { success: false, error: errorOf(body, response) };
}

function errorOf(body: unknown, response: Response): ApiError {
  const error = (body as { success?: unknown; error?: Partial<ApiError> } | undefined)?.error;
  if ((body as { success?: unknown } | undefined)?.success === false && error && typeof error.code === 'string' && typeof error.message === 'string') {
    return {
      code: error.code,
      message: error.message,
      status: typeof error.status === 'number' ? error.status : response.status,
      ...(error.details !== undefined && { details: error.details }),
      request_id: error.request_id ?? response.headers.get('x-request-id'),
    };
  }
  const type = response.headers.get('content-type') ?? 'no content type';
  return {
    code: 'INVALID_RESPONSE',
    message: `The server answered ${response.status} with ${type}, not the API's JSON envelope (a proxy or another server in between?)`,
    status: response.status,
    request_id: response.headers.get('x-request-id'),
  };
}
