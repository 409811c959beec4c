import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Ajv2020Module from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Action } from '../src/rpc/action.ts';
import { registry } from '../src/resources/index.ts';
import { createHarness, type Harness } from './support/harness.ts';

// An AI agent's way in: the official MCP SDK's client over Streamable HTTP, against a real server.

let h: Harness;
let url: string;
beforeAll(async () => {
  h = await createHarness({ rateLimitPerMinute: 1_000_000 });
  url = (await h.listen()).url;
});
afterAll(() => h.close());

async function connect(key: string | undefined) {
  const client = new Client({ name: 'goalpost-test', version: '1' });
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers } }));
  return client;
}

const actionCount = Object.values(registry).reduce((n, actions) => n + Object.keys(actions).length, 0);

/** The error envelope a failed tool call holds. */
function envelopeOf(result: any) {
  expect(result.isError).toBe(true);
  return JSON.parse(result.content[0].text);
}

describe('/mcp with the MCP SDK client', () => {
  it('lists one tool per action, named resource_action, with valid JSON Schemas and hints', async () => {
    const alice = await h.user();
    const client = await connect(alice.key);
    const { tools } = await client.listTools();
    expect(tools.length).toBe(actionCount);
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['goals_create', 'goals_list', 'action_items_batch_create', 'api_keys_delete', 'goals_generate_roadmap']));
    const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as new (options: object) => any;
    const ajv = new Ajv2020({ strict: false });
    for (const [resource, actions] of Object.entries(registry)) {
      for (const [action, def] of Object.entries(actions as Record<string, Action>)) {
        const tool = tools.find((t) => t.name === `${resource}_${action}`.replaceAll('-', '_'))!;
        expect(tool, `${resource}.${action}`).toBeTruthy();
        expect(tool.description).toContain(def.summary);
        expect(tool.inputSchema.type).toBe('object');
        expect(() => ajv.compile(tool.inputSchema)).not.toThrow();
        expect(() => ajv.compile(tool.outputSchema!)).not.toThrow();
        expect(tool.outputSchema!.type).toBe('object');
        if (def.id) expect(tool.inputSchema.required).toContain('id');
        expect(tool.annotations?.readOnlyHint).toBe(def.readOnly === true);
        expect(tool.annotations?.destructiveHint).toBe(action === 'delete');
      }
    }
    await client.close();
  });

  it('creates and lists goals, answers carrying structuredContent and the JSON as text', async () => {
    const alice = await h.user();
    const client = await connect(alice.key);
    const created: any = await client.callTool({ name: 'goals_create', arguments: { name: 'From an agent', target_value: 3 } });
    expect(created.isError).toBeFalsy();
    expect(created.structuredContent).toMatchObject({ name: 'From an agent', target_value: 3, status: 'active' });
    expect(JSON.parse(created.content[0].text)).toEqual(created.structuredContent);
    const id = created.structuredContent.id;
    const got: any = await client.callTool({ name: 'goals_get', arguments: { id } });
    expect(got.structuredContent.id).toBe(id);
    const listed: any = await client.callTool({ name: 'goals_list', arguments: {} });
    expect(listed.structuredContent.items.map((g: any) => g.id)).toEqual([id]);
    const items: any = await client.callTool({ name: 'action_items_batch_create', arguments: { action_items: [{ description: 'a', goal_id: id }] } });
    expect(items.structuredContent.created_count).toBe(1);
    // The same records over /v1: one registry, one database.
    const viaHttp = await h.invoke(alice.key, { resource: 'goals', action: 'get', id });
    expect(viaHttp.body.data.name).toBe('From an agent');
    await client.close();
  });

  it('runs a write once for an idempotency key in _meta, and answers the retry as a replay', async () => {
    const alice = await h.user();
    const client = await connect(alice.key);
    const call = () => client.callTool({ name: 'goals_create', arguments: { name: 'Once' }, _meta: { idempotencyKey: 'mcp-retry-1' } });
    const first: any = await call();
    const again: any = await call();
    expect(first.isError).toBeFalsy();
    expect(again.structuredContent).toEqual(first.structuredContent);
    expect(again._meta).toMatchObject({ idempotentReplayed: true });
    expect(first._meta?.idempotentReplayed).toBeUndefined();
    const reused: any = await client.callTool({ name: 'goals_create', arguments: { name: 'Other' }, _meta: { idempotencyKey: 'mcp-retry-1' } });
    expect(envelopeOf(reused).error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    const listed: any = await client.callTool({ name: 'goals_list', arguments: {} });
    expect(listed.structuredContent.count).toBe(1);
    await client.close();
  });

  it("answers a validation error and someone else's goal as isError results with the error envelope", async () => {
    const alice = await h.user();
    const bob = await h.user();
    const bobs = await h.invoke(bob.key, { resource: 'goals', action: 'create', data: { name: "Bob's" } });
    const client = await connect(alice.key);
    const invalid = envelopeOf(await client.callTool({ name: 'goals_create', arguments: { name: '', colour: 'red' } }));
    expect(invalid).toMatchObject({ success: false, error: { code: 'VALIDATION_ERROR', status: 400 } });
    expect(invalid.error.details.map((d: any) => d.path.join('.'))).toEqual(expect.arrayContaining(['data.name']));
    const notMine = envelopeOf(await client.callTool({ name: 'goals_get', arguments: { id: bobs.body.data.id } }));
    expect(notMine.error).toMatchObject({ code: 'NOT_FOUND', status: 404 });
    const updated = envelopeOf(await client.callTool({ name: 'goals_update', arguments: { id: bobs.body.data.id, name: 'Mine now' } }));
    expect(updated.error.code).toBe('NOT_FOUND');
    expect((await h.invoke(bob.key, { resource: 'goals', action: 'get', id: bobs.body.data.id })).body.data.name).toBe("Bob's");
    const badId = envelopeOf(await client.callTool({ name: 'goals_get', arguments: { id: 'nope' } }));
    expect(badId.error.code).toBe('VALIDATION_ERROR');
    const unknown = envelopeOf(await client.callTool({ name: 'goals_explode', arguments: {} }));
    expect(unknown.error.code).toBe('INVALID_ACTION');
    await client.close();
  });

  it('refuses a request without credentials, or with a bad key, with 401 before any MCP session', async () => {
    await expect(connect(undefined)).rejects.toThrow(/401|Unauthorized/i);
    await expect(connect('gp_live_nope')).rejects.toThrow(/401|KEY_NOT_FOUND/i);
    const res = await fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe('UNAUTHORIZED');
  });

  it('shows a consumer the read-only tools only, and a write is FORBIDDEN', async () => {
    const consumer = await h.user('consumer');
    const client = await connect(consumer.key);
    const { tools } = await client.listTools();
    expect(tools.length).toBeGreaterThan(0);
    expect(tools.every((t) => t.annotations?.readOnlyHint === true)).toBe(true);
    expect(tools.map((t) => t.name)).not.toContain('goals_create');
    const refused = envelopeOf(await client.callTool({ name: 'goals_create', arguments: { name: 'x' } }));
    expect(refused.error.code).toBe('FORBIDDEN');
    expect((await client.callTool({ name: 'goals_list', arguments: {} })).isError).toBeFalsy();
    await client.close();
  });

  it('answers GET /mcp (no server-initiated stream in stateless mode) with 405 and Allow', async () => {
    const res = await fetch(`${url}/mcp`, { headers: { authorization: `Bearer ${(await h.user()).key}` } });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});
