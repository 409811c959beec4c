import { z } from 'zod';
import { outputJsonSchema, plainJsonSchema } from '../lib/json-schema.ts';
import type { Action, ActionRegistry } from './action.ts';
import { adminFields } from './dispatch.ts';
import { errorStatus } from './errors.ts';

type JsonSchema = Record<string, unknown>;

// The OpenAPI 3.1 document, derived from the registry: every action's input and answer come from its zod schemas.
// Shared answer shapes (those given `.meta({ id })`, such as `Goal`) become named components, referenced from each
// answer that holds them, so that generated clients get one `Goal` type.

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });

/** An id in examples: a well-formed UUID that names nothing (those actions answer NOT_FOUND for it). */
const EXAMPLE_ID = '00000000-0000-4000-8000-000000000000';

const errorEnvelope: JsonSchema = {
  type: 'object',
  required: ['success', 'error'],
  properties: {
    success: { const: false },
    error: {
      type: 'object',
      required: ['code', 'message', 'status', 'request_id'],
      properties: {
        code: { enum: Object.keys(errorStatus) },
        message: { type: 'string' },
        status: { type: 'integer', description: 'The HTTP status.' },
        request_id: { type: 'string', description: 'The `X-Request-Id` of the request; the log line of a 5xx carries it too.' },
        details: {
          description: 'VALIDATION_ERROR: the issues, as a list. CONFLICT: the current state, e.g. `{ updated_at }`.',
          oneOf: [
            {
              type: 'array',
              items: {
                type: 'object',
                required: ['path', 'message', 'type'],
                properties: {
                  path: { type: 'array', items: { type: ['string', 'integer'] } },
                  message: { type: 'string' },
                  type: { type: 'string' },
                },
              },
            },
            { type: 'object' },
          ],
        },
      },
    },
  },
};

const retryAfter = { 'Retry-After': { description: 'Seconds to wait before trying again.', schema: { type: 'integer' } } };

/** The error answers an operation may give, by status: each is the one error envelope. */
const errorResponses: Record<string, { description: string; headers?: object }> = {
  '400': { description: 'VALIDATION_ERROR (malformed JSON, a bad field, `details` lists the issues), INVALID_ACTION or INVALID_RESOURCE.' },
  '401': { description: 'UNAUTHORIZED (no credentials), INVALID_KEY_PREFIX, KEY_NOT_FOUND or INVALID_TOKEN.' },
  '403': { description: 'FORBIDDEN: a write by the read-only consumer role, or admin fields without the internal_admin role.' },
  '404': { description: 'NOT_FOUND or AGENT_NOT_FOUND: the record does not exist or is not yours (never which).' },
  '409': { description: 'CONFLICT: a precondition failed (a stale `expected_updated_at`, a limit reached), or a request with the same `Idempotency-Key` is still running.' },
  '413': { description: 'PAYLOAD_TOO_LARGE: the body is over the limit (1 MiB by default); the connection is closed after it.' },
  '422': { description: 'IDEMPOTENCY_KEY_REUSED: the `Idempotency-Key` was used for a different request.' },
  '429': { description: 'RATE_LIMIT_EXCEEDED: over the per-credential limit.', headers: retryAfter },
  '500': { description: 'INTERNAL_ERROR: a bug; the log has its stack under the request id.' },
  '502': { description: 'UPSTREAM_ERROR: the AI provider failed or answered something that does not validate.' },
  '503': { description: 'SERVICE_UNAVAILABLE: the database cannot be reached; retry after `Retry-After`.', headers: retryAfter },
};

const rateLimitHeaders = {
  'RateLimit-Limit': { description: 'Requests allowed per window for this credential.', schema: { type: 'integer' } },
  'RateLimit-Remaining': { description: 'Requests left in this window.', schema: { type: 'integer' } },
  'RateLimit-Reset': { description: 'Seconds until the window resets.', schema: { type: 'integer' } },
};

