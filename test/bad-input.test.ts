import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Action } from '../src/rpc/action.ts';
import { registry } from '../src/resources/index.ts';
import { createHarness, type Answer, type Harness } from './support/harness.ts';

// Property: whatever arrives at POST /v1, the answer is the envelope — a 4xx error whose
// `error.status` is the HTTP status, or (only where the input happens to be valid) a 2xx success —
// and never a 5xx. Most inputs fail before the database; the ones that reach it are kept to a few
// hundred so the file stays well under a minute on the embedded database.

let h: Harness;
let key: string;
let goalId: string;
let victimId: string;

beforeAll(async () => {
  h = await createHarness();
  key = (await h.user()).key;
  goalId = (await h.invoke(key, { resource: 'goals', action: 'create', data: { name: 'Target', status: 'inactive' } })).body.data.id;
  // The random-envelope property may update or delete this one.
  victimId = (await h.invoke(key, { resource: 'goals', action: 'create', data: { name: 'Victim', status: 'inactive' } })).body.data.id;
});
afterAll(() => h?.close());

const ERROR_KEYS = new Set(['code', 'message', 'status', 'details', 'request_id']);

/**
 * Asserts the answer is a well-formed envelope. A 2xx is accepted only when `success` says the caller
 * expected that the input may be valid; `created` then says whether 201 is the right success status.
 */
function checkEnvelope(res: Answer, success: { allowed: boolean; created?: boolean } = { allowed: false }): void {
  const context = () => `${res.status} ${JSON.stringify(res.body).slice(0, 500)}`;
  const requestId = res.headers.get('x-request-id');
  if (!requestId) throw new Error(`no X-Request-Id: ${context()}`);
  if (res.status >= 500) throw new Error(`server error: ${context()}`);
  const body = res.body as Record<string, any>;
  if (typeof body !== 'object' || body === null) throw new Error(`not a JSON object: ${context()}`);
  if (res.status >= 200 && res.status < 300) {
    if (!success.allowed) throw new Error(`unexpected success: ${context()}`);
    if (body.success !== true || !('data' in body) || Object.keys(body).length !== 2) throw new Error(`bad success envelope: ${context()}`);
    if (success.created !== undefined && res.status !== (success.created ? 201 : 200)) throw new Error(`wrong success status: ${context()}`);
    return;
  }
  if (res.status < 400) throw new Error(`status out of range: ${context()}`);
  const error = body.error as Record<string, unknown> | undefined;
  if (body.success !== false || Object.keys(body).length !== 2 || typeof error !== 'object' || error === null) {
    throw new Error(`bad error envelope: ${context()}`);
  }
  if (typeof error.code !== 'string' || !/^[A-Z_]+$/.test(error.code)) throw new Error(`bad code: ${context()}`);
  if (typeof error.message !== 'string' || error.message === '') throw new Error(`bad message: ${context()}`);
  if (error.status !== res.status) throw new Error(`error.status differs from HTTP status: ${context()}`);
  if (error.request_id !== requestId) throw new Error(`request_id differs from X-Request-Id: ${context()}`);
  if (Object.keys(error).some((k) => !ERROR_KEYS.has(k))) throw new Error(`unexpected error keys: ${context()}`);
  if (error.details !== undefined) {
    if (!Array.isArray(error.details)) throw new Error(`details not a list: ${context()}`);
    for (const d of error.details as Record<string, unknown>[]) {
      if (!Array.isArray(d.path) || !d.path.every((p) => typeof p === 'string' || typeof p === 'number')) {
        throw new Error(`bad detail path: ${context()}`);
      }
      if (typeof d.message !== 'string' || typeof d.type !== 'string') throw new Error(`bad detail: ${context()}`);
    }
  }
}

function expectCode(res: Answer, code: string, status: number) {
  checkEnvelope(res);
  expect({ status: res.status, code: res.body.error.code }).toEqual({ status, code });
  return res.body.error as { code: string; message: string; details?: { path: (string | number)[]; message: string; type: string }[] };
}

const post = (body: NonNullable<RequestInit['body']>, headers: Record<string, string> = {}) => h.request('/v1', { method: 'POST', key, body, headers });

