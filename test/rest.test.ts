import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, expectError, type Answer, type Harness } from './support/harness.ts';

// The REST-style routes reach the same handlers as the invoke body: for the same operation they give
// the same status and the same body. Where two calls necessarily make two records (create), the
// records are compared without their ids and timestamps, and each is read back both ways.

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const json = (body: unknown) => JSON.stringify(body);
const rest = (key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  h.request(path, { method, key, headers, ...(body !== undefined && { body: typeof body === 'string' ? body : json(body) }) });

/** The answer without what differs between two calls (the request id header is not in the body). */
const same = (res: Answer) => ({ status: res.status, body: res.body });

const withoutIdentity = (goal: Record<string, unknown>) => {
  const { id: _id, created_at: _c, updated_at: _u, ...rest } = goal;
  return rest;
};

async function seed(key: string) {
  const goals = [];
  for (const [name, status] of [
    ['one', 'active'],
    ['two', 'inactive'],
    ['three', 'active'],
    ['four', 'completed'],
  ] as const) {
    const res = await h.invoke(key, { resource: 'goals', action: 'create', data: { name, status } });
    expect(res.status).toBe(201);
    goals.push(res.body.data);
  }
  return goals;
}

describe('REST routes answer like the invoke body', () => {
  it('GET /v1/goals with a coerced query string = list', async () => {
    const alice = await h.user();
    await seed(alice.key);
    const viaRest = await rest(alice.key, 'GET', '/v1/goals?limit=2&status=active');
    const viaInvoke = await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { limit: 2, status: 'active' } });
    expect(viaRest.status).toBe(200);
    expect(same(viaRest)).toEqual(same(viaInvoke));
    expect(viaRest.body.data.items.map((g: { name: string }) => g.name)).toEqual(['three', 'one']);
    expect(viaRest.body.data.count).toBe(2);

    // Paging: the cursor from one route works on the other.
    const page1 = await rest(alice.key, 'GET', '/v1/goals?limit=3');
    expect(page1.body.data.next_cursor).toEqual(expect.any(String));
    const page2Rest = await rest(alice.key, 'GET', `/v1/goals?limit=3&cursor=${encodeURIComponent(page1.body.data.next_cursor)}`);
    const page2Invoke = await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { limit: 3, cursor: page1.body.data.next_cursor } });
    expect(same(page2Rest)).toEqual(same(page2Invoke));
    expect(page2Rest.body.data).toMatchObject({ items: [{ name: 'one' }], count: 4, next_cursor: null });

    // No query string at all, and a search with characters that need encoding.
    expect(same(await rest(alice.key, 'GET', '/v1/goals'))).toEqual(same(await h.invoke(alice.key, { resource: 'goals', action: 'list' })));
    expect(same(await rest(alice.key, 'GET', `/v1/goals?search=${encodeURIComponent('t%_ & h')}`))).toEqual(
      same(await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { search: 't%_ & h' } })),
    );
    // Other resources too.
    await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Voice' } });
    expect(same(await rest(alice.key, 'GET', '/v1/agents?limit=1'))).toEqual(same(await h.invoke(alice.key, { resource: 'agents', action: 'list', data: { limit: 1 } })));
  });

  it('coerces booleans by the schema: adminMode=true reaches the role check', async () => {
    const alice = await h.user();
    expectError(await rest(alice.key, 'GET', '/v1/goals?adminMode=true'), 'FORBIDDEN', 403);
    const admin = await h.user('internal_admin');
    const res = await rest(admin.key, 'GET', `/v1/goals?adminMode=true&limit=1`);
    expect(same(res)).toEqual(same(await h.invoke(admin.key, { resource: 'goals', action: 'list', data: { adminMode: true, limit: 1 } })));
  });

  it('GET /v1/goals/:id = get', async () => {
    const alice = await h.user();
    const [goal] = await seed(alice.key);
    const viaRest = await rest(alice.key, 'GET', `/v1/goals/${goal.id}`);
    expect(viaRest.status).toBe(200);
    expect(same(viaRest)).toEqual(same(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goal.id })));
    expect(viaRest.body.data).toEqual({ ...goal, roadmap: null });
    // Errors alike, too.
    const bob = await h.user();
    const foreignRest = expectError(await rest(bob.key, 'GET', `/v1/goals/${goal.id}`), 'NOT_FOUND', 404);
    const foreignInvoke = expectError(await h.invoke(bob.key, { resource: 'goals', action: 'get', id: goal.id }), 'NOT_FOUND', 404);
    expect(foreignRest.message).toBe(foreignInvoke.message);
    const badRest = expectError(await rest(alice.key, 'GET', '/v1/goals/not-a-uuid'), 'VALIDATION_ERROR', 400) as any;
    const badInvoke = expectError(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: 'not-a-uuid' }), 'VALIDATION_ERROR', 400) as any;
    expect(badRest.details).toEqual(badInvoke.details);
  });

  it('POST /v1/goals = create (201), and the records read back alike', async () => {
    const alice = await h.user();
    const data = {
      name: 'Qualify',
      status: 'inactive',
      priority: 5,
      lead_fields: [{ key: 'email', label: 'Email', type: 'email', required: true }],
      goal_type: 'numeric',
      target_value: 10,
      current_value: 4,
    };
    const viaRest = await rest(alice.key, 'POST', '/v1/goals', data);
    const viaInvoke = await h.invoke(alice.key, { resource: 'goals', action: 'create', data });
    expect(viaRest.status).toBe(201);
    expect(viaInvoke.status).toBe(201);
    expect(withoutIdentity(viaRest.body.data)).toEqual(withoutIdentity(viaInvoke.body.data));
    expect(viaRest.body.data.progress).toBe(40);
    // Each record, read through either route, is what its create answered.
    for (const created of [viaRest.body.data, viaInvoke.body.data]) {
      expect((await rest(alice.key, 'GET', `/v1/goals/${created.id}`)).body.data).toEqual(created);
      expect((await h.invoke(alice.key, { resource: 'goals', action: 'get', id: created.id })).body.data).toEqual(created);
    }
    // Validation alike: an unknown field.
    const badRest = expectError(await rest(alice.key, 'POST', '/v1/goals', { name: 'x', colour: 'red' }), 'VALIDATION_ERROR', 400) as any;
    const badInvoke = expectError(await h.invoke(alice.key, { resource: 'goals', action: 'create', data: { name: 'x', colour: 'red' } }), 'VALIDATION_ERROR', 400) as any;
    expect(badRest.details).toEqual(badInvoke.details);
    // Agents, too.
    const agentRest = await rest(alice.key, 'POST', '/v1/agents', { name: 'Voice' });
    const agentInvoke = await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Voice' } });
    expect(agentRest.status).toBe(201);
    expect(withoutIdentity(agentRest.body.data)).toEqual(withoutIdentity(agentInvoke.body.data));
  });

  it('POST /v1/goals with {action, data} and POST /v1/goals/attach with {data} = attach', async () => {
    const alice = await h.user();
    const [g1, g2] = await seed(alice.key);
    const agent = (await h.invoke(alice.key, { resource: 'agents', action: 'create', data: { name: 'Voice' } })).body.data;
    const attach = (goalId: string) => ({ goalId, agentId: agent.id });
    const stamp = (res: Answer) => ({ status: res.status, body: { ...res.body, data: { ...res.body.data, attached_at: 'ts' } } });

    // The same sequence (attach g1, then replace it with g2) along each route gives the same answers.
    const viaBodyAction = [
      await rest(alice.key, 'POST', '/v1/goals', { action: 'attach', data: attach(g1.id) }),
      await rest(alice.key, 'POST', '/v1/goals', { action: 'attach', data: attach(g2.id) }),
    ];
    await h.invoke(alice.key, { resource: 'goals', action: 'detach', data: { agentId: agent.id } });
    const viaActionRoute = [
      await rest(alice.key, 'POST', '/v1/goals/attach', { data: attach(g1.id) }),
      await rest(alice.key, 'POST', '/v1/goals/attach', { data: attach(g2.id) }),
    ];
    await h.invoke(alice.key, { resource: 'goals', action: 'detach', data: { agentId: agent.id } });
    const viaInvoke = [
      await h.invoke(alice.key, { resource: 'goals', action: 'attach', data: attach(g1.id) }),
      await h.invoke(alice.key, { resource: 'goals', action: 'attach', data: attach(g2.id) }),
    ];
    expect(viaInvoke.map((r) => r.status)).toEqual([200, 200]);
    expect(viaInvoke[1]!.body.data).toMatchObject({ agent_id: agent.id, goal_id: g2.id, replaced_goal_id: g1.id, attached_at: expect.stringMatching(/Z$/) });
    expect(viaBodyAction.map(stamp)).toEqual(viaInvoke.map(stamp));
    expect(viaActionRoute.map(stamp)).toEqual(viaInvoke.map(stamp));

    // Errors alike: someone else's agent.
    const bob = await h.user();
    const bobsAgent = (await h.invoke(bob.key, { resource: 'agents', action: 'create', data: { name: 'B' } })).body.data;
    const foreign = { goalId: g1.id, agentId: bobsAgent.id };
    for (const res of [
      await rest(alice.key, 'POST', '/v1/goals', { action: 'attach', data: foreign }),
      await rest(alice.key, 'POST', '/v1/goals/attach', { data: foreign }),
      await h.invoke(alice.key, { resource: 'goals', action: 'attach', data: foreign }),
    ]) {
      expectError(res, 'AGENT_NOT_FOUND', 404);
    }
  });

  it('POST /v1/:resource with an envelope body: the path names the resource, a body `resource` cannot override it', async () => {
    const alice = await h.user();
    await seed(alice.key);
    const res = await rest(alice.key, 'POST', '/v1/goals', { resource: 'agents', action: 'list', data: { limit: 2 } });
    expect(res.status).toBe(200);
    expect(res.body.data.count).toBe(4);
    expect(res.body.data.items[0]).toHaveProperty('goal_type');
  });

  it('POST /v1/{resource}/{action} takes {id?, data?} and nothing else, for any action', async () => {
    const alice = await h.user();
    const [goal] = await seed(alice.key);
    expect(same(await rest(alice.key, 'POST', '/v1/goals/get', { id: goal.id }))).toEqual(
      same(await h.invoke(alice.key, { resource: 'goals', action: 'get', id: goal.id })),
    );
    expect(same(await rest(alice.key, 'POST', '/v1/goals/list', { data: { limit: 1 } }))).toEqual(
      same(await h.invoke(alice.key, { resource: 'goals', action: 'list', data: { limit: 1 } })),
    );
    // An empty body is no data.
    expect(same(await rest(alice.key, 'POST', '/v1/goals/list'))).toEqual(same(await h.invoke(alice.key, { resource: 'goals', action: 'list' })));
    expect(expectError(await rest(alice.key, 'POST', '/v1/goals/list', { data: {}, resource: 'agents' }), 'VALIDATION_ERROR', 400).message).toMatch(/resource/);
    expectError(await rest(alice.key, 'POST', '/v1/goals/explode', { data: {} }), 'INVALID_ACTION', 400);
    expectError(await rest(alice.key, 'POST', '/v1/gaols/list', { data: {} }), 'INVALID_RESOURCE', 400);
  });

  it('PATCH /v1/goals/:id = update', async () => {
    const alice = await h.user();
    const [goal] = await seed(alice.key);
    const viaRest = await rest(alice.key, 'PATCH', `/v1/goals/${goal.id}`, { name: 'renamed', priority: 7 });
    expect(viaRest.status).toBe(200);
    expect(viaRest.body.data).toMatchObject({ id: goal.id, name: 'renamed', priority: 7 });
    // The same update again through invoke changes only updated_at.
    await new Promise((r) => setTimeout(r, 5));
    const viaInvoke = await h.invoke(alice.key, { resource: 'goals', action: 'update', id: goal.id, data: { name: 'renamed', priority: 7 } });
    expect(viaInvoke.status).toBe(200);
    expect({ ...viaRest.body.data, updated_at: 'ts' }).toEqual({ ...viaInvoke.body.data, updated_at: 'ts' });
    expect((await rest(alice.key, 'GET', `/v1/goals/${goal.id}`)).body.data).toEqual(viaInvoke.body.data);
    // expected_updated_at works through PATCH: the REST answer's timestamp is stale now.
    expectError(
      await rest(alice.key, 'PATCH', `/v1/goals/${goal.id}`, { name: 'x', expected_updated_at: viaRest.body.data.updated_at }),
      'CONFLICT',
      409,
    );
    // Errors alike: empty update, malformed JSON, empty body.
    const emptyRest = expectError(await rest(alice.key, 'PATCH', `/v1/goals/${goal.id}`, {}), 'VALIDATION_ERROR', 400);
    const emptyInvoke = expectError(await h.invoke(alice.key, { resource: 'goals', action: 'update', id: goal.id, data: {} }), 'VALIDATION_ERROR', 400);
    expect(emptyRest.message).toBe(emptyInvoke.message);
    expectError(await rest(alice.key, 'PATCH', `/v1/goals/${goal.id}`, '{"name":'), 'VALIDATION_ERROR', 400);
    expectError(await rest(alice.key, 'PATCH', `/v1/goals/${goal.id}`), 'VALIDATION_ERROR', 400);
    expectError(await rest(alice.key, 'PATCH', `/v1/goals/${goal.id}`, '"renamed"'), 'VALIDATION_ERROR', 400);
  });

  it('DELETE /v1/goals/:id = delete', async () => {
    const alice = await h.user();
    const [g1, g2] = await seed(alice.key);
    const viaRest = await rest(alice.key, 'DELETE', `/v1/goals/${g1.id}`);
    const viaInvoke = await h.invoke(alice.key, { resource: 'goals', action: 'delete', id: g2.id });
    expect(viaRest).toMatchObject({ status: 200, body: { success: true, data: { id: g1.id, deleted: true } } });
    expect(viaInvoke).toMatchObject({ status: 200, body: { success: true, data: { id: g2.id, deleted: true } } });
    // Gone, whichever way one asks; a second delete is NOT_FOUND both ways.
    for (const id of [g1.id, g2.id]) {
      expectError(await rest(alice.key, 'GET', `/v1/goals/${id}`), 'NOT_FOUND', 404);
      const again = expectError(await rest(alice.key, 'DELETE', `/v1/goals/${id}`), 'NOT_FOUND', 404);
      expect(again.message).toBe(expectError(await h.invoke(alice.key, { resource: 'goals', action: 'delete', id }), 'NOT_FOUND', 404).message);
    }
    // A body with data is checked like the invoke body's.
    const [, , g3] = await seed(alice.key);
    expectError(await rest(alice.key, 'DELETE', `/v1/goals/${g3.id}`, { force: true }), 'VALIDATION_ERROR', 400);
    expect((await rest(alice.key, 'GET', `/v1/goals/${g3.id}`)).status).toBe(200);
  });
});

