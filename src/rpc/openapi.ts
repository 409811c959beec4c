import { z } from 'zod';
import { plainJsonSchema } from '../lib/json-schema.ts';
import type { Action, ActionRegistry } from './action.ts';
import { adminFields } from './dispatch.ts';
import { errorStatus } from './errors.ts';

type JsonSchema = Record<string, unknown>;

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
        status: { type: 'integer' },
        request_id: { type: 'string' },
        details: {
          description: 'VALIDATION_ERROR: the issues, as a list. CONFLICT: the current state, e.g. `{ updated_at }`.',
          oneOf: [
            {
              type: 'array',
              items: {
                type: 'object',
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

const errorResponses = {
  '4XX': { description: 'Client error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
  '5XX': { description: 'Server error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
};

const success = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Success' } } },
});

/**
 * The OpenAPI 3.1 document, derived from the registry: one operation per action at
 * `POST /v1/{resource}/{action}`, and `POST /v1` taking any of them as an envelope.
 *
 * @example app.get('/openapi.json', (c) => c.json(buildOpenApi(registry)));
 */
export function buildOpenApi(registry: ActionRegistry, options: { serverUrl?: string } = {}) {
  const paths: Record<string, unknown> = {};
  const envelopes: JsonSchema[] = [];
  for (const [resource, actions] of Object.entries(registry)) {
    for (const [name, action] of Object.entries(actions as Record<string, Action>)) {
      envelopes.push(envelopeSchema(resource, name, action));
      paths[`/v1/${resource}/${name}`] = { post: operation(resource, name, action) };
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Goalpost',
      version: '1',
      description:
        'The goals backend for AI agents. One action-style endpoint, `POST /v1` with `{resource, action, id?, data?}`; each action is also listed below at `POST /v1/{resource}/{action}`. REST-style routes (`GET /v1/{resource}`, `GET|PATCH|DELETE /v1/{resource}/{id}`, `POST /v1/{resource}`) reach the same handlers.',
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    security: [{ bearer: [] }, { apiKey: [] }],
    paths: {
      '/v1': {
        post: {
          operationId: 'invoke',
          tags: ['invoke'],
          summary: 'Invoke any action',
          requestBody: { required: true, content: { 'application/json': { schema: { oneOf: envelopes } } } },
          responses: { '200': success('Success'), '201': success('Created'), ...errorResponses },
        },
      },
      ...paths,
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key (gp_live_…), a session JWT, or the service key with x-user-id.' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      schemas: {
        Success: { type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data: {} } },
        Error: errorEnvelope,
      },
    },
  };
}

/** An action's `data`: its input, plus the admin fields any action takes. */
const dataSchema = (action: Action) => plainJsonSchema(z.object({ ...(action.input as z.ZodObject).shape, ...adminFields.shape }).strict());

const idSchema = (resource: string) => ({ type: 'string', format: 'uuid', description: `The ${resource} record's id.` });

/** The `POST /v1` envelope of one action. */
function envelopeSchema(resource: string, name: string, action: Action): JsonSchema {
  return {
    type: 'object',
    title: `${resource}.${name}`,
    additionalProperties: false,
    required: ['resource', 'action', ...(action.id ? ['id'] : [])],
    properties: {
      resource: { const: resource },
      action: { const: name },
      ...(action.id ? { id: idSchema(resource) } : {}),
      data: dataSchema(action),
    },
  };
}

/** The operation of `POST /v1/{resource}/{action}`, body `{id?, data}`. */
function operation(resource: string, name: string, action: Action) {
  const body: JsonSchema = {
    type: 'object',
    additionalProperties: false,
    required: action.id ? ['id'] : [],
    properties: { ...(action.id ? { id: idSchema(resource) } : {}), data: dataSchema(action) },
  };
  return {
    operationId: `${resource}.${name}`,
    tags: [resource],
    summary: action.summary,
    description: [
      action.description,
      `Same as \`POST /v1\` with \`{"resource": "${resource}", "action": "${name}"${action.id ? ', "id": …' : ''}, "data": …}\`.`,
      action.readOnly ? 'Allowed to the read-only consumer role.' : 'Not allowed to the read-only consumer role.',
    ]
      .filter(Boolean)
      .join('\n\n'),
    requestBody: { required: true, content: { 'application/json': { schema: body } } },
    responses: { [action.created ? '201' : '200']: success('Success'), ...errorResponses },
  };
}
