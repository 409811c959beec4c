import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOfflineProvider, OFFLINE_MODEL } from '../src/ai/offline.ts';
import { createApp } from '../src/app.ts';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import { createLogger } from '../src/logger.ts';
import { listen } from '../src/server.ts';
import { createWebSocketHub } from '../src/http/websocket.ts';
import { createOpenAiProvider } from '../src/ai/openai.ts';
import type { AiProvider } from '../src/ai/provider.ts';
import { checkGraph, LAYER_SPACING } from '../src/resources/roadmaps/graph.ts';
import { completion, delegatingProvider, hang, pieces, startFakeOpenAi, status, stream, type FakeOpenAi } from './support/fake-openai.ts';
import { appServices, createHarness, expectError, ok, type Harness } from './support/harness.ts';
import { readEvents } from './support/sse.ts';
import { WsClient } from './support/ws-client.ts';

// goals.generate-roadmap with the offline provider and with the OpenAI-compatible one against a fake
// server on 127.0.0.1, over HTTP, SSE and the WebSocket. One harness (the embedded database serves one
// connection); its provider delegates to `provider`, which a test may swap.

const MODEL = 'roadmap-model';
let fake: FakeOpenAi;
let h: Harness;
let server: Awaited<ReturnType<Harness['listen']>>;
let provider: AiProvider = createOfflineProvider();
const delegating = delegatingProvider(() => provider);
const openai = (timeoutMs = 10_000) => createOpenAiProvider({ baseUrl: fake.baseUrl, apiKey: 'test-key', model: MODEL, timeoutMs });

beforeAll(async () => {
  fake = await startFakeOpenAi();
  h = await createHarness({ ai: delegating });
  server = await h.listen();
});
afterEach(() => {
  provider = createOfflineProvider();
});
afterAll(async () => {
  await h.close();
  await fake.close();
});

type User = Awaited<ReturnType<Harness['user']>>;

const goals = (key: string, action: string, envelope: { id?: string; data?: unknown } = {}) =>
  h.invoke(key, { resource: 'goals', action, ...envelope });
const generate = (key: string, id: string, data: Record<string, unknown> = {}) => goals(key, 'generate-roadmap', { id, data });

async function goalWith(user: User, data: Record<string, unknown>) {
  return ok(await goals(user.key, 'create', { data: { status: 'inactive', ...data } }), 201);
}

/** A roadmap as stored is a DAG whose edges all point right, every node at its own place. */
function expectLaidOut(roadmap: any) {
  expect(checkGraph(roadmap)).toEqual([]);
  const at = new Map<string, { x: number; y: number }>(roadmap.nodes.map((n: any) => [n.id, n.position]));
  for (const edge of roadmap.edges) expect(at.get(edge.target)!.x).toBeGreaterThan(at.get(edge.source)!.x);
  expect(new Set([...at.values()].map((p) => `${p.x},${p.y}`)).size).toBe(roadmap.nodes.length);
  expect(Math.max(...[...at.values()].map((p) => p.x))).toBeGreaterThanOrEqual(LAYER_SPACING);
}

const labels = (roadmap: any): string[] => roadmap.nodes.map((n: any) => n.label);