/** The statuses an action's operation documents, from what the action is. */
function errorStatusesOf(action: Action): string[] {
  const statuses = ['400', '401', '403', '404', '413', '429', '500', '503'];
  if (!action.readOnly) statuses.push('409', '422');
  if (action.rateLimit === 'generate') statuses.push('502');
  return statuses.sort();
}

const errorsOf = (statuses: string[]) => Object.fromEntries(statuses.map((status) => [status, { $ref: `#/components/responses/${status}` }]));

/** The answers' JSON Schemas, with the shared shapes they hold collected as named components. */
class AnswerSchemas {
  readonly shared: Record<string, JsonSchema> = {};

  /** The JSON Schema of an answer's `data`; a shape with an `id` (see `outputs.ts`) is a `$ref` to its component. */
  of(output: z.ZodType): JsonSchema {
    const { schema, defs, id } = outputJsonSchema(output);
    for (const [name, def] of Object.entries(defs)) this.shared[name] ??= tidy(def);
    if (id) {
      this.shared[id] ??= tidy(schema);
      return ref(id);
    }
    return tidy(schema);
  }
}

/** Refs into `components/schemas`, and no `pattern` beside a `format` that already says it (uuid, date-time, date). */
function tidy(node: unknown): any {
  if (Array.isArray(node)) return node.map(tidy);
  if (typeof node !== 'object' || node === null) return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string') out.$ref = value.replace('#/$defs/', '#/components/schemas/');
    else if (key === 'pattern' && ['uuid', 'date-time', 'date'].includes((node as JsonSchema).format as string)) continue;
    else out[key] = tidy(value);
  }
  return out;
}

interface Operation {
  resource: string;
  name: string;
  action: Action;
  /** The JSON Schema of the action's `data`. */
  data: JsonSchema;
  /** The success envelope of its answer. */
  answer: JsonSchema;
}

/**
 * The OpenAPI 3.1 document: every action at `POST /v1/{resource}/{action}` (body `{id?, data}`), `POST /v1` taking
 * any of them as an envelope, the REST-style routes, the WebSocket, MCP and the operational endpoints.
 *
 * @example app.get('/openapi.json', (c) => c.json(buildOpenApi(registry)));
 */
export function buildOpenApi(registry: ActionRegistry, options: { serverUrl?: string } = {}) {
  const answers = new AnswerSchemas();
  const operations: Operation[] = [];
  for (const [resource, actions] of Object.entries(registry)) {
    for (const [name, action] of Object.entries(actions as Record<string, Action>)) {
      const data = plainJsonSchema(action.input);
      const answer = { type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data: answers.of(action.output) } };
      operations.push({ resource, name, action, data, answer });
    }
  }

  const paths: Record<string, Record<string, unknown>> = {
    '/v1': { post: invokeOperation(operations) },
  };
  for (const op of operations) paths[`/v1/${op.resource}/${op.name}`] = { post: actionOperation(op) };
  Object.assign(paths, restPaths(operations), servicePaths());

  return {
    openapi: '3.1.0',
    info: {
      title: 'Goalpost',
      version: '1',
      description: [
        'The goals backend for AI agents. One action-style endpoint, `POST /v1` with `{resource, action, id?, data?}`; each action is also listed at `POST /v1/{resource}/{action}` with `{id?, data}`. REST-style routes (`GET /v1/{resource}`, `GET|PATCH|DELETE /v1/{resource}/{id}`, `POST /v1/{resource}`) reach the same handlers. A WebSocket at `/v1/ws` and an MCP server at `/mcp` serve the same actions.',
        'Every answer is `{ "success": true, "data": … }` or the error envelope `{ "success": false, "error": { code, message, status, details?, request_id } }`.',
        '**Admin mode.** A caller with the `internal_admin` role may add `adminMode: true` (act across every account; records then carry `owner`) or `userId: "<uuid>"` (act as that user) to the `data` of any action — the `AdminFields` schema. They are not part of each action\'s `data` below: anyone else sending them gets FORBIDDEN.',
      ].join('\n\n'),
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: options.serverUrl ?? '/', description: 'This server' }],
    security: [{ bearer: [] }, { apiKey: [] }],
    tags: [
      { name: 'invoke', description: 'Any action through the one envelope endpoint.' },
      ...Object.keys(registry).map((resource) => ({ name: resource, description: `The ${resource} actions, at \`POST /v1/${resource}/{action}\`.` })),
      { name: 'rest', description: 'REST-style routes over the same actions.' },
      { name: 'service', description: 'Health, readiness, metrics, the WebSocket and MCP.' },
    ],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key (gp_live_…), a session JWT, or the service key with x-user-id.' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, for `GET /metrics` only.' },
      },
      responses: Object.fromEntries(
        Object.entries(errorResponses).map(([status, response]) => [status, { ...response, content: json(ref('Error')) }]),
      ),
      schemas: {
        Error: errorEnvelope,
        AdminFields: { ...plainJsonSchema(adminFields), description: 'internal_admin only: may be added to the `data` of any action.' },
        ...answers.shared,
      },
    },
  };
}

