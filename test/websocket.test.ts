import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_IN_FLIGHT } from '../src/http/websocket.ts';
import { createHarness, expectError, TEST_SERVICE_KEY, type Harness } from './support/harness.ts';
import { WsClient, type Frame } from './support/ws-client.ts';

let h: Harness;
let server: Awaited<ReturnType<Harness['listen']>>;
beforeAll(async () => {
  h = await createHarness({ bodyLimitBytes: 64 * 1024 });
  server = await h.listen();
});
afterAll(() => h.close());

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** The error part of an envelope without its request id, to compare a WebSocket answer with HTTP's. */
const withoutRequestId = (error: Record<string, unknown>) => {
  const { request_id: _r, ...rest } = error;
  return rest;
};

function expectFrameError(frame: Frame, code: string, status: number) {
  expect(frame, JSON.stringify(frame)).toMatchObject({ success: false, error: { code, status, message: expect.any(String), request_id: expect.any(String) } });
  return frame.error;
}

describe('WebSocket authentication', () => {
  it('takes credentials from the upgrade headers (Authorization or X-API-Key)', async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl, bearer(alice.key));
    const created = await ws.call('c1', { resource: 'goals', action: 'create', data: { name: 'Over the socket' } });
    expect(created).toEqual({
      request_id: 'c1',
      type: 'result',
      success: true,
      status: 201,
      data: expect.objectContaining({ name: 'Over the socket', progress: 0, roadmap: null }),
      rate_limit: expect.objectContaining({ limit: 1_000_000 }),
    });
    const viaHttp = await h.invoke(alice.key, { resource: 'goals', action: 'get', id: created.data.id });
    expect(viaHttp.body.data).toEqual(created.data);
    await ws.close();

    const byApiKey = await WsClient.open(server.wsUrl, { 'x-api-key': alice.key });
    const listed = await byApiKey.call(7, { resource: 'goals', action: 'list' });
    expect(listed).toMatchObject({ request_id: 7, success: true, data: { count: 1, items: [{ id: created.data.id }] } });
    await byApiKey.close();
  });

  it('refuses bad header credentials with an error frame, then closes with 1008', async () => {
    const ws = await WsClient.open(server.wsUrl, bearer('gp_live_not-a-real-key-not-a-real-key-000000'));
    const frame = await ws.next((f) => f.type === 'error');
    expect(frame.request_id).toBeNull();
    expectFrameError(frame, 'KEY_NOT_FOUND', 401);
    expect(await ws.closed).toEqual({ code: 1008, reason: 'credentials refused' });

    const prefix = await WsClient.open(server.wsUrl, bearer('nonsense'));
    expectFrameError(await prefix.next((f) => f.type === 'error'), 'INVALID_KEY_PREFIX', 401);
    expect((await prefix.closed).code).toBe(1008);
  });

  it('without credentials answers UNAUTHORIZED per request until a first auth frame, which may be pipelined', async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl);
    const early = await ws.call('early', { resource: 'goals', action: 'list' });
    expect(early).toMatchObject({ request_id: 'early', type: 'result' });
    expect(expectFrameError(early, 'UNAUTHORIZED', 401).message).toMatch(/auth/);

    ws.send({ type: 'auth', token: 'gp_live_wrong-wrong-wrong-wrong-wrong-wrong-00', request_id: 'a0' });
    const refused = await ws.next((f) => f.type === 'auth' && f.request_id === 'a0');
    expectFrameError(refused, 'KEY_NOT_FOUND', 401);
    ws.send({ type: 'auth', token: alice.key, extra: true });
    expectFrameError(await ws.next((f) => f.type === 'auth' && f.success === false && f.error.code === 'VALIDATION_ERROR'), 'VALIDATION_ERROR', 400);
    expect((await ws.call('still', { resource: 'goals', action: 'list' })).error.code).toBe('UNAUTHORIZED');

    // The auth frame and a request right behind it, without waiting: the request sees the credentials.
    ws.send({ type: 'auth', token: alice.key, request_id: 'a1' });
    ws.send({ request_id: 'after', resource: 'goals', action: 'create', data: { name: 'Pipelined' } });
    expect(await ws.next((f) => f.type === 'auth' && f.request_id === 'a1')).toEqual({
      type: 'auth',
      request_id: 'a1',
      success: true,
      data: { user_id: alice.id, role: 'standard_user' },
    });
    expect(await ws.result('after')).toMatchObject({ success: true, status: 201, data: { name: 'Pipelined' } });
    await ws.close();
  });

  it('authenticates the service key with user_id, as x-user-id does over HTTP', async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl);
    ws.send({ type: 'auth', token: TEST_SERVICE_KEY, user_id: alice.id });
    expect(await ws.next((f) => f.type === 'auth')).toMatchObject({ success: true, data: { user_id: alice.id } });
    const created = await ws.call(1, { resource: 'agents', action: 'create', data: { name: 'Service-made' } });
    expect(created).toMatchObject({ success: true, status: 201 });
    expect((await h.invoke(alice.key, { resource: 'agents', action: 'get', id: created.data.id })).status).toBe(200);
    await ws.close();
  });

  it('checks the credentials again on every request: a key revoked over the socket stops working on it', async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl, bearer(alice.key));
    const keys = await ws.call('keys', { resource: 'api-keys', action: 'list' });
    const own = keys.data.items[0];
    expect((await ws.call('revoke', { resource: 'api-keys', action: 'delete', id: own.id })).success).toBe(true);
    expectFrameError(await ws.call('after', { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
    await ws.close();
  });

  it('answers a plain GET /v1/ws (no upgrade) with a VALIDATION_ERROR envelope', async () => {
    const res = await fetch(`${server.url}/v1/ws`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body).toMatchObject({ success: false, error: { code: 'VALIDATION_ERROR', status: 400 } });
    expect(body.error.message).toMatch(/WebSocket/);
  });
});

