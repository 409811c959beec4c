import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './support/harness.ts';
import { typecheck as check } from './support/typecheck.ts';

// What a frontend does with /openapi.json: generate types with openapi-typescript, call with openapi-fetch. The
// answers must be typed (a wrong field is a compile error), and the calls must work against the real server.

let h: Harness;
let url: string;
let dir: string;
beforeAll(async () => {
  h = await createHarness();
  url = (await h.listen()).url;
  // Inside the project, so that `openapi-fetch` resolves from its node_modules.
  const cache = join(process.cwd(), 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  dir = mkdtempSync(join(cache, 'openapi-ts-'));
  const ast = await openapiTS(new URL(`${url}/openapi.json`));
  writeFileSync(join(dir, 'api.d.ts'), astToString(ast));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await h.close();
});

const prelude = `
import createClient from 'openapi-fetch';
import type { paths } from './api.d.ts';
declare const baseUrl: string;
declare const key: string;
const client = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${key}\` } });
type Body<P extends keyof paths> = paths[P] extends { post: { requestBody?: { content: { 'application/json': infer B } } } } ? B : never;
`;

/** Type-checks `body` after the prelude; the diagnostics (skipLibCheck: openapi-fetch's own declarations are not on trial). */
const typecheck = (name: string, body: string) => check(dir, name, prelude + body, { skipLibCheck: true });

const good = `
export const bodies: [Body<'/v1/goals/create'>, Body<'/v1/goals/update'>, Body<'/v1/goals/list'>] = [
  { data: { name: 'x' } },
  { id: '00000000-0000-4000-8000-000000000000', data: { name: 'x' } },
  { data: { limit: 5 } },
];
export async function run() {
  const created = await client.POST('/v1/goals/create', { body: { data: { name: 'Typed', target_value: 5 } } });
  if (!created.data) throw new Error(JSON.stringify(created.error));
  const goal = created.data.data;
  const progress: number = goal.progress;
  const status: 'active' | 'inactive' | 'completed' | 'abandoned' = goal.status;
  const nodes = goal.roadmap?.nodes.length ?? 0;
  const listed = await client.GET('/v1/goals', { params: { query: { limit: 5 } } });
  const names: string[] = listed.data?.data.items.map((g) => g.name) ?? [];
  const fetched = await client.GET('/v1/goals/{id}', { params: { path: { id: goal.id } } });
  const code: string | undefined = fetched.error?.error.code;
  const items = await client.POST('/v1/action-items/batch-create', { body: { data: { action_items: [{ description: 'a', goal_id: goal.id }] } } });
  const count: number | undefined = items.data?.data.created_count;
  return { id: goal.id, progress, status, nodes, names, fetchedName: fetched.data?.data.name, code, count };
}
`;

const bad: Record<string, string> = {
  'a field the answer does not have': `
    export async function f() { const r = await client.POST('/v1/goals/create', { body: { data: { name: 'x' } } }); return r.data?.data.progres; }`,
  'a wrong type for an answer field': `
    export async function f() { const r = await client.POST('/v1/goals/create', { body: { data: { name: 'x' } } }); const p: string | undefined = r.data?.data.progress; return p; }`,
  // openapi-fetch's generic parameters skip TypeScript's excess-property check, so the request bodies below are
  // checked as the generated types themselves.
  'a field the input does not take': `
    export const b: Body<'/v1/goals/create'> = { data: { name: 'x', colour: 'red' } };`,
  'a missing required input field': `
    export async function f() { return client.POST('/v1/goals/create', { body: { data: { description: 'no name' } } }); }`,
  'an id where the action takes none': `
    export const b: Body<'/v1/goals/create'> = { id: 'x', data: { name: 'x' } };`,
  'an action that takes an id without one': `
    export const b: Body<'/v1/goals/update'> = { data: { name: 'x' } };`,
  'a route that does not exist': `
    export async function f() { return client.POST('/v1/goals/explode', { body: {} }); }`,
  'the admin fields in a standard request': `
    export const b: Body<'/v1/goals/list'> = { data: { adminMode: true } };`,
};

describe('types generated from /openapi.json by openapi-typescript', () => {
  it('type-check good calls with openapi-fetch, whose answers are typed', () => {
    expect(typecheck('good', good)).toEqual([]);
  });

  for (const [what, body] of Object.entries(bad)) {
    it(`refuse ${what} at compile time`, () => {
      expect(typecheck(`bad-${what.replaceAll(' ', '-')}`, body).length, body).toBeGreaterThan(0);
    });
  }

  it('and the good calls work against the real server', async () => {
    const alice = await h.user();
    const js = ts.transpileModule(prelude.replace(/^import type .*$/m, '') + good, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText.replace('export async function run', 'async function run');
    const file = join(dir, 'good.mjs');
    writeFileSync(file, `const baseUrl = ${JSON.stringify(url)}; const key = ${JSON.stringify(alice.key)};\n${js}\nexport default run;`);
    const run = (await import(file)).default as () => Promise<Record<string, unknown>>;
    const result = await run();
    expect(result).toMatchObject({ progress: 0, status: 'active', nodes: 0, names: ['Typed'], fetchedName: 'Typed', count: 1 });
    expect(result.code).toBeUndefined();
  });
});