const idParameter = (resource: string) => ({
  name: 'id',
  in: 'path',
  required: true,
  description: `The ${resource} record's id.`,
  schema: { type: 'string', format: 'uuid' },
});

const idSchema = (resource: string) => ({ type: 'string', format: 'uuid', description: `The ${resource} record's id.` });

/** Whether the action's `data` must be sent: some field of it is required. */
const needsData = (op: Operation) => Array.isArray(op.data.required) && op.data.required.length > 0;

/** The `{id?, data}` body of `POST /v1/{resource}/{action}`. */
function actionBody(op: Operation): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: [...(op.action.id ? ['id'] : []), ...(needsData(op) ? ['data'] : [])],
    properties: { ...(op.action.id ? { id: idSchema(op.resource) } : {}), data: op.data },
  };
}

const exampleData = (op: Operation) => (op.action.example ?? {}) as object;

function describe(op: Operation, route: string): string {
  return [
    op.action.description,
    route,
    op.action.readOnly ? 'Allowed to the read-only consumer role.' : 'Not allowed to the read-only consumer role.',
  ]
    .filter(Boolean)
    .join('\n\n');
}

const replayedHeader = {
  'Idempotent-Replayed': {
    description: '`true` when this is the stored answer of an earlier request with the same `Idempotency-Key` (nothing was written).',
    schema: { type: 'string', enum: ['true'] },
  },
};

/** The `Idempotency-Key` header every write takes (SPEC §1). */
const idempotencyKeyParameter = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Runs the write once: a retry with the same key and the same request within 24 h answers the first answer again (with `Idempotent-Replayed: true`) and writes nothing; the key with a different request is 422, a retry while the first runs 409. Per user.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x20-\\x7E]+$' },
};

const writeParameters = (op: Operation) => (op.action.readOnly ? [] : [idempotencyKeyParameter]);

const success = (op: Operation) => ({
  [op.action.created ? '201' : '200']: {
    description: op.action.created ? 'Created' : 'Success',
    headers: op.action.readOnly ? rateLimitHeaders : { ...rateLimitHeaders, ...replayedHeader },
    content: json(op.answer),
  },
});

/** `POST /v1/{resource}/{action}`. */
function actionOperation(op: Operation) {
  const { resource, name, action } = op;
  return {
    operationId: `${resource}.${name}`,
    tags: [resource],
    summary: action.summary,
    description: describe(op, `Same as \`POST /v1\` with \`{"resource": "${resource}", "action": "${name}"${action.id ? ', "id": …' : ''}, "data": …}\`.`),
    ...(action.readOnly ? {} : { parameters: writeParameters(op) }),
    requestBody: {
      required: action.id || needsData(op),
      content: {
        'application/json': {
          schema: actionBody(op),
          example: { ...(action.id ? { id: EXAMPLE_ID } : {}), data: exampleData(op) },
        },
      },
    },
    responses: { ...success(op), ...errorsOf(errorStatusesOf(action)) },
  };
}