const actions = Object.entries(registry).flatMap(([resource, map]) =>
  Object.entries(map as Record<string, Action>).map(([action, def]) => ({ resource, action, def })),
);

describe('random bodies', () => {
  it('answers random JSON values with a 4xx envelope', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        checkEnvelope(await post(JSON.stringify(value)));
      }),
      { numRuns: 1000 },
    );
  });

  it('answers random strings (ASCII, full Unicode, lone surrogates) sent as the raw body with a 4xx envelope', async () => {
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', '\\', 'u', '0', ' ', 'n', 'e') }),
    );
    await fc.assert(
      fc.asyncProperty(text, async (s) => {
        checkEnvelope(await post(s));
      }),
      { numRuns: 1500 },
    );
  });

  it('answers random bytes (invalid UTF-8 included) with a 4xx envelope', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        checkEnvelope(await post(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('answers random envelopes for every action (random id and data) with an envelope, 2xx only where valid', async () => {
    const id = fc.oneof(
      fc.constant(undefined),
      fc.uuid(),
      fc.string(),
      fc.constant(victimId),
      fc.anything(),
    );
    const data = fc.oneof(
      fc.constant(undefined),
      fc.constant({}),
      fc.anything(),
      fc.jsonValue(),
      fc.dictionary(fc.constantFrom('name', 'status', 'limit', 'cursor', 'search', 'agentId', 'goalId', 'adminMode', 'userId', 'priority'), fc.jsonValue()),
    );
    const tally = { success: 0, error: 0 };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...actions), id, data, async ({ resource, action, def }, rawId, rawData) => {
        const envelope = { resource, action, id: rawId, data: rawData };
        const res = await post(JSON.stringify(envelope));
        checkEnvelope(res, { allowed: true, created: def.created === true });
        tally[res.status < 300 ? 'success' : 'error']++;
      }),
      { numRuns: 1500 },
    );
    // Both branches of the property were exercised.
    expect(tally.success).toBeGreaterThan(10);
    expect(tally.error).toBeGreaterThan(500);
  });

  it('refuses an id that is not a UUID with VALIDATION_ERROR for every action that takes one', async () => {
    const notUuid = fc.oneof(
      fc.string().filter((s) => !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.uuid(), { minLength: 1, maxLength: 2 }),
      fc.constant({ id: goalId }),
      fc.constant(`${goalId}'; drop table goals; --`),
      fc.constant(goalId.toUpperCase().replace(/-/g, '')),
    );
    const withId = actions.filter((a) => a.def.id);
    expect(withId.map((a) => `${a.resource}.${a.action}`)).toEqual(expect.arrayContaining(['goals.get', 'goals.update', 'goals.delete']));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...withId), notUuid, async ({ resource, action }, id) => {
        const data = action === 'update' ? { name: 'x' } : undefined;
        const error = expectCode(await post(JSON.stringify({ resource, action, id, data })), 'VALIDATION_ERROR', 400);
        expect(error.details?.[0]?.path).toEqual(['id']);
      }),
      { numRuns: 300 },
    );
    // The goal survived every one of them.
    expect((await h.invoke(key, { resource: 'goals', action: 'get', id: goalId })).status).toBe(200);
  });
});

// ---- wrong types, field by field ----------------------------------------------------------------

type JsonKind = 'string' | 'number' | 'boolean' | 'null' | 'array' | 'object';
const kindOf = (v: unknown): JsonKind =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : (typeof v as 'string' | 'number' | 'boolean' | 'object');

/** The JSON kinds each field accepts; any other kind is a type error. */
const goalFieldKinds: Record<string, JsonKind[]> = {
  name: ['string'],
  description: ['string', 'null'],
  status: ['string'],
  priority: ['number', 'null'],
  agent_id: ['string', 'null'],
  lead_fields: ['array'],
  goal_type: ['string'],
  target_value: ['number', 'null'],
  current_value: ['number'],
  min_value: ['number'],
  max_value: ['number'],
  unit: ['string', 'null'],
  target_date: ['string', 'null'],
};
const agentFieldKinds: Record<string, JsonKind[]> = {
  name: ['string'],
  description: ['string', 'null'],
  is_active: ['boolean'],
};

