import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, GoalpostError, GoalpostNetworkError } from '../src/client/index.ts';
import { createHarness, type Harness } from './support/harness.ts';
import { typecheck as check } from './support/typecheck.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');

// The client as a consumer gets it: `npm pack`, the tarball unpacked into a project that has nothing but TypeScript
// (no zod, no hono, none of our dependencies: the types and the bundle must stand alone), good calls that must
// type-check and run against a real server, bad calls that must each fail to compile.

let h: Harness;
let url: string;
let consumer: string;
beforeAll(async () => {
  h = await createHarness();
  url = (await h.listen()).url;
  consumer = mkdtempSync(join(tmpdir(), 'goalpost-consumer-'));
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', consumer], { cwd: root, maxBuffer: 16 << 20 });
  const tarball = join(consumer, packed.stdout.trim().split('\n').pop()!);
  const installed = join(consumer, 'node_modules', 'goalpost');
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
}, 240_000);
afterAll(async () => {
  rmSync(consumer, { recursive: true, force: true });
  await h.close();
});

const typecheck = (name: string, source: string) => check(consumer, name, source);

const header = `import { createClient, GoalpostError, GoalpostNetworkError, type Goal } from 'goalpost/client';\n`;

const good = `${header}
export async function main(baseUrl: string, apiKey: string) {
  const client = createClient({ baseUrl, apiKey });
  const goal: Goal = await client.call({ resource: 'goals', action: 'create', data: { name: 'From the consumer', target_value: 4 } });
  const progress: number = goal.progress;
  const page = await client.invoke({ resource: 'goals', action: 'list', data: { limit: 10 } });
  const names: string[] = page.success ? page.data.items.map((g) => g.name) : [];
  const fetched = await client.call({ resource: 'goals', action: 'get', id: goal.id });
  const items = await client.call({ resource: 'action-items', action: 'batch-create', data: { action_items: [{ description: 'a', goal_id: goal.id }] } });
  const missing = await client.invoke({ resource: 'goals', action: 'get', id: '00000000-0000-4000-8000-000000000000' });
  const code = missing.success ? null : missing.error.code;
  let thrown: string | null = null;
  try {
    await client.call({ resource: 'goals', action: 'create', data: { name: '' } });
  } catch (error) {
    if (error instanceof GoalpostError) thrown = error.code + ' ' + error.status;
  }
  const stages: string[] = [];
  let suggested = '';
  for await (const event of client.stream({ resource: 'goals', action: 'generate', data: { description: 'Collect the caller email and budget' } })) {
    if (event.type === 'progress') stages.push(event.data.stage);
    else suggested = event.data.suggestion.name;
  }
  let network = false;
  try {
    await createClient({ baseUrl: 'http://127.0.0.1:9', apiKey }).call({ resource: 'goals', action: 'list' });
  } catch (error) {
    network = error instanceof GoalpostNetworkError;
  }
  return { progress, names, fetched: fetched.name, created: items.created_count, code, thrown, stages, suggested, network };
}
`;

const bad: Record<string, string> = {
  'an unknown resource': `await client.call({ resource: 'goal', action: 'list' });`,
  'an unknown action': `await client.call({ resource: 'goals', action: 'explode' });`,
  'a field the action does not take': `await client.call({ resource: 'goals', action: 'create', data: { name: 'x', colour: 'red' } });`,
  'a field of the wrong type': `await client.call({ resource: 'goals', action: 'create', data: { name: 5 } });`,
  'a missing required data': `await client.call({ resource: 'goals', action: 'create' });`,
  'an id where none is taken': `await client.call({ resource: 'goals', action: 'create', id: 'x', data: { name: 'x' } });`,
  'a missing id': `await client.call({ resource: 'goals', action: 'get' });`,
  'a field the answer does not have': `(await client.call({ resource: 'goals', action: 'get', id: 'x' })).progres;`,
  'a wrong type for an answer field': `const n: string = (await client.call({ resource: 'goals', action: 'get', id: 'x' })).progress;`,
  'streaming an action that does not stream': `for await (const e of client.stream({ resource: 'goals', action: 'list' })) void e;`,
};