/** `POST /v1`: any action, named in the body. */
function invokeOperation(operations: Operation[]) {
  const envelopes = operations.map((op) => ({
    type: 'object',
    title: `${op.resource}.${op.name}`,
    additionalProperties: false,
    required: ['resource', 'action', ...(op.action.id ? ['id'] : []), ...(needsData(op) ? ['data'] : [])],
    properties: {
      resource: { const: op.resource },
      action: { const: op.name },
      ...(op.action.id ? { id: idSchema(op.resource) } : {}),
      data: op.data,
    },
  }));
  const first = operations.find((op) => op.resource === 'goals' && op.name === 'create') ?? operations[0]!;
  const answers = uniqueBy(operations.map((op) => (op.answer.properties as JsonSchema).data as JsonSchema), (s) => JSON.stringify(s));
  return {
    operationId: 'invoke',
    tags: ['invoke'],
    summary: 'Invoke any action',
    parameters: [{ ...idempotencyKeyParameter, description: `${idempotencyKeyParameter.description} Writes only; ignored for reads.` }],
    description: "The envelope names the action; its answer is that action's (see each action's own operation). 201 for the actions that create.",
    requestBody: {
      required: true,
      content: { 'application/json': { schema: { oneOf: envelopes }, example: { resource: first.resource, action: first.name, data: exampleData(first) } } },
    },
    responses: {
      '200': { description: 'Success', headers: { ...rateLimitHeaders, ...replayedHeader }, content: json({ type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data: { anyOf: answers } } }) },
      '201': { description: 'Created', headers: { ...rateLimitHeaders, ...replayedHeader }, content: json({ type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data: { anyOf: answers } } }) },
      ...errorsOf(['400', '401', '403', '404', '409', '413', '422', '429', '500', '502', '503']),
    },
  };
}

/** The REST-style routes of each resource, for the actions it has. */
function restPaths(operations: Operation[]): Record<string, Record<string, unknown>> {
  const paths: Record<string, Record<string, unknown>> = {};
  const at = (path: string) => (paths[path] ??= {});
  for (const op of operations) {
    const { resource, name, action } = op;
    const base = {
      operationId: `${resource}.${name}.rest`,
      tags: ['rest'],
      summary: `${action.summary} (REST)`,
      responses: { ...success(op), ...errorsOf(errorStatusesOf(action)) },
    };
    const bodyOf = (route: string) => ({
      ...base,
      ...(action.readOnly ? {} : { parameters: writeParameters(op) }),
      description: describe(op, route),
      requestBody: { required: needsData(op), content: { 'application/json': { schema: op.data, example: exampleData(op) } } },
    });
    if (name === 'list') {
      at(`/v1/${resource}`).get = { ...base, description: describe(op, `The query string is the \`data\` of \`${resource}.list\`.`), parameters: queryParameters(op) };
    } else if (name === 'create') {
      at(`/v1/${resource}`).post = bodyOf(`The body is the \`data\` of \`${resource}.create\`.`);
    } else if (name === 'get') {
      at(`/v1/${resource}/{id}`).get = { ...base, description: describe(op, `\`${resource}.get\`.`), parameters: [idParameter(resource)] };
    } else if (name === 'update') {
      at(`/v1/${resource}/{id}`).patch = { ...bodyOf(`The body is the \`data\` of \`${resource}.update\`.`), parameters: [idParameter(resource), ...writeParameters(op)] };
    } else if (name === 'delete') {
      at(`/v1/${resource}/{id}`).delete = { ...base, description: describe(op, `\`${resource}.delete\`.`), parameters: [idParameter(resource), ...writeParameters(op)] };
    } else if (action.readOnly && action.id) {
      at(`/v1/${resource}/{id}/${name}`).get = {
        ...base,
        description: describe(op, `The query string is the \`data\` of \`${resource}.${name}\`.`),
        parameters: [idParameter(resource), ...queryParameters(op)],
      };
    }
  }
  return paths;
}

