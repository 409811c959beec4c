import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAiProvider } from '../src/ai/index.ts';
import { strictJsonSchema } from '../src/lib/json-schema.ts';
import { createOpenAiProvider } from '../src/ai/openai.ts';
import type { AiProvider } from '../src/ai/provider.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { goalSuggestion, leadFieldTypes } from '../src/resources/goals/schemas.ts';
import { completion, delegatingProvider, hang, pieces, startFakeOpenAi, status, stream, type FakeOpenAi } from './support/fake-openai.ts';
import { createHarness, expectError, type Harness } from './support/harness.ts';
import { readEvents, serveOnLoopback, type SseEvent } from './support/sse.ts';

// goals.generate with the OpenAI-compatible provider, against a fake server on 127.0.0.1 that the
// test starts: the request it receives, answers good and bad, retries, timeouts, and SSE.

const MODEL = 'test-model';
let fake: FakeOpenAi;
let h: Harness;
let provider: AiProvider;
// The app's provider delegates to `provider`, so a test can swap in one with another timeout.
const delegating = delegatingProvider(() => provider);
const withTimeout = (timeoutMs: number) =>
  createOpenAiProvider({ baseUrl: fake.baseUrl, apiKey: 'test-key', model: MODEL, timeoutMs });

beforeAll(async () => {
  fake = await startFakeOpenAi();
  provider = withTimeout(10_000);
  h = await createHarness({ ai: delegating });
});
afterEach(() => {
  provider = withTimeout(10_000);
});
afterAll(async () => {
  await h.close();
  await fake.close();
});

const DESCRIPTION = 'Collect customer name, email, and preferred contact time for callback scheduling';

/** What a model following the schema in strict mode answers: every key present, null where it has nothing. */
const GOOD_ANSWER = {
  name: 'Callback scheduling',
  description: 'Collects contact details and a preferred time to call back.',
  lead_fields: [
    { key: 'full_name', label: 'Full name', type: 'text', required: true, description: null, options: null },
    { key: 'email', label: 'Email', type: 'email', required: true, description: null, options: null },
    { key: 'contact_time', label: 'Preferred contact time', type: 'select', required: false, description: null, options: ['morning', 'afternoon'] },
  ],
  goal_type: null,
  target_value: null,
  min_value: null,
  max_value: null,
  unit: null,
};

const EXPECTED_SUGGESTION = {
  name: 'Callback scheduling',
  description: 'Collects contact details and a preferred time to call back.',
  lead_fields: [
    { key: 'full_name', label: 'Full name', type: 'text', required: true },
    { key: 'email', label: 'Email', type: 'email', required: true },
    { key: 'contact_time', label: 'Preferred contact time', type: 'select', required: false, options: ['morning', 'afternoon'] },
  ],
  target_value: null,
  unit: null,
};

const generate = (key: string, data: Record<string, unknown> = { description: DESCRIPTION }) =>
  h.invoke(key, { resource: 'goals', action: 'generate', data });