function wrongTypeProperty(resource: string, action: string, kinds: Record<string, JsonKind[]>, base: () => Record<string, unknown>, id?: () => string) {
  const field = fc.constantFrom(...Object.keys(kinds));
  const value = fc.jsonValue({ maxDepth: 3 });
  return fc.asyncProperty(
    field.chain((f) => fc.tuple(fc.constant(f), value.filter((v) => !kinds[f]!.includes(kindOf(v))))),
    async ([f, v]) => {
      const res = await post(JSON.stringify({ resource, action, id: id?.(), data: { ...base(), [f]: v } }));
      const error = expectCode(res, 'VALIDATION_ERROR', 400);
      expect(error.details?.some((d) => d.path[0] === 'data' && d.path[1] === f)).toBe(true);
    },
  );
}

describe('wrong types for every field', () => {
  it('goals.create', async () => {
    await fc.assert(wrongTypeProperty('goals', 'create', goalFieldKinds, () => ({ name: 'ok' })), { numRuns: 400 });
  });

  it('goals.update', async () => {
    const kinds = { ...goalFieldKinds, expected_updated_at: ['string'] as JsonKind[] };
    await fc.assert(wrongTypeProperty('goals', 'update', kinds, () => ({}), () => goalId), { numRuns: 400 });
    // Every field of the goal was left as it was.
    const got = await h.invoke(key, { resource: 'goals', action: 'get', id: goalId });
    expect(got.body.data).toMatchObject({ name: 'Target', status: 'inactive', lead_fields: [] });
  });

  it('agents.create', async () => {
    await fc.assert(wrongTypeProperty('agents', 'create', agentFieldKinds, () => ({ name: 'ok' })), { numRuns: 200 });
  });

  it('refuses well-typed but out-of-range or malformed values of every goal field', async () => {
    const cases: [string, unknown][] = [
      ['name', ''],
      ['name', '   '],
      ['status', 'done'],
      ['priority', 101],
      ['priority', -1],
      ['priority', 1.5],
      ['agent_id', 'not-a-uuid'],
      ['goal_type', 'float'],
      ['target_value', 1e13],
      ['current_value', -1e13],
      ['unit', 'u'.repeat(51)],
      ['target_date', 'tomorrow'],
      ['target_date', '2030-01-01'],
      ['lead_fields', [{ key: '1bad', label: 'L', type: 'text' }]],
      ['lead_fields', [{ key: 'ok', label: 'L', type: 'colour' }]],
      ['lead_fields', [{ key: 'ok', label: 'L', type: 'text', extra: 1 }]],
      ['lead_fields', Array.from({ length: 51 }, (_, i) => ({ key: `k${i}`, label: 'L', type: 'text' }))],
      ['description', 'd'.repeat(5001)],
    ];
    for (const [field, value] of cases) {
      const error = expectCode(await post(JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'ok', [field]: value } })), 'VALIDATION_ERROR', 400);
      expect(error.details?.some((d) => d.path[0] === 'data' && d.path[1] === field), `${field}=${JSON.stringify(value).slice(0, 50)}`).toBe(true);
    }
  });
});

// ---- valid shapes, hostile text -----------------------------------------------------------------

