import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, expectError, type Harness } from './support/harness.ts';
import { WsClient, type Frame } from './support/ws-client.ts';

// Its own file: the embedded database serves one connection, so one harness (here with a limit of 5
// requests a minute) per file.
let h: Harness;
beforeAll(async () => {
  h = await createHarness({ rateLimitPerMinute: 5 });
});
afterAll(() => h.close());

describe('WebSocket rate limit', () => {
  it("counts each frame against the credential's limit, shared with HTTP", async () => {
    const live = await h.listen();
    const alice = await h.user();
    const ws = await WsClient.open(live.wsUrl, { authorization: `Bearer ${alice.key}` });
    const answers: Frame[] = [];
    for (let i = 0; i < 4; i++) answers.push(await ws.call(i, { resource: 'goals', action: 'list' }));
    expect(answers.map((a) => a.success)).toEqual([true, true, true, true]);
    expect(answers.map((a) => a.rate_limit)).toEqual([4, 3, 2, 1].map((remaining) => ({ limit: 5, remaining, reset: expect.any(Number) })));
    // A malformed frame counts too: the fifth.
    ws.send('not json');
    expect(await ws.next((f) => f.type === 'error')).toMatchObject({ request_id: null, error: { code: 'VALIDATION_ERROR' } });
    const over = await ws.call('over', { resource: 'goals', action: 'list' });
    expect(over).toMatchObject({ success: false, error: { code: 'RATE_LIMIT_EXCEEDED', status: 429 } });
    expect(over.rate_limit).toEqual({ limit: 5, remaining: 0, reset: expect.any(Number) });
    // Past the limit a malformed frame is answered with the 429.
    ws.send('still not json');
    expect(await ws.next((f) => f.type === 'error' && f.error.code === 'RATE_LIMIT_EXCEEDED')).toMatchObject({ request_id: null });
    // The same credential over HTTP is over the limit as well; another user is not.
    expectError(await h.invoke(alice.key, { resource: 'goals', action: 'list' }), 'RATE_LIMIT_EXCEEDED', 429);
    const bob = await h.user();
    expect((await h.invoke(bob.key, { resource: 'goals', action: 'list' })).status).toBe(200);
    // Unauthenticated frames do not count against anyone (there is no credential to count).
    const anonymous = await WsClient.open(live.wsUrl);
    expect((await anonymous.call('anon', { resource: 'goals', action: 'list' })).error.code).toBe('UNAUTHORIZED');
    await anonymous.close();
    await ws.close();
  });
});