describe('goals.generate with an OpenAI-compatible server', () => {
  it('sends the model, temperature 0.5 and the JSON schema derived from the create schema', async () => {
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    expect((await generate(alice.key)).status).toBe(200);
    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/v1/chat/completions');
    expect(request.headers.authorization).toBe('Bearer test-key');
    expect(request.body).toMatchObject({
      model: MODEL,
      temperature: 0.5,
      response_format: { type: 'json_schema', json_schema: { name: 'goal_suggestion', strict: true } },
    });
    expect(request.body.stream).toBeUndefined();
    const schema = request.body.response_format.json_schema.schema;
    expect(schema).toEqual(strictJsonSchema(goalSuggestion));
    // Strict mode: every object lists all its properties as required and allows no others.
    expect(schema.required).toEqual(['name', 'description', 'lead_fields', 'goal_type', 'target_value', 'min_value', 'max_value', 'unit']);
    expect(schema.additionalProperties).toBe(false);
    const field = schema.properties.lead_fields.items;
    expect(field.required).toEqual(['key', 'label', 'type', 'required', 'description', 'options']);
    expect(field.additionalProperties).toBe(false);
    expect(field.properties.type.enum).toEqual([...leadFieldTypes]);
    expect(field.properties.key.pattern).toBe('^[a-z][a-z0-9_]{0,63}$');
    expect(JSON.stringify(schema)).not.toMatch(/minLength|maxLength|"default"/);
    const [system, user] = request.body.messages;
    expect(system.role).toBe('system');
    expect(user).toEqual({ role: 'user', content: DESCRIPTION });
  });

  it('answers the validated suggestion with provider, model and temperature; it saves with goals.create (201)', async () => {
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    const res = await generate(alice.key);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      data: { suggestion: EXPECTED_SUGGESTION, provider: 'openai', model: MODEL, temperature: 0.5 },
    });
    const created = await h.invoke(alice.key, { resource: 'goals', action: 'create', data: res.body.data.suggestion });
    expect(created.status).toBe(201);
    expect(created.body.data.lead_fields).toEqual(EXPECTED_SUGGESTION.lead_fields);
  });

  it('tells the model about the agent named by agentId', async () => {
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    const agent = await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Front desk', description: 'Inbound calls' } });
    const res = await generate(alice.key, { description: DESCRIPTION, agentId: agent.body.data.id });
    expect(res.status).toBe(200);
    expect(res.body.data.suggestion.agent_id).toBe(agent.body.data.id);
    expect(fake.requests[0]!.body.messages[1].content).toContain('"Front desk": Inbound calls');
  });

  it('retries once after a 5xx and answers the second attempt', async () => {
    fake.queue(status(500), completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    const res = await generate(alice.key);
    expect(res.status).toBe(200);
    expect(res.body.data.suggestion).toEqual(EXPECTED_SUGGESTION);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]!.body).toEqual(fake.requests[0]!.body);
  });

  it('gives up after the one retry: UPSTREAM_ERROR (502)', async () => {
    fake.queue(status(503, 'overloaded'));
    const alice = await h.user();
    const error = expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502);
    expect(error.message).toMatch(/503.*tried twice.*overloaded/);
    expect(fake.requests).toHaveLength(2);
  });

  it('does not retry a 4xx', async () => {
    fake.queue(status(400, 'model not found'));
    const alice = await h.user();
    expect(expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502).message).toMatch(/400.*model not found/);
    expect(fake.requests).toHaveLength(1);
  });

  it('times out after AI_TIMEOUT_MS, retries once, then answers UPSTREAM_ERROR', async () => {
    provider = withTimeout(300);
    fake.queue(hang());
    const alice = await h.user();
    const started = Date.now();
    const error = expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502);
    expect(error.message).toMatch(/did not answer within 300 ms/);
    expect(fake.requests).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(Date.now() - started).toBeLessThan(5_000);
    // Both timed-out requests were abandoned, not left open.
    expect(await Promise.all(fake.requests.map((r) => r.closed))).toEqual([true, true]);
  });

  it('answers UPSTREAM_ERROR for malformed JSON, with the parse error in details', async () => {
    fake.queue(completion('{"name": "Callback", "lead_fields": ['));
    const alice = await h.user();
    const error = expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502);
    expect(error.message).toMatch(/malformed JSON/);
    expect(error).toMatchObject({ details: [{ path: ['suggestion'], type: 'invalid_json', message: expect.any(String) }] });
  });

  it('answers UPSTREAM_ERROR for JSON that breaks the schema, with the validation issues in details', async () => {
    const invalid = {
      ...GOOD_ANSWER,
      lead_fields: [
        { key: 'Full Name', label: 'Full name', type: 'text', required: true, description: null, options: null },
        { key: 'colour', label: 'Colour', type: 'colour', required: true, description: null, options: null },
        { key: 'plan', label: 'Plan', type: 'select', required: true, description: null, options: null },
      ],
    };
    fake.queue(completion(JSON.stringify(invalid)));
    const alice = await h.user();
    const error = expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502);
    expect(error.message).toMatch(/does not match the goal schema/);
    const paths = (error as unknown as { details: { path: unknown[] }[] }).details.map((d) => d.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        ['suggestion', 'lead_fields', 0, 'key'],
        ['suggestion', 'lead_fields', 1, 'type'],
        ['suggestion', 'lead_fields', 2, 'options'],
      ]),
    );
    for (const detail of (error as unknown as { details: object[] }).details) {
      expect(detail).toEqual({ path: expect.any(Array), message: expect.any(String), type: expect.any(String) });
    }
  });

  it('answers UPSTREAM_ERROR for a missing name or a metric that breaks the rules', async () => {
    const alice = await h.user();
    fake.queue(completion(JSON.stringify({ ...GOOD_ANSWER, name: null })));
    expect(expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502)).toMatchObject({ details: [{ path: ['suggestion', 'name'] }] });
    fake.queue(completion(JSON.stringify({ ...GOOD_ANSWER, goal_type: 'scale', target_value: 50 })));
    expect(expectError(await generate(alice.key), 'UPSTREAM_ERROR', 502)).toMatchObject({
      details: [{ path: ['suggestion', 'target_value'], type: 'custom' }],
    });
  });

  it('accepts an answer wrapped in a code fence (some local models add one)', async () => {
    fake.queue(completion(`\`\`\`json\n${JSON.stringify(GOOD_ANSWER)}\n\`\`\``));
    const alice = await h.user();
    expect((await generate(alice.key)).body.data.suggestion).toEqual(EXPECTED_SUGGESTION);
  });
});