describe('valid shapes with arbitrary text', () => {
  it('stores any Unicode text it accepts and refuses what it cannot store with a 4xx, never a 5xx', async () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
      fc.string({ unit: fc.constantFrom('\u0000', 'a', ' ', '\ud800', '\udc00', 'é', '\u200b', '\ufeff'), minLength: 1, maxLength: 10 }),
    );
    await fc.assert(
      fc.asyncProperty(text, text, async (name, label) => {
        const res = await post(
          JSON.stringify({
            resource: 'goals',
            action: 'create',
            data: { name, description: label, status: 'inactive', lead_fields: [{ key: 'k', label, type: 'text' }] },
          }),
        );
        checkEnvelope(res, { allowed: true, created: true });
        if (res.status === 201 && !/[\ud800-\udfff]/.test(name)) expect(res.body.data.name).toBe(name.trim());
      }),
      { numRuns: 300 },
    );
  });

  it('refuses the NUL character, which Postgres text cannot hold, with VALIDATION_ERROR', async () => {
    expectCode(await post(JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'a\u0000b' } })), 'VALIDATION_ERROR', 400);
    expectCode(
      await post(JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'ok', lead_fields: [{ key: 'k', label: 'a\u0000', type: 'text' }] } })),
      'VALIDATION_ERROR',
      400,
    );
    expectCode(await post(JSON.stringify({ resource: 'goals', action: 'list', data: { search: '\u0000' } })), 'VALIDATION_ERROR', 400);
    expectCode(await post(JSON.stringify({ resource: 'agents', action: 'create', data: { name: 'x', description: '\u0000' } })), 'VALIDATION_ERROR', 400);
  });

  it('stores lone UTF-16 surrogates as U+FFFD in text and jsonb alike', async () => {
    const res = await post(
      JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'a\ud800', lead_fields: [{ key: 'k', label: '\udc00b', type: 'select', options: ['\ud83d'] }] } }),
    );
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ name: 'a\ufffd', lead_fields: [{ key: 'k', label: '\ufffdb', options: ['\ufffd'] }] });
    // A well-formed pair is kept as it is.
    const pair = await post(JSON.stringify({ resource: 'goals', action: 'create', data: { name: '\u{1F600}', lead_fields: [{ key: 'k', label: '\u{1F600}', type: 'text' }] } }));
    expect(pair.body.data).toMatchObject({ name: '😀', lead_fields: [{ label: '😀' }] });
  });
});

// ---- size and depth -----------------------------------------------------------------------------

describe('huge and deep input', () => {
  it('refuses 100k-character strings in every string position with VALIDATION_ERROR', async () => {
    const big = 'x'.repeat(100_000);
    const cases: [unknown, string[]][] = [
      [{ resource: big, action: 'list' }, ['resource']],
      [{ resource: 'goals', action: big }, ['action']],
      [{ resource: 'goals', action: 'get', id: big }, ['id']],
      [{ resource: 'goals', action: 'create', data: { name: big } }, ['data', 'name']],
      [{ resource: 'goals', action: 'create', data: { name: 'ok', description: big } }, ['data', 'description']],
      [{ resource: 'goals', action: 'create', data: { name: 'ok', unit: big } }, ['data', 'unit']],
      [{ resource: 'goals', action: 'create', data: { name: 'ok', lead_fields: [{ key: big, label: 'L', type: 'text' }] } }, ['data', 'lead_fields', '0', 'key']],
      [{ resource: 'goals', action: 'update', id: goalId, data: { name: big } }, ['data', 'name']],
      [{ resource: 'goals', action: 'list', data: { search: big } }, ['data', 'search']],
      [{ resource: 'goals', action: 'list', data: { cursor: big } }, ['data', 'cursor']],
      [{ resource: 'agents', action: 'create', data: { name: big } }, ['data', 'name']],
      [{ resource: 'api-keys', action: 'create', data: { name: big } }, ['data', 'name']],
    ];
    for (const [envelope, path] of cases) {
      const error = expectCode(await post(JSON.stringify(envelope)), 'VALIDATION_ERROR', 400);
      expect(error.details?.[0]?.path.map(String)).toEqual(path);
      expect(error.message.length).toBeLessThan(1000);
    }
    // A key of 100k characters in data: refused, and the answer does not echo it in full.
    const error = expectCode(await post(JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'ok', [big]: 1 } })), 'VALIDATION_ERROR', 400);
    expect(error.details?.[0]?.type).toBe('unrecognized_keys');
    // 10k lead fields, 10k-element id list.
    const many = Array.from({ length: 10_000 }, (_, i) => ({ key: `k${i}`, label: 'L', type: 'text' }));
    expectCode(await post(JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'ok', lead_fields: many } })), 'VALIDATION_ERROR', 400);
    expectCode(await post(JSON.stringify({ resource: 'goals', action: 'get', id: Array(10_000).fill(goalId) })), 'VALIDATION_ERROR', 400);
  });

  it('answers 10k- and 100k-level nesting, balanced or not, anywhere in the body, with VALIDATION_ERROR', async () => {
    for (const depth of [10_000, 100_000]) {
      const arrays = '['.repeat(depth) + ']'.repeat(depth);
      const objects = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      const bodies = [
        arrays,
        objects,
        '['.repeat(depth),
        '{"a":'.repeat(depth),
        `{"resource":"goals","action":"list","data":${objects}}`,
        `{"resource":"goals","action":"list","data":{"search":${arrays}}}`,
        `{"resource":"goals","action":"list","data":{"limit":${objects}}}`,
        `{"resource":"goals","action":"create","data":{"name":"ok","lead_fields":${arrays}}}`,
        `{"resource":"goals","action":"create","data":{"name":"ok","lead_fields":[{"key":"k","label":"L","type":"select","options":${arrays}}]}}`,
        `{"resource":"goals","action":"create","data":{"name":"ok","deep":${objects}}}`,
        `{"resource":"goals","action":"get","id":${arrays}}`,
        `{"resource":${objects},"action":"list"}`,
        `{"resource":"goals","action":"list","extra":${arrays}}`,
        `{"resource":"goals","action":"list","data":${arrays}}`,
      ];
      for (const body of bodies) {
        const res = await post(body);
        expectCode(res, 'VALIDATION_ERROR', 400);
      }
    }
  });
});

