import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './support/harness.ts';

// Its own file: the embedded database serves one connection, so one harness (here with a limit of 3 requests a
// minute) per file.
let h: Harness;
beforeAll(async () => {
  h = await createHarness({ rateLimitPerMinute: 3 });
});
afterAll(() => h.close());

describe('/mcp rate limit', () => {
  it("counts each request against the credential's limit, shared with /v1", async () => {
    const server = await h.listen();
    const alice = await h.user();
    expect((await h.invoke(alice.key, { resource: 'goals', action: 'list' })).status).toBe(200);
    const answers: { status: number; body: any }[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${server.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'goals_list', arguments: {} } }),
      });
      answers.push({ status: res.status, body: await res.json() });
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429, 429]);
    expect(answers[0]!.body.result.structuredContent).toMatchObject({ items: [], count: 0 });
    expect(answers[2]!.body.error).toMatchObject({ code: 'RATE_LIMIT_EXCEEDED' });
  });
});
