import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OFFLINE_MODEL } from '../src/ai/offline.ts';
import { goalCreateInput } from '../src/resources/goals/schemas.ts';
import { createHarness, expectError, type Harness } from './support/harness.ts';
import { readEvents, serveOnLoopback } from './support/sse.ts';

// goals.generate through the API, with the embedded offline provider (the default).

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const generate = (key: string, data: Record<string, unknown>, harness: Harness = h) =>
  harness.invoke(key, { resource: 'goals', action: 'generate', data });

const goalCount = async (ownerId: string) =>
  Number((await h.db.selectFrom('goals').select((eb) => eb.fn.countAll<string>().as('n')).where('owner_id', '=', ownerId).executeTakeFirstOrThrow()).n);

describe('goals.generate (offline provider)', () => {
  it('answers a suggestion with provider, model and temperature, valid as goals.create input', async () => {
    const alice = await h.user();
    const res = await generate(alice.key, {
      description: 'Collect customer name, email, and preferred contact time for callback scheduling',
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      data: {
        suggestion: {
          name: 'Callback scheduling',
          description: 'Collect customer name, email, and preferred contact time for callback scheduling',
          lead_fields: [
            { key: 'full_name', label: 'Full name', type: 'text', required: true },
            { key: 'email', label: 'Email', type: 'email', required: true },
            { key: 'preferred_contact_time', label: 'Preferred contact time', type: 'text', required: true },
          ],
        },
        provider: 'offline',
        model: OFFLINE_MODEL,
        temperature: 0.5,
      },
    });
    expect(goalCreateInput.safeParse(res.body.data.suggestion).success).toBe(true);
  });

  it('suggests a metric, select options and optional fields where the text says so', async () => {
    const alice = await h.user();
    const res = await generate(alice.key, {
      description: 'Book 20 demos this month. Ask for name, work email, plan (basic, pro or enterprise), and phone (optional).',
    });
    expect(res.status).toBe(200);
    const suggestion = res.body.data.suggestion;
    expect(suggestion).toMatchObject({ name: 'Book 20 demos', goal_type: 'numeric', target_value: 20, unit: 'demos' });
    expect(suggestion.lead_fields).toEqual([
      { key: 'full_name', label: 'Full name', type: 'text', required: true },
      { key: 'work_email', label: 'Work email', type: 'email', required: true },
      { key: 'plan', label: 'Plan', type: 'select', required: true, options: ['basic', 'pro', 'enterprise'] },
      { key: 'phone', label: 'Phone number', type: 'phone', required: false },
    ]);
  });

  it('is deterministic', async () => {
    const alice = await h.user();
    const description = 'Gather shipping details: full name, street address, city, state, zip code and country.';
    const first = await generate(alice.key, { description });
    const second = await generate(alice.key, { description });
    expect(second.body.data).toEqual(first.body.data);
  });

  it('saves nothing, and its suggestion saves with goals.create unchanged (201)', async () => {
    const alice = await h.user();
    const res = await generate(alice.key, {
      description: 'Real estate buyer intake: budget, number of bedrooms, move-in date, website, and whether they are pre-approved. Close 12 sales this quarter.',
    });
    expect(res.status).toBe(200);
    expect(await goalCount(alice.id)).toBe(0);
    const created = await h.invoke(alice.key, { resource: 'goals', action: 'create', data: res.body.data.suggestion });
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({
      name: res.body.data.suggestion.name,
      lead_fields: res.body.data.suggestion.lead_fields,
      goal_type: 'numeric',
      target_value: 12,
      unit: 'sales',
    });
    expect(await goalCount(alice.id)).toBe(1);
  });

  it("takes the caller's agent (the suggestion then carries its agent_id) and refuses anyone else's", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const agent = await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Front desk' } });
    const own = await generate(alice.key, { description: 'Collect name and email', agentId: agent.body.data.id });
    expect(own.status).toBe(200);
    expect(own.body.data.suggestion.agent_id).toBe(agent.body.data.id);
    const saved = await h.invoke(alice.key, { resource: 'goals', action: 'create', data: own.body.data.suggestion });
    expect(saved.status).toBe(201);
    expect(saved.body.data.agent_id).toBe(agent.body.data.id);

    expectError(await generate(bob.key, { description: 'Collect name and email', agentId: agent.body.data.id }), 'AGENT_NOT_FOUND', 404);
    expectError(await generate(alice.key, { description: 'Collect name and email', agentId: randomUUID() }), 'AGENT_NOT_FOUND', 404);
  });

  it('validates the description: 1–2000 characters, no other fields, no id', async () => {
    const alice = await h.user();
    const empty = expectError(await generate(alice.key, { description: '   ' }), 'VALIDATION_ERROR', 400);
    expect(empty).toMatchObject({ details: [{ path: ['data', 'description'] }] });
    expectError(await generate(alice.key, {}), 'VALIDATION_ERROR', 400);
    const long = expectError(await generate(alice.key, { description: 'x'.repeat(2001) }), 'VALIDATION_ERROR', 400);
    expect(long).toMatchObject({ details: [{ path: ['data', 'description'], type: 'too_big' }] });
    expect((await generate(alice.key, { description: `Collect email. ${'x'.repeat(1985)}` })).status).toBe(200);
    expectError(await generate(alice.key, { description: 'Collect email', temperature: 1 }), 'VALIDATION_ERROR', 400);
    expectError(await generate(alice.key, { description: 'Collect email', agentId: 'nope' }), 'VALIDATION_ERROR', 400);
    const withId = await h.invoke(alice.key, { resource: 'goals', action: 'generate', id: randomUUID(), data: { description: 'x' } });
    expectError(withId, 'VALIDATION_ERROR', 400);
  });

  it('is not for the read-only consumer role', async () => {
    const consumer = await h.user('consumer');
    expectError(await generate(consumer.key, { description: 'Collect email' }), 'FORBIDDEN', 403);
  });

  it('is reachable through POST /v1/goals/generate as well', async () => {
    const alice = await h.user();
    const res = await h.request('/v1/goals/generate', { method: 'POST', key: alice.key, body: JSON.stringify({ data: { description: 'Collect email' } }) });
    expect(res.status).toBe(200);
    expect(res.body.data.suggestion.lead_fields).toEqual([{ key: 'email', label: 'Email', type: 'email', required: true }]);
  });
});