describe('WebSocket requests', () => {
  it('answers several interleaved requests, exactly one result each, as HTTP would', async () => {
    const alice = await h.user();
    const bob = await h.user();
    const bobGoal = (await h.invoke(bob.key, { resource: 'goals', action: 'create', data: { name: "Bob's" } })).body.data;
    const ws = await WsClient.open(server.wsUrl, bearer(alice.key));
    const requests: Frame[] = [
      ...Array.from({ length: 8 }, (_, i) => ({ request_id: `create-${i}`, resource: 'goals', action: 'create', data: { name: `Goal ${i}`, status: 'inactive' } })),
      { request_id: 'bad-name', resource: 'goals', action: 'create', data: { name: '' } },
      { request_id: 'bob', resource: 'goals', action: 'get', id: bobGoal.id },
      { request_id: 'bob-update', resource: 'goals', action: 'update-node', id: bobGoal.id, data: { node_id: 'n1', completed: true } },
      { request_id: 'no-action', resource: 'goals', action: 'fly' },
      { request_id: 'no-resource', resource: 'planets', action: 'list' },
      { request_id: 'not-uuid', resource: 'goals', action: 'get', id: 'nope' },
      { request_id: 'extra', resource: 'goals', action: 'list', colour: 'red' },
      { request_id: 'agent', resource: 'agents', action: 'create', data: { name: 'Socket agent' } },
      { request_id: 'wrong-type', type: 'subscribe', resource: 'goals', action: 'list' },
    ];
    for (const request of requests) ws.send(request);
    const results = new Map<string, Frame>();
    for (const request of requests) results.set(request.request_id, await ws.result(request.request_id));

    for (let i = 0; i < 8; i++) expect(results.get(`create-${i}`)).toMatchObject({ success: true, status: 201, data: { name: `Goal ${i}` } });
    expect(new Set(Array.from({ length: 8 }, (_, i) => results.get(`create-${i}`)!.data.id)).size).toBe(8);
    expect(results.get('agent')).toMatchObject({ success: true, status: 201, data: { name: 'Socket agent' } });
    expectFrameError(results.get('wrong-type')!, 'VALIDATION_ERROR', 400);

    // Each failure is the envelope HTTP answers for the same call, request id aside.
    for (const id of ['bad-name', 'bob', 'bob-update', 'no-action', 'no-resource', 'not-uuid', 'extra']) {
      const { request_id: _rid, ...envelope } = requests.find((r) => r.request_id === id)!;
      const http = await h.invoke(alice.key, envelope);
      const viaSocket = results.get(id)!;
      expect(viaSocket.success).toBe(false);
      expect(withoutRequestId(viaSocket.error), id).toEqual(withoutRequestId(http.body.error));
    }
    expect(results.get('bob')!.error.code).toBe('NOT_FOUND');
    expect(results.get('bob-update')!.error.code).toBe('NOT_FOUND');
    expect(results.get('no-action')!.error.code).toBe('INVALID_ACTION');

    // Exactly one result per request, even after everything settled.
    await new Promise((r) => setTimeout(r, 100));
    for (const request of requests) {
      expect(ws.framesOf(request.request_id).filter((f) => f.type === 'result'), request.request_id).toHaveLength(1);
    }
    expect((await h.invoke(alice.key, { resource: 'goals', action: 'list' })).body.data.count).toBe(8);
    await ws.close();
  });

  it('drives a roadmap over the socket: update-node and convert-nodes, with the same answers as HTTP', async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl, bearer(alice.key));
    const roadmap = {
      nodes: [{ id: 'a', label: 'A' }, { id: 'b', label: 'B' }],
      edges: [{ id: 'e', source: 'a', target: 'b' }],
    };
    const goal = (await ws.call('g', { resource: 'goals', action: 'create', data: { name: 'Mapped', roadmap } })).data;
    expect(goal.roadmap.nodes.map((n: any) => n.position)).toEqual([{ x: 0, y: 0 }, { x: 250, y: 0 }]);
    const converted = await ws.call('convert', { resource: 'goals', action: 'convert-nodes', id: goal.id });
    expect(converted).toMatchObject({ success: true, status: 201, data: { created_count: 2 } });
    const node = await ws.call('node', { resource: 'goals', action: 'update-node', id: goal.id, data: { node_id: 'a', completed: true } });
    expect(node).toMatchObject({ success: true, status: 200, data: { progress: 50 } });
    const item = await ws.call('item', { resource: 'action-items', action: 'get', id: converted.data.action_items[0].id });
    expect(item.data).toMatchObject({ roadmap_node_id: 'a', completed: true });
    const unknown = await ws.call('unknown', { resource: 'goals', action: 'update-node', id: goal.id, data: { node_id: 'z', completed: true } });
    expect(unknown.error.details).toEqual([{ path: ['data', 'node_id'], message: "not a node of the goal's roadmap", type: 'custom' }]);
    await ws.close();
  });

  it('answers malformed frames with an error frame and keeps the socket open', async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl, bearer(alice.key));
    const errors = () => ws.frames.filter((f) => f.type === 'error');
    const nextError = async (count: number) => {
      await ws.next(() => errors().length >= count);
      return errors()[count - 1]!;
    };
    ws.send('{"request_id": "x", ');
    const notJson = await nextError(1);
    expect(notJson.request_id).toBeNull();
    expect(expectFrameError(notJson, 'VALIDATION_ERROR', 400).message).toMatch(/Malformed JSON/);
    ws.send(Buffer.from([1, 2, 3]));
    expect(expectFrameError(await nextError(2), 'VALIDATION_ERROR', 400).message).toMatch(/Binary/);
    ws.send('[1, 2]');
    expect(expectFrameError(await nextError(3), 'VALIDATION_ERROR', 400).message).toMatch(/JSON object/);
    ws.send({ resource: 'goals', action: 'list' });
    expect(expectFrameError(await nextError(4), 'VALIDATION_ERROR', 400).details).toEqual([
      { path: ['request_id'], message: 'required', type: 'invalid_type' },
    ]);
    ws.send({ request_id: { nested: true }, resource: 'goals', action: 'list' });
    expect(expectFrameError(await nextError(5), 'VALIDATION_ERROR', 400).details[0].path).toEqual(['request_id']);
    ws.send({ request_id: 'big', resource: 'goals', action: 'create', data: { name: 'x'.repeat(70 * 1024) } });
    const tooBig = await nextError(6);
    expect(expectFrameError(tooBig, 'PAYLOAD_TOO_LARGE', 413).message).toMatch(/65536 bytes/);
    ws.send('null');
    expectFrameError(await nextError(7), 'VALIDATION_ERROR', 400);

    // Still open and working.
    expect(await ws.call('fine', { resource: 'goals', action: 'list' })).toMatchObject({ success: true });
    expect(ws.socket.readyState).toBe(ws.socket.OPEN);
    await ws.close();
  });

  it("finds another user's goal NOT_FOUND, exactly like a goal that does not exist", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const goal = (await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: "Alice's", roadmap: { nodes: [{ id: 'n1', label: 'One' }] } } })).body.data;
    const ws = await WsClient.open(server.wsUrl, bearer(bob.key));
    for (const [i, action] of (['get', 'update-node', 'convert-nodes', 'delete'] as const).entries()) {
      const data = action === 'update-node' ? { node_id: 'n1', completed: true } : undefined;
      const theirs = await ws.call(`theirs-${i}`, { resource: 'goals', action, id: goal.id, data });
      const nobody = await ws.call(`nobody-${i}`, { resource: 'goals', action, id: '00000000-0000-4000-8000-000000000000', data });
      expectFrameError(theirs, 'NOT_FOUND', 404);
      expect(withoutRequestId(theirs.error)).toEqual(withoutRequestId(nobody.error));
    }
    const still = (await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goal.id })).body.data;
    expect(still).toEqual(goal);
    expectError(await h.invoke(bob.key, { resource: 'goals', action: 'get', id: goal.id }), 'NOT_FOUND', 404);
    await ws.close();
  });

  it(`refuses a request id already in flight, and more than ${MAX_IN_FLIGHT} requests in flight`, async () => {
    const alice = await h.user();
    const ws = await WsClient.open(server.wsUrl, bearer(alice.key));
    // Sent in one go, the frames are admitted before any of them finishes.
    for (let i = 0; i < MAX_IN_FLIGHT + 3; i++) ws.send({ request_id: i < 2 ? 'same' : i, resource: 'goals', action: 'list' });
    await ws.next(() => ws.frames.filter((f) => f.type === 'result').length >= MAX_IN_FLIGHT + 3);
    await new Promise((r) => setTimeout(r, 50));
    const same = ws.framesOf('same');
    expect(same).toHaveLength(2);
    expect(same.map((f) => f.success).sort()).toEqual([false, true]);
    expect(same.find((f) => !f.success)!.error.message).toMatch(/already in flight/);
    const refused = ws.frames.filter((f) => f.type === 'result' && !f.success && f.error.code === 'RATE_LIMIT_EXCEEDED');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0]!.error.message).toMatch(/in flight/);
    await ws.close();
  });
});