describe('goals.generate with an OpenAI-compatible server, over Server-Sent Events (real HTTP)', () => {
  let server: Awaited<ReturnType<typeof serveOnLoopback>>;
  beforeAll(async () => {
    server = await serveOnLoopback(h.app);
  });
  afterAll(() => server.close());

  const open = (key: string, signal?: AbortSignal) =>
    fetch(`${server.url}/v1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ resource: 'goals', action: 'generate', data: { description: DESCRIPTION } }),
      signal,
    });

  it("streams the model's output as progress events as it arrives, then one result event", async () => {
    const answer = JSON.stringify(GOOD_ANSWER);
    const deltas = pieces(answer, 5);
    fake.queue(stream(deltas, { delayMs: 20 }));
    const alice = await h.user();
    const res = await open(alice.key);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const events = await readEvents(res.body!);
    expect(fake.requests[0]!.body).toMatchObject({ model: MODEL, temperature: 0.5, stream: true });
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data);
    expect(progress[0]).toEqual({ stage: 'requesting', provider: 'openai', model: MODEL });
    const generating = progress.filter((p) => p.stage === 'generating');
    expect(generating.map((p) => p.delta)).toEqual(deltas);
    // The provider's last stage, then goals.generate's own once the answer validated.
    expect(progress.slice(-2)).toEqual([{ stage: 'validating' }, { stage: 'validated', name: 'Callback scheduling' }]);
    expect(events.map((e) => e.event).filter((e) => e !== 'progress')).toEqual(['result']);
    expect(events.at(-1)!.data).toEqual({
      success: true,
      data: { suggestion: EXPECTED_SUGGESTION, provider: 'openai', model: MODEL, temperature: 0.5 },
    });
  });

  it('ends with one error event holding the error envelope when the streamed answer is invalid', async () => {
    fake.queue(stream(pieces('{"name": "x", "lead_fields": [', 3)));
    const alice = await h.user();
    const res = await open(alice.key);
    const events = await readEvents(res.body!);
    const terminal = events.filter((e) => e.event !== 'progress');
    expect(terminal).toHaveLength(1);
    expect(terminal[0]!.event).toBe('error');
    expect(terminal[0]!.data).toEqual({
      success: false,
      error: {
        code: 'UPSTREAM_ERROR',
        message: expect.stringMatching(/malformed JSON/),
        status: 502,
        details: [{ path: ['suggestion'], message: expect.any(String), type: 'invalid_json' }],
        request_id: res.headers.get('x-request-id'),
      },
    });
  });

  it('reports a stream that stalls for AI_TIMEOUT_MS as UPSTREAM_ERROR', async () => {
    provider = withTimeout(300);
    fake.queue(stream(['{"name":'], { hold: true }));
    const alice = await h.user();
    const events = await readEvents((await open(alice.key)).body!);
    expect(events.at(-1)!.event).toBe('error');
    expect(events.at(-1)!.data.error).toMatchObject({ code: 'UPSTREAM_ERROR', message: expect.stringMatching(/stopped answering for 300 ms/) });
    expect(await fake.requests[0]!.closed).toBe(true);
  });

  it('still answers when the server ignores stream: true and sends the whole completion', async () => {
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    const events = await readEvents((await open(alice.key)).body!);
    expect(events.at(-1)).toMatchObject({ event: 'result', data: { success: true, data: { suggestion: EXPECTED_SUGGESTION } } });
  });

  it('cancels the upstream request when the client goes away mid-stream', async () => {
    fake.queue(stream(['{"name": "Callback', ' scheduling", '], { delayMs: 10, hold: true }));
    const alice = await h.user();
    const controller = new AbortController();
    const res = await open(alice.key, controller.signal);
    const seen: SseEvent[] = [];
    await readEvents(res.body!, (event) => {
      seen.push(event);
      if (event.event === 'progress' && event.data.stage === 'generating') return 'stop';
    });
    controller.abort();
    expect(seen.at(-1)!.data).toEqual({ stage: 'generating', delta: '{"name": "Callback' });
    expect(fake.requests).toHaveLength(1);
    // The fake server sees its request closed before it finished answering.
    const closedEarly = await Promise.race([
      fake.requests[0]!.closed,
      new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000)),
    ]);
    expect(closedEarly).toBe(true);
  });
});

describe('AI configuration', () => {
  it('defaults to the offline provider, a 30 s timeout and 10 generations a minute', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ AI_PROVIDER: 'offline', AI_TIMEOUT_MS: 30_000, GENERATE_RATE_LIMIT_PER_MINUTE: 10 });
    expect(createAiProvider(config)).toMatchObject({ name: 'offline', temperature: 0.5 });
  });

  it('needs OPENAI_BASE_URL and AI_MODEL with AI_PROVIDER=openai, with a clear message for each', () => {
    expect(() => loadConfig({ AI_PROVIDER: 'openai' })).toThrow(ConfigError);
    try {
      loadConfig({ AI_PROVIDER: 'openai' });
    } catch (error) {
      expect((error as Error).message).toMatch(/OPENAI_BASE_URL: required with AI_PROVIDER=openai/);
      expect((error as Error).message).toMatch(/AI_MODEL: required with AI_PROVIDER=openai/);
    }
    expect(() => loadConfig({ AI_PROVIDER: 'openai', OPENAI_BASE_URL: 'http://localhost:11434/v1' })).toThrow(/AI_MODEL/);
    expect(() => loadConfig({ AI_PROVIDER: 'openai', AI_MODEL: 'llama3.1' })).toThrow(/OPENAI_BASE_URL/);
    expect(() => loadConfig({ AI_PROVIDER: 'openai', OPENAI_BASE_URL: 'localhost:11434', AI_MODEL: 'x' })).toThrow(/OPENAI_BASE_URL/);
    expect(() => loadConfig({ AI_PROVIDER: 'gemini' })).toThrow(/AI_PROVIDER: must be "offline" or "openai"/);
    expect(() => loadConfig({ AI_TIMEOUT_MS: '0' })).toThrow(/AI_TIMEOUT_MS/);
    expect(() => loadConfig({ GENERATE_RATE_LIMIT_PER_MINUTE: 'lots' })).toThrow(/GENERATE_RATE_LIMIT_PER_MINUTE/);
  });

  it('builds the OpenAI-compatible provider from the environment; the API key is optional', () => {
    const config = loadConfig({ AI_PROVIDER: 'openai', OPENAI_BASE_URL: 'http://localhost:11434/v1', AI_MODEL: 'llama3.1', AI_TIMEOUT_MS: '5000' });
    expect(config.OPENAI_API_KEY).toBeUndefined();
    expect(createAiProvider(config)).toMatchObject({ name: 'openai', model: 'llama3.1', temperature: 0.5 });
  });

  it('the provider built from the environment loads the SDK on its first generation and answers through it', async () => {
    const config = loadConfig({ AI_PROVIDER: 'openai', OPENAI_BASE_URL: fake.baseUrl, AI_MODEL: MODEL });
    provider = createAiProvider(config);
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    const res = await generate(alice.key);
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ suggestion: EXPECTED_SUGGESTION, provider: 'openai', model: MODEL });
    expect(fake.requests).toHaveLength(1);
  });

  it('sends no key the server could mistake for a real one when OPENAI_API_KEY is unset', async () => {
    provider = createOpenAiProvider({ baseUrl: fake.baseUrl, model: MODEL, timeoutMs: 10_000 });
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    expect((await generate(alice.key)).status).toBe(200);
    expect(fake.requests[0]!.headers.authorization).toBe('Bearer not-needed');
  });
});

describe('an unknown agent with the OpenAI-compatible provider', () => {
  it('is AGENT_NOT_FOUND and never reaches the model', async () => {
    fake.queue(completion(JSON.stringify(GOOD_ANSWER)));
    const alice = await h.user();
    expectError(await generate(alice.key, { description: DESCRIPTION, agentId: randomUUID() }), 'AGENT_NOT_FOUND', 404);
    expect(fake.requests).toHaveLength(0);
  });
});