describe('REST routes refuse bad input like the invoke body', () => {
  it('a query value that does not convert is VALIDATION_ERROR on its field', async () => {
    const alice = await h.user();
    for (const query of ['limit=abc', 'limit=', 'limit=0', 'limit=101', 'limit=2.5', 'limit=1&limit=2', 'status=done', 'agentId=nope', 'adminMode=yes']) {
      const error = expectError(await rest(alice.key, 'GET', `/v1/goals?${query}`), 'VALIDATION_ERROR', 400) as any;
      const field = query.split('=')[0];
      expect(error.details?.[0]?.path, query).toEqual(['data', field]);
    }
    // Unknown query keys are refused like unknown data keys, __proto__ and constructor included.
    for (const key of ['colour', 'constructor', '__proto__']) {
      const error = expectError(await rest(alice.key, 'GET', `/v1/goals?${key}=1`), 'VALIDATION_ERROR', 400) as any;
      expect(error.details?.[0]?.type, key).toBe('unrecognized_keys');
    }
    expectError(await rest(alice.key, 'GET', '/v1/goals?__proto__=a&__proto__=b'), 'VALIDATION_ERROR', 400);
    expectError(await rest(alice.key, 'GET', '/v1/goals?limit=abc'), 'VALIDATION_ERROR', 400);
  });

  it('an unknown resource is INVALID_RESOURCE on every route', async () => {
    const alice = await h.user();
    const id = randomUUID();
    for (const [method, path, body] of [
      ['GET', '/v1/gaols', undefined],
      ['GET', `/v1/gaols/${id}`, undefined],
      ['POST', '/v1/gaols', { name: 'x' }],
      ['PATCH', `/v1/gaols/${id}`, { name: 'x' }],
      ['DELETE', `/v1/gaols/${id}`, undefined],
    ] as const) {
      expectError(await rest(alice.key, method, path, body), 'INVALID_RESOURCE', 400);
    }
  });

  it('needs credentials like POST /v1', async () => {
    for (const [method, path] of [
      ['GET', '/v1/goals'],
      ['GET', `/v1/goals/${randomUUID()}`],
      ['DELETE', `/v1/goals/${randomUUID()}`],
    ] as const) {
      expectError(await h.request(path, { method }), 'UNAUTHORIZED', 401);
    }
  });

  it('an unknown route is a 404 envelope', async () => {
    const alice = await h.user();
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/v2/goals'],
      ['GET', '/v1/goals/a/b/c'],
      ['POST', '/v1/goals/attach/extra/more'],
    ] as const) {
      const res = await rest(alice.key, method, path);
      const error = expectError(res, 'NOT_FOUND', 404);
      expect(error.message, `${method} ${path}`).toMatch(/No route/);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    }
  });
});
