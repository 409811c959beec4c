import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The house's layers run one way: lib ← db ← ai ← rpc ← auth ← resources ← http ← app/server/cli
// (docs/architecture.md). A file may import its own layer or a lower one, never a higher one, and no chain of
// imports may lead back to where it started. Checked over the source text, type-only imports included.

const root = resolve(import.meta.dirname, '..');

/** Each layer's rank, by path under src/ (first match wins). */
const LAYERS: [prefix: string, layer: string, rank: number][] = [
  // The typed client imports nothing of the server (checked below): it ships to browsers on its own.
  ['src/client/', 'client', 0],
  ['src/lib/', 'lib', 0],
  ['src/config.ts', 'lib', 0],
  ['src/logger.ts', 'lib', 0],
  ['src/metrics.ts', 'lib', 0],
  ['src/db/', 'db', 1],
  ['src/ai/', 'ai', 2],
  ['src/rpc/', 'rpc', 3],
  ['src/auth/', 'auth', 4],
  ['src/resources/', 'resources', 5],
  ['src/jobs/', 'jobs', 6],
  ['src/http/', 'http', 7],
  ['src/app.ts', 'app', 8],
  ['src/server.ts', 'app', 9],
  ['src/cli.ts', 'app', 9],
  ['src/mcp.ts', 'app', 9],
];

function layerOf(file: string): { layer: string; rank: number } {
  const found = LAYERS.find(([prefix]) => file === prefix || file.startsWith(prefix));
  if (!found) throw new Error(`${file} is in no layer: add it to LAYERS in test/layers.test.ts`);
  return { layer: found[1], rank: found[2] };
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    return statSync(join(root, path)).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The relative imports of a file (static, dynamic and re-exports), as paths from the repository root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map(
    (m) => m[1] ?? m[2]!,
  );
  return specifiers.filter((s) => s.startsWith('.')).map((s) => relative(root, resolve(join(root, dirname(file)), s)));
}

type Graph = Map<string, string[]>;

/** Every import of `graph` that goes from a file to a file of a higher layer. */
function upwardImports(graph: Graph): string[] {
  return [...graph].flatMap(([file, imports]) =>
    imports
      .filter((target) => layerOf(target).rank > layerOf(file).rank)
      .map((target) => `${file} (${layerOf(file).layer}) → ${target} (${layerOf(target).layer})`),
  );
}

/** The circles of `graph`, each as the chain of files that closes it. */
function circlesIn(graph: Graph): string[] {
  const circles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      circles.push([...path.slice(path.indexOf(file)), file].join(' → '));
      return;
    }
    state.set(file, 'open');
    for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  return circles;
}

const files = sourceFiles('src');
const graph: Graph = new Map(files.map((file) => [file, importsOf(file)]));

describe('the import graph', () => {
  it('finds the files and their imports', () => {
    expect(files.length).toBeGreaterThan(30);
    expect(graph.get('src/app.ts')!.length).toBeGreaterThan(3);
  });

  it('has no import from a lower layer to a higher one', () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  it('has no circle', () => {
    expect(circlesIn(graph)).toEqual([]);
  });

  it('keeps the client free of server code: it imports its own files and eventsource-parser only', () => {
    const client = files.filter((file) => file.startsWith('src/client/'));
    expect(client.length).toBeGreaterThan(0);
    for (const file of client) {
      expect(importsOf(file).filter((target) => !target.startsWith('src/client/')), file).toEqual([]);
      const text = readFileSync(join(root, file), 'utf8');
      const packages = [...text.matchAll(/\bfrom\s*'([^.'][^']*)'/g)].map((m) => m[1]);
      expect(packages.filter((name) => name !== 'eventsource-parser'), file).toEqual([]);
    }
  });

  it('keeps migrations free of app code', () => {
    const migrations = readdirSync(join(root, 'db')).filter((name) => name.endsWith('.ts'));
    expect(migrations.length).toBeGreaterThan(0);
    for (const name of migrations) expect(importsOf(join('db', name)), name).toEqual([]);
  });

  it('would catch an upward import and a circle', () => {
    const bad: Graph = new Map([
      ['src/rpc/context.ts', ['src/ai/offline.ts']],
      ['src/ai/offline.ts', ['src/resources/goals/schemas.ts']],
      ['src/resources/goals/schemas.ts', ['src/rpc/context.ts']],
    ]);
    expect(upwardImports(bad)).toEqual(['src/ai/offline.ts (ai) → src/resources/goals/schemas.ts (resources)']);
    expect(circlesIn(bad)).toEqual(['src/rpc/context.ts → src/ai/offline.ts → src/resources/goals/schemas.ts → src/rpc/context.ts']);
    expect(() => layerOf('src/nowhere.ts')).toThrow(/no layer/);
  });
});