describe('generate-roadmap, offline provider', () => {
  it('plans a goal-specific roadmap from the description and target date, lays it out and saves it', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, {
      name: 'Learn Machine Learning',
      description: 'Master ML fundamentals and build 3 projects',
      target_date: '2026-12-31T00:00:00Z',
    });
    const generated = ok(await generate(alice.key, goal.id));
    expect(labels(generated.roadmap)).toEqual([
      'Kick off "Learn Machine Learning": agree what done looks like',
      expect.stringMatching(/^Master ML fundamentals by 20\d\d-\d\d-\d\d$/),
      expect.stringMatching(/^Build 3 projects by 20\d\d-\d\d-\d\d$/),
      'Done: Learn Machine Learning by 2026-12-31',
    ]);
    expect(generated.roadmap.nodes.every((n: any) => n.completed === false)).toBe(true);
    expect(generated.roadmap.edges).toEqual([
      { id: 'm1->m2', source: 'm1', target: 'm2' },
      { id: 'm2->m3', source: 'm2', target: 'm3' },
      { id: 'm3->m4', source: 'm3', target: 'm4' },
    ]);
    expectLaidOut(generated.roadmap);
    expect(generated.progress).toBe(0);
    expect(generated.updated_at > goal.updated_at).toBe(true);
    expect(ok(await goals(alice.key, 'get', { id: goal.id }))).toEqual(generated);
  });

  it('is deterministic, and follows the lead fields, the metric and the instructions', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, {
      name: 'Qualify inbound leads',
      lead_fields: [
        { key: 'full_name', label: 'Full name', type: 'text', required: true },
        { key: 'email', label: 'Email', type: 'email', required: true },
        { key: 'budget', label: 'Budget', type: 'number' },
        { key: 'callback_at', label: 'Callback time', type: 'datetime' },
      ],
      goal_type: 'numeric',
      target_value: 40,
      current_value: 0,
      unit: 'qualified leads',
    });
    const first = ok(await generate(alice.key, goal.id, { instructions: 'Pilot the script with five callers. Then roll it out.' }));
    const again = ok(await generate(alice.key, goal.id, { instructions: 'Pilot the script with five callers. Then roll it out.' }));
    expect(again.roadmap).toEqual(first.roadmap);
    const texts = labels(first.roadmap);
    expect(texts).toEqual(
      expect.arrayContaining([
        'Write the questions that collect Full name, Email, Budget and Callback time',
        'Collect contact details: Full name and Email',
        'Collect scheduling: Callback time',
        'Collect qualification: Budget',
        'Check every lead has Full name and Email',
        'Reach 10 qualified leads',
        'Reach 20 qualified leads',
        'Reach 30 qualified leads',
        'Hit the target of 40 qualified leads',
        'Pilot the script with five callers',
        'Roll it out',
        'Done: Qualify inbound leads',
      ]),
    );
    expectLaidOut(first.roadmap);
    // Parallel streams: the final milestone waits for each of them.
    const done = first.roadmap.nodes.at(-1).id;
    expect(first.roadmap.edges.filter((e: any) => e.target === done)).toHaveLength(3);
    // A different goal gets a different roadmap.
    const other = await goalWith(alice, { name: 'Tidy the garage' });
    const plain = ok(await generate(alice.key, other.id));
    expect(labels(plain.roadmap)).toEqual([
      'Kick off "Tidy the garage": agree what done looks like',
      'Plan the steps towards "Tidy the garage"',
      'Gather what the plan needs',
      'Work through the plan',
      'Review the result',
      'Done: Tidy the garage',
    ]);
  });

  it('replaces the roadmap: progress starts over and items leave the old nodes, keeping their goal', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, {
      name: 'Ship v2',
      roadmap: { nodes: [{ id: 'm1', label: 'Old first', completed: true }, { id: 'old', label: 'Old second' }], edges: [] },
    });
    expect(goal.progress).toBe(50);
    const item = ok(await h.invoke(alice.key, { resource: 'action-items', action: 'create', data: { description: 'On m1', goal_id: goal.id, roadmap_node_id: 'm1', completed: true } }), 201);
    const generated = ok(await generate(alice.key, goal.id));
    expect(generated.progress).toBe(0);
    expect(generated.roadmap.nodes.map((n: any) => n.id)).toContain('m1'); // the id repeats, the milestone is new
    const after = ok(await h.invoke(alice.key, { resource: 'action-items', action: 'get', id: item.id }));
    expect(after).toMatchObject({ goal_id: goal.id, roadmap_node_id: null, completed: true });
  });

  it('refuses bad input, and answers NOT_FOUND for a goal that is not yours before asking the provider', async () => {
    const alice = await h.user();
    const bob = await h.user();
    const goal = await goalWith(alice, { name: 'Mine' });
    expectError(await generate(alice.key, goal.id, { instructions: '' }), 'VALIDATION_ERROR', 400);
    expectError(await generate(alice.key, goal.id, { instructions: 'x'.repeat(2001) }), 'VALIDATION_ERROR', 400);
    expectError(await generate(alice.key, goal.id, { colour: 'red' }), 'VALIDATION_ERROR', 400);
    provider = openai();
    fake.queue(status(500));
    expectError(await generate(bob.key, goal.id), 'NOT_FOUND', 404);
    expect(fake.requests).toHaveLength(0);
    expect(ok(await goals(alice.key, 'get', { id: goal.id })).roadmap).toBeNull();
  });

  it('streams progress events, then the result, over SSE', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { name: 'Run a 10k', goal_type: 'numeric', target_value: 10, unit: 'km' });
    const res = await fetch(`${server.url}/v1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ resource: 'goals', action: 'generate-roadmap', id: goal.id }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readEvents(res.body!);
    expect(events.map((e) => e.event)).toEqual(['progress', 'progress', 'progress', 'progress', 'result']);
    expect(events.map((e) => e.data.stage)).toEqual(['planning', 'milestones', 'layout', 'saved', undefined]);
    expect(events[0]!.data).toEqual({ stage: 'planning', provider: 'offline', model: OFFLINE_MODEL });
    expect(events[2]!.data).toEqual({ stage: 'layout', nodes: 6, edges: 5, layers: 6 });
    const result = events.at(-1)!.data;
    expect(result).toMatchObject({ success: true, data: { id: goal.id, progress: 0 } });
    expect(labels(result.data.roadmap)).toContain('Reach 5 km');
    expect(ok(await goals(alice.key, 'get', { id: goal.id }))).toEqual(result.data);
  });
});

/** What a model answers: milestones with dependencies (the JSON the fake server sends as the message content). */
const MILESTONES = {
  milestones: [
    { id: 'research', label: 'Research the market', depends_on: [] },
    { id: 'build', label: 'Build the prototype', depends_on: ['research'] },
    { id: 'docs', label: 'Write the docs', depends_on: ['research'] },
    { id: 'launch', label: 'Launch by 2026-12-31', depends_on: ['build', 'docs', 'docs'] },
  ],
};

describe('generate-roadmap, OpenAI-compatible provider (fake server)', () => {
  it('asks with structured output at temperature 0.5 and saves the answer, laid out', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, {
      name: 'Launch the beta',
      description: 'Get the beta to 50 users',
      target_date: '2026-12-31T00:00:00Z',
      lead_fields: [{ key: 'email', label: 'Email', type: 'email', required: true }],
      goal_type: 'numeric',
      target_value: 50,
      unit: 'users',
    });
    provider = openai();
    fake.queue(completion(JSON.stringify(MILESTONES)));
    const generated = ok(await generate(alice.key, goal.id, { instructions: 'Keep it to four steps.' }));
    expect(generated.roadmap).toEqual({
      nodes: [
        { id: 'research', label: 'Research the market', completed: false, position: { x: 0, y: 60 } },
        { id: 'build', label: 'Build the prototype', completed: false, position: { x: LAYER_SPACING, y: 0 } },
        { id: 'docs', label: 'Write the docs', completed: false, position: { x: LAYER_SPACING, y: 120 } },
        { id: 'launch', label: 'Launch by 2026-12-31', completed: false, position: { x: 2 * LAYER_SPACING, y: 60 } },
      ],
      edges: [
        { id: 'research->build', source: 'research', target: 'build' },
        { id: 'research->docs', source: 'research', target: 'docs' },
        { id: 'build->launch', source: 'build', target: 'launch' },
        { id: 'docs->launch', source: 'docs', target: 'launch' },
      ],
    });
    expect(fake.requests).toHaveLength(1);
    const sent = fake.requests[0]!;
    expect(sent.url).toBe('/v1/chat/completions');
    expect(sent.headers.authorization).toBe('Bearer test-key');
    expect(sent.body).toMatchObject({
      model: MODEL,
      temperature: 0.5,
      response_format: { type: 'json_schema', json_schema: { name: 'goal_roadmap', strict: true } },
    });
    const schema = sent.body.response_format.json_schema.schema;
    expect(schema.required).toEqual(['milestones']);
    expect(schema.properties.milestones.items.required).toEqual(['id', 'label', 'depends_on']);
    const user = sent.body.messages.find((m: any) => m.role === 'user').content as string;
    for (const part of ['Launch the beta', 'Get the beta to 50 users', 'Email (required)', 'from 0 to 50 users', 'Target date: 2026-12-31', 'Keep it to four steps.']) {
      expect(user).toContain(part);
    }
  });

  it('answers UPSTREAM_ERROR for an invalid graph or a failing server, and keeps the roadmap it had', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { name: 'Keep me', roadmap: { nodes: [{ id: 'a', label: 'Kept' }] } });
    provider = openai();
    const attempt = async (...replies: Parameters<FakeOpenAi['queue']>) => {
      fake.queue(...replies);
      return expectError(await generate(alice.key, goal.id), 'UPSTREAM_ERROR', 502) as any;
    };
    const cyclic = await attempt(
      completion(JSON.stringify({ milestones: [{ id: 'a', label: 'A', depends_on: ['b'] }, { id: 'b', label: 'B', depends_on: ['a'] }] })),
    );
    expect(cyclic.message).toMatch(/roadmap is not a valid roadmap/);
    expect(cyclic.details).toEqual([
      // a → b → a: the dependency of `a` on `b` closes it.
      { path: ['roadmap', 'milestones', 0, 'depends_on', 0], message: 'this edge closes a cycle: "a" → "b" → "a"; a roadmap has no cycles', type: 'custom' },
    ]);
    const dangling = await attempt(completion(JSON.stringify({ milestones: [{ id: 'a', label: 'A', depends_on: ['ghost'] }] })));
    expect(dangling.details).toEqual([
      { path: ['roadmap', 'milestones', 0, 'depends_on', 0], message: 'no node has the id "ghost"', type: 'custom' },
    ]);
    const duplicate = await attempt(completion(JSON.stringify({ milestones: [{ id: 'a', label: 'A', depends_on: [] }, { id: 'a', label: 'B', depends_on: [] }] })));
    expect(duplicate.details[0].path).toEqual(['roadmap', 'milestones', 1, 'id']);
    const tooMany = await attempt(completion(JSON.stringify({ milestones: Array.from({ length: 31 }, (_, i) => ({ id: `m${i}`, label: 'x', depends_on: [] })) })));
    expect(tooMany.details[0].path).toEqual(['roadmap', 'milestones']);
    const empty = await attempt(completion(JSON.stringify({ milestones: [{ id: 'a', label: '', depends_on: [] }] })));
    expect(empty.details[0].path).toEqual(['roadmap', 'milestones', 0, 'label']);
    expect((await attempt(completion('not json at all'))).message).toMatch(/malformed JSON/);
    expect((await attempt(status(500), status(500))).message).toMatch(/500 \(tried twice\)/);
    expect(fake.requests).toHaveLength(2);
    const row = ok(await goals(alice.key, 'get', { id: goal.id }));
    expect(row.roadmap.nodes.map((n: any) => n.label)).toEqual(['Kept']);
    expect(row.updated_at).toBe(goal.updated_at);
  });

  it("streams the model's output over SSE, then the result", async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { name: 'Streamed' });
    provider = openai();
    fake.queue(stream(pieces(JSON.stringify(MILESTONES), 5)));
    const res = await fetch(`${server.url}/v1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ resource: 'goals', action: 'generate-roadmap', id: goal.id }),
    });
    const events = await readEvents(res.body!);
    const stages = events.filter((e) => e.event === 'progress').map((e) => e.data.stage);
    expect(stages[0]).toBe('requesting');
    expect(stages.filter((s) => s === 'generating')).toHaveLength(5);
    expect(stages.slice(-4)).toEqual(['validating', 'milestones', 'layout', 'saved']);
    expect(fake.requests[0]!.body.stream).toBe(true);
    expect(events.at(-1)).toMatchObject({ event: 'result', data: { success: true, data: { roadmap: { nodes: expect.any(Array) } } } });
    expect(events.at(-1)!.data.data.roadmap.nodes).toHaveLength(4);
  });
});