/** A read action's `data` as query parameters (numbers and booleans are read as such). */
function queryParameters(op: Operation) {
  const properties = (op.data.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((op.data.required ?? []) as string[]);
  return Object.entries(properties).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return { name, in: 'query', required: required.has(name), ...(description ? { description } : {}), schema: rest };
  });
}

const statusAnswer = (status: string) => ({
  type: 'object',
  required: ['success', 'data'],
  properties: { success: { const: true }, data: { type: 'object', required: ['status'], properties: { status: { const: status } } } },
});

/** Health, readiness, metrics, the WebSocket and MCP. */
function servicePaths(): Record<string, Record<string, unknown>> {
  return {
    '/healthz': {
      get: {
        operationId: 'healthz',
        tags: ['service'],
        summary: 'The process is up',
        security: [],
        responses: { '200': { description: 'Up', content: json(statusAnswer('ok')) } },
      },
    },
    '/readyz': {
      get: {
        operationId: 'readyz',
        tags: ['service'],
        summary: 'The database answers',
        description: 'SERVICE_UNAVAILABLE (503) while the database cannot be reached.',
        security: [],
        responses: { '200': { description: 'Ready', content: json(statusAnswer('ready')) }, ...errorsOf(['503']) },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        tags: ['service'],
        summary: 'Prometheus metrics',
        description:
          'The Prometheus text format: requests and their durations by resource, action and status, requests in flight, the database pool, rate-limit rejections, the webhook queue and delivery outcomes, process metrics. With METRICS_TOKEN set, it wants `Authorization: Bearer <METRICS_TOKEN>` (401 without it); unset, it answers callers on the same machine only (403 otherwise).',
        security: [{ metricsToken: [] }, {}],
        responses: {
          '200': { description: 'The metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errorsOf(['401', '403']),
        },
      },
    },
    '/v1/ws': {
      get: {
        operationId: 'websocket',
        tags: ['service'],
        summary: 'The WebSocket: every action over one connection',
        description: [
          'Connect with `Upgrade: websocket`, credentials in the `Authorization` or `X-API-Key` header, or in a first frame `{"type": "auth", "token": "…"}`.',
          'Send request frames `{"request_id": "…", "resource", "action", "id"?, "data"?, "idempotencyKey"?}`; each gets any number of `{"request_id", "type": "progress", …}` frames (streaming actions) and exactly one `{"request_id", "type": "result", "success", "data" | "error", "replayed"?}` frame. Frames count against the same rate limit as HTTP requests.',
        ].join('\n\n'),
        responses: { '101': { description: 'Switching Protocols: the WebSocket is open.' }, ...errorsOf(['400', '401', '429']) },
      },
    },
    '/mcp': {
      post: {
        operationId: 'mcp',
        tags: ['service'],
        summary: 'The Model Context Protocol (Streamable HTTP)',
        description:
          'One tool per action (`goals_create`, `action_items_batch_create`, …), with the same credentials, roles, ownership, rate limit and errors. Stateless: each JSON-RPC request stands alone. See docs/mcp.md.',
        requestBody: {
          required: true,
          content: json({ type: 'object', description: 'A JSON-RPC 2.0 message (or a batch) of the Model Context Protocol.' }),
        },
        responses: {
          '200': {
            description: 'The JSON-RPC answer, as JSON or as a Server-Sent Events stream (per the client\'s `Accept`).',
            content: { 'application/json': { schema: { type: 'object' } }, 'text/event-stream': { schema: { type: 'string' } } },
          },
          '202': { description: 'Accepted (a notification or a response from the client).' },
          ...errorsOf(['400', '401', '413', '429']),
        },
      },
    },
  };
}

function uniqueBy<T>(items: T[], key: (item: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const k = key(item);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