describe('goals.generate over Server-Sent Events (offline provider, real HTTP)', () => {
  it('sends progress events for each stage, then one result event with the JSON answer', async () => {
    const alice = await h.user();
    const server = await serveOnLoopback(h.app);
    try {
      const description = 'Event registration: first name, last name, email and t-shirt size (S, M, L, XL).';
      const res = await fetch(`${server.url}/v1`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ resource: 'goals', action: 'generate', data: { description } }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const events = await readEvents(res.body!);
      const progress = events.filter((e) => e.event === 'progress');
      expect(progress.map((e) => e.data.stage)).toEqual(['reading', 'fields', 'metric', 'validated']);
      expect(progress[1]!.data.fields.map((f: { key: string }) => f.key)).toEqual(['first_name', 'last_name', 'email', 't_shirt_size']);
      expect(events.at(-1)!.event).toBe('result');
      expect(events.filter((e) => e.event === 'result' || e.event === 'error')).toHaveLength(1);
      const json = await generate(alice.key, { description });
      expect(events.at(-1)!.data).toEqual(json.body);
    } finally {
      await server.close();
    }
  });

  it('answers a request refused before the stream opens as plain JSON', async () => {
    const alice = await h.user();
    const res = await h.request('/v1', {
      method: 'POST',
      key: alice.key,
      headers: { accept: 'text/event-stream' },
      body: JSON.stringify({ resource: 'goals', action: 'generate', data: { description: '' } }),
    });
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expectError(res, 'VALIDATION_ERROR', 400);
    const agentless = await h.request('/v1', {
      method: 'POST',
      key: alice.key,
      headers: { accept: 'text/event-stream' },
      body: JSON.stringify({ resource: 'goals', action: 'generate', data: { description: 'Collect email', agentId: randomUUID() } }),
    });
    // The agent is looked up by the handler, so that failure arrives as an `error` event.
    expect(agentless.status).toBe(200);
    expect(agentless.body).toContain('event: error');
    expect(agentless.body).toContain('"code":"AGENT_NOT_FOUND"');
  });
});