describe('generate-roadmap over the WebSocket', () => {
  it('streams progress frames, then exactly one result frame', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { name: 'Socket roadmap', description: 'Draft the plan and then review it with the team' });
    const ws = await WsClient.open(server.wsUrl, { authorization: `Bearer ${alice.key}` });
    ws.send({ request_id: 'gen', resource: 'goals', action: 'generate-roadmap', id: goal.id, data: { instructions: 'Celebrate at the end.' } });
    ws.send({ request_id: 'list', resource: 'goals', action: 'list' });
    const result = await ws.result('gen');
    expect(result).toMatchObject({ request_id: 'gen', type: 'result', success: true, status: 200, data: { id: goal.id, progress: 0 } });
    expectLaidOut(result.data.roadmap);
    const frames = ws.framesOf('gen');
    expect(frames.map((f) => f.type)).toEqual(['progress', 'progress', 'progress', 'progress', 'result']);
    expect(frames.slice(0, 4).map((f) => f.stage)).toEqual(['planning', 'milestones', 'layout', 'saved']);
    expect((await ws.result('list')).data.items.map((g: any) => g.id)).toEqual([goal.id]);
    expect(labels(result.data.roadmap)).toContain('Celebrate at the end');
    await ws.close();
  });

  it('closing the socket aborts a generation in flight: the upstream request is cancelled and nothing is saved', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { name: 'Never finished' });
    provider = openai();
    fake.queue(stream(['{"milestones":'], { hold: true }));
    const ws = await WsClient.open(server.wsUrl, { authorization: `Bearer ${alice.key}` });
    ws.send({ request_id: 'slow', resource: 'goals', action: 'generate-roadmap', id: goal.id });
    await ws.next((f) => f.request_id === 'slow' && f.stage === 'generating');
    expect(fake.requests).toHaveLength(1);
    await ws.close();
    expect(await fake.requests[0]!.closed).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(ok(await goals(alice.key, 'get', { id: goal.id })).roadmap).toBeNull();
    expect(ws.framesOf('slow').filter((f) => f.type === 'result')).toHaveLength(0);
  });

  it('answers a provider failure as a result frame with UPSTREAM_ERROR', async () => {
    const alice = await h.user();
    const goal = await goalWith(alice, { name: 'Fails' });
    provider = openai(300);
    fake.queue(hang());
    const ws = await WsClient.open(server.wsUrl, { authorization: `Bearer ${alice.key}` });
    const result = await ws.call('fail', { resource: 'goals', action: 'generate-roadmap', id: goal.id });
    expect(result).toMatchObject({ type: 'result', success: false, error: { code: 'UPSTREAM_ERROR', status: 502 } });
    expect(ws.framesOf('fail').filter((f) => f.type === 'result')).toHaveLength(1);
    await ws.close();
  });

  it('shutdown drains: requests in flight finish, new ones are refused, then the sockets close with 1001', async () => {
    // An app of its own on the run's database, so that draining its hub leaves the other tests alone.
    const hub = createWebSocketHub();
    const app = createApp({
      db: h.db,
      authenticator: h.authenticator,
      rateLimiter: createRateLimiter({ perMinute: 1_000_000, store: 'memory' }),
      logger: createLogger('silent'),
      maxActiveGoals: 3,
      bodyLimitBytes: 1024 * 1024,
      webSockets: hub,
      ...appServices({ ai: delegating }),
    });
    const own = await listen(app, { port: 0, hostname: '127.0.0.1', maxFrameBytes: 1024 * 1024 });
    try {
      const alice = await h.user();
      const goal = await goalWith(alice, { name: 'Drained' });
      provider = openai();
      fake.queue(stream(pieces(JSON.stringify(MILESTONES), 4), { delayMs: 60 }));
      const ws = await WsClient.open(`ws://127.0.0.1:${own.port}/v1/ws`, { authorization: `Bearer ${alice.key}` });
      ws.send({ request_id: 'inflight', resource: 'goals', action: 'generate-roadmap', id: goal.id });
      await ws.next((f) => f.request_id === 'inflight' && f.stage === 'generating');
      const drained = hub.drain(5_000);
      const late = await ws.call('late', { resource: 'goals', action: 'list' });
      expect(late.error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', status: 503 });
      await drained;
      expect(await ws.result('inflight')).toMatchObject({ success: true, data: { id: goal.id, roadmap: { nodes: expect.any(Array) } } });
      expect(await ws.closed).toEqual({ code: 1001, reason: 'server shutting down' });
      await expect.poll(() => hub.size).toBe(0);
    } finally {
      own.server.closeAllConnections();
      await new Promise<void>((resolve) => own.server.close(() => resolve()));
    }
  });
});