describe('goalpost/client, packed and installed in a project with only TypeScript', () => {
  it('ships ES modules with self-contained types, and no server code', () => {
    const installed = join(consumer, 'node_modules', 'goalpost', 'dist', 'client');
    const bundle = readFileSync(join(installed, 'index.js'), 'utf8');
    expect(bundle).toContain('export {');
    // Nothing it imports at run time: the SSE parser is bundled in, no node: module, no server package.
    expect(bundle).not.toMatch(/\bfrom\s*["'][^"'.]/);
    expect(bundle).not.toMatch(/\brequire\(|node:|postgres|kysely|hono/);
    expect(typecheck('nothing', `${header}export {};`)).toEqual([]);
  });

  it('type-checks the good calls', () => {
    expect(typecheck('good', good)).toEqual([]);
  });

  for (const [what, line] of Object.entries(bad)) {
    it(`refuses ${what} at compile time`, () => {
      const source = `${header}export async function f() {\n  const client = createClient({ baseUrl: 'x', apiKey: 'y' });\n  ${line}\n}\n`;
      expect(typecheck(`bad-${what.replaceAll(' ', '-')}`, source).length, line).toBeGreaterThan(0);
    });
  }

  it('runs the good calls against a real server', async () => {
    const alice = await h.user();
    const js = ts.transpileModule(good, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    writeFileSync(join(consumer, 'good.mjs'), js);
    writeFileSync(
      join(consumer, 'main.mjs'),
      `import { main } from './good.mjs';\nconsole.log(JSON.stringify(await main(${JSON.stringify(url)}, ${JSON.stringify(alice.key)})));\n`,
    );
    // In a process of its own, from the consumer's directory: `goalpost/client` resolves to the installed tarball.
    const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: consumer });
    expect(JSON.parse(stdout)).toEqual({
      progress: 0,
      names: ['From the consumer'],
      fetched: 'From the consumer',
      created: 1,
      code: 'NOT_FOUND',
      thrown: 'VALIDATION_ERROR 400',
      stages: expect.arrayContaining(['validated']),
      suggested: expect.any(String),
      network: true,
    });
  });
});

describe('the client when the answer is not the API', () => {
  let server: Server;
  let base: string;
  const replies: ((res: import('node:http').ServerResponse) => void)[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      const reply = replies.shift();
      if (reply) reply(res);
      else res.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = () => createClient({ baseUrl: base, apiKey: 'gp_live_x' });

  it('a 502 page from a proxy: INVALID_RESPONSE with the status, never an unhandled rejection', async () => {
    replies.push((res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad Gateway</html>'));
    const envelope = await client().invoke({ resource: 'goals', action: 'list' });
    expect(envelope).toMatchObject({ success: false, error: { code: 'INVALID_RESPONSE', status: 502 } });
    replies.push((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"not": "an envelope"'));
    await expect(client().call({ resource: 'goals', action: 'list' })).rejects.toSatisfy(
      (error: unknown) => error instanceof GoalpostError && error.code === 'INVALID_RESPONSE' && error.status === 200,
    );
  });

  it("an API error keeps the server's code, status, details and request id", async () => {
    replies.push((res) =>
      res
        .writeHead(409, { 'content-type': 'application/json' })
        .end(JSON.stringify({ success: false, error: { code: 'CONFLICT', message: 'stale', status: 409, details: { updated_at: 'x' }, request_id: 'r1' } })),
    );
    const error = await client()
      .call({ resource: 'goals', action: 'update', id: 'x', data: { name: 'n' } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GoalpostError);
    expect(error).toMatchObject({ code: 'CONFLICT', status: 409, details: { updated_at: 'x' }, requestId: 'r1', message: 'stale' });
  });

  it('a connection dropped without an answer, or refused: GoalpostNetworkError', async () => {
    // No reply queued: the server destroys the socket.
    await expect(client().invoke({ resource: 'goals', action: 'list' })).rejects.toBeInstanceOf(GoalpostNetworkError);
    await expect(createClient({ baseUrl: 'http://127.0.0.1:9' }).call({ resource: 'goals', action: 'list' })).rejects.toBeInstanceOf(GoalpostNetworkError);
  });

  it('sends the credentials, the idempotency key and JSON', async () => {
    let seen: import('node:http').IncomingHttpHeaders = {};
    server.once('request', (req) => (seen = req.headers));
    replies.push((res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"success":true,"data":{"id":"g"}}'));
    const data = await client().call({ resource: 'goals', action: 'create', data: { name: 'n' } }, { idempotencyKey: 'key-1' });
    expect(data).toEqual({ id: 'g' });
    expect(seen).toMatchObject({ authorization: 'Bearer gp_live_x', 'idempotency-key': 'key-1', 'content-type': 'application/json' });
  });
});