// ---- prototype pollution ------------------------------------------------------------------------

describe('prototype-pollution keys', () => {
  it('refuses __proto__, constructor and prototype keys at every level and pollutes nothing', async () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    const bodies = [
      '{"resource":"goals","action":"list","__proto__":{"polluted":true}}',
      '{"__proto__":{"resource":"goals","action":"list"}}',
      '{"resource":"goals","action":"list","constructor":{"prototype":{"polluted":true}}}',
      '{"resource":"goals","action":"list","data":{"__proto__":{"adminMode":true}}}',
      '{"resource":"goals","action":"list","data":{"__proto__":{"polluted":true}}}',
      '{"resource":"goals","action":"list","data":{"constructor":{"prototype":{"adminMode":true,"polluted":true}}}}',
      '{"resource":"goals","action":"create","data":{"name":"x","__proto__":{"owner_id":"00000000-0000-4000-8000-000000000000","polluted":true}}}',
      '{"resource":"goals","action":"create","data":{"name":"x","lead_fields":[{"key":"k","label":"L","type":"text","__proto__":{"polluted":true}}]}}',
      '{"resource":"goals","action":"create","data":{"name":"x","constructor":{"prototype":{"polluted":true}}}}',
      '{"resource":"goals","action":"update","id":"' + goalId + '","data":{"__proto__":{"name":"pwned"}}}',
      '{"resource":"agents","action":"create","data":{"name":"x","prototype":{"polluted":true}}}',
    ];
    for (const body of bodies) {
      const error = expectCode(await post(body), 'VALIDATION_ERROR', 400);
      expect(error.details?.some((d) => d.type === 'unrecognized_keys'), body).toBe(true);
    }
    const names = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
    for (const name of names) {
      expectCode(await post(JSON.stringify({ resource: name, action: 'list' })), 'INVALID_RESOURCE', 400);
      expectCode(await post(JSON.stringify({ resource: 'goals', action: name })), 'INVALID_ACTION', 400);
      expectCode(await h.request(`/v1/${name}`, { key }), 'INVALID_RESOURCE', 400);
    }
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).adminMode).toBeUndefined();
    const got = await h.invoke(key, { resource: 'goals', action: 'get', id: goalId });
    expect(got.body.data.name).toBe('Target');
  });

  it('fuzzes polluting keys into data with fast-check and never lets one through', async () => {
    const pollutingKey = fc.constantFrom('__proto__', 'constructor', 'prototype', '__defineSetter__', '__lookupGetter__');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('list', 'create'), pollutingKey, fc.jsonValue({ maxDepth: 2 }), async (action, k, v) => {
        // Written as text so that `__proto__` is an own key of the parsed object, as an attacker sends it.
        const data = `{${action === 'create' ? '"name":"x",' : ''}${JSON.stringify(k)}:${JSON.stringify(v)}}`;
        const res = await post(`{"resource":"goals","action":"${action}","data":${data}}`);
        expectCode(res, 'VALIDATION_ERROR', 400);
      }),
      { numRuns: 200 },
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

// ---- body limit ---------------------------------------------------------------------------------

/** A body of exactly `size` bytes that is a valid goals.list envelope (JSON allows trailing spaces). */
function paddedList(size: number): string {
  const base = '{"resource":"goals","action":"list","data":{"limit":1}}';
  return base + ' '.repeat(size - base.length);
}

/** A request body with no Content-Length: a stream of `chunks` chunks of `chunkSize` bytes. */
function streamOf(text: string, chunkSize = 16 * 1024): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

const streamed = (harness: Harness, text: string, withKey = true) =>
  harness.request('/v1', { method: 'POST', key: withKey ? key : undefined, body: streamOf(text), duplex: 'half' } as RequestInit & { key?: string });

describe('body limit', () => {
  const MiB = 1024 * 1024;

  it('answers a body over 1 MiB with 413 PAYLOAD_TOO_LARGE, with or without Content-Length, and takes exactly 1 MiB', async () => {
    const over = paddedList(MiB + 1);
    const exact = paddedList(MiB);
    expectCode(await post(over), 'PAYLOAD_TOO_LARGE', 413);
    expectCode(await post(over, { 'content-length': String(MiB + 1) }), 'PAYLOAD_TOO_LARGE', 413);
    expectCode(await streamed(h, over), 'PAYLOAD_TOO_LARGE', 413);
    expectCode(await streamed(h, paddedList(5 * MiB)), 'PAYLOAD_TOO_LARGE', 413);
    // Before authentication: no key needed to be refused.
    expectCode(await streamed(h, over, false), 'PAYLOAD_TOO_LARGE', 413);
    for (const res of [await post(exact), await post(exact, { 'content-length': String(MiB) }), await streamed(h, exact)]) {
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ success: true, data: { items: expect.any(Array), count: expect.any(Number) } });
      expect(res.body.data.items.length).toBe(1); // the padded body's `limit: 1` was read
    }
    // Multi-byte characters count as bytes, not characters.
    const euros = `{"resource":"goals","action":"list","data":{"search":"${'€'.repeat(MiB / 3)}"}}`;
    expect(euros.length).toBeLessThan(MiB);
    expectCode(await streamed(h, euros), 'PAYLOAD_TOO_LARGE', 413);
  });

  it('honours a configured limit (2048 bytes), streamed or not', async () => {
    const small = await createHarness({ bodyLimitBytes: 2048 });
    try {
      const over = paddedList(2049);
      expectCode(await small.request('/v1', { method: 'POST', body: over }), 'PAYLOAD_TOO_LARGE', 413);
      expectCode(await small.request('/v1', { method: 'POST', body: over, headers: { 'content-length': '2049' } }), 'PAYLOAD_TOO_LARGE', 413);
      expectCode(await streamed(small, over, false), 'PAYLOAD_TOO_LARGE', 413);
      expectCode(await streamed(small, paddedList(100_000), false), 'PAYLOAD_TOO_LARGE', 413);
      // At the limit the body passes on to authentication (no key here: 401, no database needed).
      expectCode(await small.request('/v1', { method: 'POST', body: paddedList(2048) }), 'UNAUTHORIZED', 401);
      expectCode(await streamed(small, paddedList(2048), false), 'UNAUTHORIZED', 401);
      // The REST routes sit behind the same limit.
      expectCode(await small.request('/v1/goals', { method: 'POST', body: `{"name":"${'n'.repeat(3000)}"}` }), 'PAYLOAD_TOO_LARGE', 413);
      expectCode(await small.request(`/v1/goals/${goalId}`, { method: 'PATCH', body: `{"name":"${'n'.repeat(3000)}"}` }), 'PAYLOAD_TOO_LARGE', 413);
    } finally {
      await small.close();
    }
  });

  it('answers streamed bodies of random size and content with an envelope, 413 exactly when over the limit', async () => {
    const small = await createHarness({ bodyLimitBytes: 2048 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 1500 }), fc.integer({ min: 1, max: 4096 }), async (s, chunk) => {
          const bytes = new TextEncoder().encode(s).length;
          const res = await small.request('/v1', { method: 'POST', body: streamOf(s, chunk), duplex: 'half' } as RequestInit);
          checkEnvelope(res);
          if (bytes > 2048) expectCode(res, 'PAYLOAD_TOO_LARGE', 413);
          else expect(res.status).not.toBe(413);
        }),
        { numRuns: 200 },
      );
    } finally {
      await small.close();
    }
  });
});
