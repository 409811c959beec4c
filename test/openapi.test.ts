import { Validator } from '@seriousme/openapi-schema-validator';
// ajv comes with the OpenAPI validator (a dev dependency); its 2020-12 dialect is OpenAPI 3.1's.
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Action } from '../src/rpc/action.ts';
import { registry } from '../src/resources/index.ts';
import { createHarness, type Harness } from './support/harness.ts';

let h: Harness;
let doc: any;
beforeAll(async () => {
  h = await createHarness();
  const res = await h.request('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = res.body;
});
afterAll(() => h.close());

const actions = Object.entries(registry).flatMap(([resource, map]) =>
  Object.entries(map as Record<string, Action>).map(([action, def]) => ({ resource, action, def })),
);

const requestSchema = (resource: string, action: string) =>
  doc.paths[`/v1/${resource}/${action}`].post.requestBody.content['application/json'].schema;
const dataSchema = (resource: string, action: string) => requestSchema(resource, action).properties.data;

function ajv() {
  const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as new (options: object) => any;
  const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: unknown) => void;
  const instance = new Ajv2020({ strict: false, allErrors: true });
  addFormats(instance);
  return instance;
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors, JSON.stringify(result.errors)?.slice(0, 2000)).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toMatch(/^3\.1/);
  });

  it('needs no credentials and is the same document every time', async () => {
    const again = await h.request('/openapi.json', { headers: { authorization: 'Bearer nonsense' } });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(doc);
  });

  it('lists every action of the registry at /v1/{resource}/{action}, with its input schema', () => {
    expect(actions.length).toBeGreaterThanOrEqual(15);
    const actionPaths = Object.keys(doc.paths).filter((p) => doc.paths[p].post && /^\/v1\/[^/{]+\/[^/{]+$/.test(p));
    expect(actionPaths.sort()).toEqual(actions.map((a) => `/v1/${a.resource}/${a.action}`).sort());
    for (const { resource, action, def } of actions) {
      const op = doc.paths[`/v1/${resource}/${action}`].post;
      expect(op.operationId).toBe(`${resource}.${action}`);
      expect(op.summary).toBe(def.summary);
      expect(op.responses).toHaveProperty(def.created ? '201' : '200');
      expect(op.responses).not.toHaveProperty(def.created ? '200' : '201');
      const body = requestSchema(resource, action);
      expect(body.additionalProperties).toBe(false);
      expect(Object.keys(body.properties).sort()).toEqual(def.id ? ['data', 'id'] : ['data']);
      // data: exactly the fields of the action's input schema (the admin fields are documented apart, AdminFields).
      const data = dataSchema(resource, action);
      expect(data.type).toBe('object');
      expect(data.additionalProperties).toBe(false);
      const shape = (def.input as unknown as { shape?: Record<string, unknown>; _zod: { def: { shape?: Record<string, unknown>; schema?: { shape?: Record<string, unknown> } } } });
      const fields = Object.keys(shape.shape ?? shape._zod.def.shape ?? shape._zod.def.schema?.shape ?? {});
      expect(Object.keys(data.properties).sort(), `${resource}.${action}`).toEqual([...fields].sort());
      // `data` is required where the action has a required field; `id` where it names a record.
      const needsData = (data.required ?? []).length > 0;
      expect(body.required).toEqual([...(def.id ? ['id'] : []), ...(needsData ? ['data'] : [])]);
      if (def.id) expect(body.properties.id).toMatchObject({ type: 'string', format: 'uuid' });
    }
  });

  it('documents the admin fields apart, so that a standard user\'s requests do not carry them', () => {
    expect(Object.keys(doc.components.schemas.AdminFields.properties).sort()).toEqual(['adminMode', 'userId']);
    expect(doc.info.description).toContain('AdminFields');
  });

  it('answers each action with {success: true, data: <its output>}, errors with the one envelope by status', () => {
    for (const { resource, action, def } of actions) {
      const op = doc.paths[`/v1/${resource}/${action}`].post;
      const answer = op.responses[def.created ? '201' : '200'].content['application/json'].schema;
      expect(answer.required).toEqual(['success', 'data']);
      expect(answer.properties.success).toEqual({ const: true });
      expect(answer.properties.data, `${resource}.${action}`).toBeTruthy();
      for (const status of ['400', '401', '403', '404', '429', '500', '503']) {
        expect(op.responses[status]).toEqual({ $ref: `#/components/responses/${status}` });
      }
      expect(op.responses['409'] !== undefined).toBe(!def.readOnly);
      // Every write takes an Idempotency-Key and may answer 422 for a reused one, or a replay.
      expect(op.responses['422'] !== undefined).toBe(!def.readOnly);
      expect((op.parameters ?? []).map((p: any) => p.name)).toEqual(def.readOnly ? [] : ['Idempotency-Key']);
      expect(Object.keys(op.responses[def.created ? '201' : '200'].headers ?? {}).includes('Idempotent-Replayed')).toBe(!def.readOnly);
      expect(op.responses['502'] !== undefined).toBe(def.rateLimit === 'generate');
    }
    expect(doc.components.responses['429'].headers).toHaveProperty('Retry-After');
    expect(doc.components.responses['404'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Goal', 'ListedGoal', 'ActionItem', 'Agent', 'ApiKey', 'Webhook', 'Delivery', 'Owner']));
  });

  it('lists the REST routes, the WebSocket, MCP, health, readiness and metrics, and declares servers and a license', () => {
    expect(doc.paths['/v1/goals'].get.operationId).toBe('goals.list.rest');
    expect(doc.paths['/v1/goals'].post.operationId).toBe('goals.create.rest');
    expect(Object.keys(doc.paths['/v1/goals/{id}']).sort()).toEqual(['delete', 'get', 'patch']);
    expect(doc.paths['/v1/goals/{id}/history'].get.parameters.map((p: any) => p.name)).toEqual(['id', 'days']);
    expect(doc.paths['/v1/goals'].get.parameters.find((p: any) => p.name === 'limit').schema).toMatchObject({ type: 'integer' });
    for (const path of ['/v1/ws', '/healthz', '/readyz', '/metrics', '/mcp']) expect(doc.paths, path).toHaveProperty([path]);
    expect(doc.servers.length).toBeGreaterThan(0);
    expect(doc.info.license).toMatchObject({ name: expect.any(String) });
  });

  it('offers every action in the POST /v1 oneOf, each pinned to its resource and action', () => {
    const oneOf = doc.paths['/v1'].post.requestBody.content['application/json'].schema.oneOf as any[];
    expect(oneOf.map((e) => e.title).sort()).toEqual(actions.map((a) => `${a.resource}.${a.action}`).sort());
    for (const { resource, action, def } of actions) {
      const envelope = oneOf.find((e) => e.title === `${resource}.${action}`);
      expect(envelope).toMatchObject({
        type: 'object',
        additionalProperties: false,
        properties: { resource: { const: resource }, action: { const: action } },
      });
      const needsData = requestSchema(resource, action).required.includes('data');
      expect(envelope.required).toEqual(['resource', 'action', ...(def.id ? ['id'] : []), ...(needsData ? ['data'] : [])]);
      expect(envelope.properties.data).toEqual(dataSchema(resource, action));
    }
  });

  it('keeps the bounds, patterns and required fields of the schemas', () => {
    expect(dataSchema('goals', 'list').properties.limit).toMatchObject({ type: 'integer', minimum: 1, maximum: 100, default: 50 });
    expect(dataSchema('agents', 'list').properties.limit).toMatchObject({ type: 'integer', minimum: 1, maximum: 100 });
    const create = dataSchema('goals', 'create');
    expect(create.required).toEqual(['name']);
    expect(create.properties.name).toMatchObject({ type: 'string', minLength: 1, maxLength: 500 });
    expect(create.properties.priority).toMatchObject({ anyOf: expect.arrayContaining([expect.objectContaining({ type: 'integer', minimum: 0, maximum: 100 })]) });
    expect(create.properties.status.enum).toEqual(['active', 'inactive', 'completed', 'abandoned']);
    const leadFields = create.properties.lead_fields;
    expect(leadFields).toMatchObject({ type: 'array', maxItems: 50 });
    expect(leadFields.items.properties.key.pattern).toBe('^[a-z][a-z0-9_]{0,63}$');
    expect(leadFields.items.properties.type.enum).toContain('select');
    expect(leadFields.items.required).toEqual(['key', 'label', 'type']);
    expect(dataSchema('goals', 'update').properties).toHaveProperty('expected_updated_at');
    expect(dataSchema('goals', 'attach').required?.sort()).toEqual(['agentId', 'goalId']);
    expect(dataSchema('goals', 'attach').properties.goalId).toMatchObject({ type: 'string', format: 'uuid' });
  });

  it('describes the error envelope with every error code', () => {
    const error = doc.components.schemas.Error;
    expect(error.properties.error.required).toEqual(['code', 'message', 'status', 'request_id']);
    expect(error.properties.error.properties.code.enum).toEqual(
      expect.arrayContaining(['VALIDATION_ERROR', 'NOT_FOUND', 'CONFLICT', 'PAYLOAD_TOO_LARGE', 'RATE_LIMIT_EXCEEDED', 'SERVICE_UNAVAILABLE']),
    );
  });
});

describe('the document matches what the API does', () => {
  it("answers validate against each operation's answer schema and the Error schema, CONFLICT details included", async () => {
    const validator = ajv();
    // The answer schemas refer to shared shapes under #/components: compile them beside the components.
    const answerOf = (resource: string, action: string, status: string) =>
      validator.compile({ ...doc.paths[`/v1/${resource}/${action}`].post.responses[status].content['application/json'].schema, components: doc.components });
    const error = validator.compile({ ...doc.components.schemas.Error });
    const alice = await h.user();
    const created = await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'A', status: 'inactive', roadmap: { nodes: [{ id: 'a', label: 'A' }] } } });
    const goalCreated = answerOf('goals', 'create', '201');
    expect(goalCreated(created.body), JSON.stringify(goalCreated.errors)).toBe(true);
    // The document's answer schemas are strict: a field it does not declare fails them.
    expect(goalCreated({ ...created.body, data: { ...created.body.data, surprise: 1 } })).toBe(false);
    const listed = await h.invoke(alice.key, { resource: 'goals', action: 'list' });
    expect(answerOf('goals', 'list', '200')(listed.body)).toBe(true);
    const item = await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'x', goal_id: created.body.data.id } });
    expect(answerOf('action-items', 'create', '201')(item.body)).toBe(true);
    const answers = [
      await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: '' } }),
      await h.invoke(alice.key, { resource: 'goals', action: 'get', id: randomUUID() }),
      await h.invoke(alice.key, { resource: 'goals', action: 'update', id: created.body.data.id, data: { name: 'B', expected_updated_at: '2000-01-01T00:00:00Z' } }),
      await h.invoke(undefined, { resource: 'goals', action: 'list' }),
      await h.request('/nowhere'),
    ];
    expect(answers.map((a) => a.status)).toEqual([400, 404, 409, 401, 404]);
    for (const answer of answers) expect(error(answer.body), JSON.stringify({ body: answer.body, errors: error.errors })).toBe(true);
    expect(error({ success: false, error: { code: 'NOPE', message: 'x', status: 400, request_id: 'r' } })).toBe(false);
  });

  it("gives every action an example body that works for a standard user (the reference page's try-it default)", async () => {
    const alice = await h.user();
    for (const { resource, action, def } of actions) {
      const op = doc.paths[`/v1/${resource}/${action}`].post;
      const example = op.requestBody.content['application/json'].example;
      expect(example, `${resource}.${action}`).toBeTruthy();
      const res = await h.request(`/v1/${resource}/${action}`, { method: 'POST', key: alice.key, headers: { 'content-type': 'application/json' }, body: JSON.stringify(example) });
      // Examples that name records by id cannot name yours: those validate and answer NOT_FOUND.
      const namesRecords = def.id || JSON.stringify(example.data).includes('00000000-0000-4000-8000');
      const expected = namesRecords ? [404] : [def.created ? 201 : 200];
      expect(expected, `${resource}.${action}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`).toContain(res.status);
      if (res.status === 404) expect(res.body.error.code).toMatch(/NOT_FOUND$/);
    }
    const invoke = doc.paths['/v1'].post.requestBody.content['application/json'].example;
    expect((await h.invoke(alice.key, invoke)).status).toBe(201);
  });

  it('never refuses in the document what the API accepts (goals.create, random data)', async () => {
    const validator = ajv();
    const oneOf = validator.compile(doc.paths['/v1'].post.requestBody.content['application/json'].schema);
    const perAction = validator.compile(requestSchema('goals', 'create'));
    const alice = await h.user();
    // Mostly valid values, so that both verdicts come up often.
    const value = <T>(valid: T[], invalid: unknown[]) =>
      invalid.length === 0
        ? fc.constantFrom<unknown>(...valid)
        : valid.length === 0
          ? fc.constantFrom<unknown>(...invalid)
          : fc.oneof({ arbitrary: fc.constantFrom<unknown>(...valid), weight: 12 }, { arbitrary: fc.constantFrom<unknown>(...invalid), weight: 1 });
    const data = fc.record(
      {
        name: value(['Goal', 'x'.repeat(500)], ['', 'x'.repeat(501), 3, null]),
        description: value(['d', null], [5, 'd'.repeat(5001)]),
        status: value(['active', 'inactive', 'completed', 'abandoned'], ['done', '']),
        priority: value([0, 100, 50, null], [101, -1, 1.5, '5']),
        agent_id: value([null], ['not-a-uuid', 7]),
        lead_fields: value(
          [[], [{ key: 'email', label: 'Email', type: 'email', required: true }], [{ key: 'plan', label: 'Plan', type: 'select', options: ['a', 'b'] }]],
          [[{ key: 'Email', label: 'E', type: 'email' }], [{ key: 'e', label: 'E', type: 'colour' }], [{ key: 'e', label: 'E', type: 'text', x: 1 }], 'email'],
        ),
        goal_type: value(['scale', 'numeric', 'boolean'], ['float']),
        target_value: value([null, 5, 1], [1e13, 'high']),
        current_value: value([0, 1, 3], [-1e13, null]),
        min_value: value([0, -5], ['0']),
        max_value: value([10, 100], [true]),
        unit: value(['kg', null], ['u'.repeat(51)]),
        target_date: value(['2030-01-01T00:00:00Z', '2030-01-01T00:00:00.000+02:00', null], ['2030-01-01', 'soon']),
        colour: value([], ['red']),
      },
      { requiredKeys: ['name'] },
    );
    const tally = { accepted: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(data, async (d) => {
        const envelope = { resource: 'goals', action: 'create', data: d };
        const res = await h.invoke(alice.key, envelope);
        expect([201, 400]).toContain(res.status);
        if (res.status === 201) {
          tally.accepted++;
          expect(oneOf(envelope), JSON.stringify({ d, errors: oneOf.errors })).toBe(true);
          expect(perAction({ data: d })).toBe(true);
        } else {
          tally.refused++;
          expect(res.body.error.code).toBe('VALIDATION_ERROR');
        }
        // What the document refuses, the API refuses too.
        if (!perAction({ data: d })) expect(res.status).toBe(400);
      }),
      { numRuns: 300 },
    );
    expect(tally.accepted).toBeGreaterThan(5);
    expect(tally.refused).toBeGreaterThan(50);
  });
});

describe('GET /docs', () => {
  it('answers an HTML page that loads the reference script from this server, not a CDN', async () => {
    const res = await h.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = res.body as string;
    expect(typeof html).toBe('string');
    expect(html).toMatch(/<html/i);
    const scripts = [...html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]);
    expect(scripts).toEqual(['/docs/scalar.js']);
    expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
    expect(html).toContain('/openapi.json');
  });

  it('serves /docs/scalar.js as JavaScript', async () => {
    const res = await h.app.request('/docs/scalar.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/javascript/);
    const js = await res.text();
    expect(js.length).toBeGreaterThan(100_000);
    expect(js).toContain('createApiReference');
    expect(js.trimStart()).not.toMatch(/^</); // not an HTML error page
  });
});
