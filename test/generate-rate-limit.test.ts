import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createHarness, expectError, type Harness } from './support/harness.ts';

// The per-user limit of goals.generate, at its configured default, on top of the general limit.

const perMinute = loadConfig({}).GENERATE_RATE_LIMIT_PER_MINUTE;

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ generateRateLimitPerMinute: perMinute, rateLimitPerMinute: 1000 });
});
afterAll(() => h.close());

const generate = (key: string, data: Record<string, unknown> = { description: 'Collect email' }) =>
  h.invoke(key, { resource: 'goals', action: 'generate', data });

describe('goals.generate rate limit', () => {
  it(`allows GENERATE_RATE_LIMIT_PER_MINUTE (default ${perMinute}) calls a minute per user; the next is 429 with Retry-After`, async () => {
    expect(perMinute).toBe(10);
    const alice = await h.user();
    const bob = await h.user();
    for (let i = 0; i < perMinute; i++) {
      expect((await generate(alice.key, { description: `Collect email ${i}` })).status).toBe(200);
    }
    const over = await generate(alice.key);
    const error = expectError(over, 'RATE_LIMIT_EXCEEDED', 429);
    expect(error.message).toMatch(/10 generations per minute/);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(over.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(over.headers.get('ratelimit-limit')).toBe(String(perMinute));
    expect(over.headers.get('ratelimit-remaining')).toBe('0');
    // Only generate is limited so: the same user's other calls go on, and other users are unaffected.
    expect((await h.invoke(alice.key, { resource: 'goals', action: 'list' })).status).toBe(200);
    expect((await generate(bob.key)).status).toBe(200);
    // A second key of the same user shares the user's budget.
    const second = await h.invoke(alice.key, { resource: 'api-keys', action: 'create', data: { name: 'second' } });
    expectError(await generate(second.body.data.key), 'RATE_LIMIT_EXCEEDED', 429);
    // With SSE: refused before any stream opens, as plain JSON.
    const sse = await h.request('/v1', {
      method: 'POST',
      key: alice.key,
      headers: { accept: 'text/event-stream' },
      body: JSON.stringify({ resource: 'goals', action: 'generate', data: { description: 'Collect email' } }),
    });
    expect(sse.headers.get('content-type')).toMatch(/application\/json/);
    expectError(sse, 'RATE_LIMIT_EXCEEDED', 429);
  });

  it('counts only valid requests', async () => {
    const carol = await h.user();
    for (let i = 0; i < 5; i++) expectError(await generate(carol.key, { description: '' }), 'VALIDATION_ERROR', 400);
    for (let i = 0; i < perMinute; i++) expect((await generate(carol.key)).status).toBe(200);
    expectError(await generate(carol.key), 'RATE_LIMIT_EXCEEDED', 429);
  });
});
