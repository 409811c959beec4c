import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort, runNode, SERVER_ARGS, spawnNode, stopAll } from './support/processes.ts';

/**
 * The README is a tour that must stay true: its curl session (the ```sh blocks preceded by
 * `<!-- readme-session -->`) runs top to bottom under `bash -euo pipefail` against a real server on the
 * run's database, with a key made by the CLI. Any command that fails (its `api` helper fails on a
 * non-2xx answer) fails the test.
 */

const README = readFileSync('README.md', 'utf8');
const SESSION_MARK = '<!-- readme-session -->';
const README_URL = 'http://localhost:8787';

/** The marked blocks, in order, joined into one script. */
function sessionScript(markdown: string): { script: string; blocks: number } {
  const pattern = /<!-- readme-session -->[ \t]*\r?\n```sh\r?\n([\s\S]*?)\r?\n```/g;
  const blocks = [...markdown.matchAll(pattern)].map((m) => m[1]!);
  return { script: blocks.join('\n'), blocks: blocks.length };
}

function runBash(script: string, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-s'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    child.stdin.end(script);
  });
}

afterAll(() => stopAll());

describe('README', () => {
  it('is a tour of at most 300 lines', () => {
    expect(README.split('\n').length).toBeLessThanOrEqual(300);
  });

  it('links only to files (and headings) that exist', () => {
    const files = ['README.md', ...['api', 'roadmaps', 'generate', 'performance', 'decisions', 'architecture', 'operations'].map((n) => `docs/${n}.md`)];
    const broken: string[] = [];
    for (const file of files) {
      expect(existsSync(file), file).toBe(true);
      const text = readFileSync(file, 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const linked = path === '' ? file : join(dirname(file), path);
        if (!existsSync(linked)) {
          broken.push(`${file}: ${target}`);
          continue;
        }
        if (anchor && linked.endsWith('.md') && !headingSlugs(readFileSync(linked, 'utf8')).has(anchor)) {
          broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('has a curl session that runs top to bottom against a fresh server', async () => {
    const { script, blocks } = sessionScript(README);
    expect(blocks).toBeGreaterThan(0);
    expect(script.match(/^KEY=.*$/gm)).toHaveLength(1);
    expect(script).toContain(README_URL);

    const databaseUrl = inject('databaseUrl');
    const embedded = inject('databaseKind') === 'embedded';
    // The embedded database's socket takes one connection: no deadline's probe beside the server's.
    const env = { DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent', ...(embedded ? { DB_UNAVAILABLE_TIMEOUT_MS: '0' } : {}) };

    // First the CLI, then the server: the run's embedded database serves one connection at a time.
    const created = await runNode(['bin/goalpost.mjs', 'users', 'create', '--email', `readme-${randomUUID()}@test.goalpost`, '--name', 'Ada'], env);
    expect(created.code, created.stderr).toBe(0);
    const { key } = JSON.parse(created.stdout) as { key: string };

    const port = await freePort();
    const server = spawnNode(SERVER_ARGS, {
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...(embedded ? { DATABASE_POOL_MAX: '1' } : {}),
    });
    await server.waitFor(/listening/, 60_000);

    const runnable = script
      .replace(/^KEY=.*$/m, `KEY='${key}'`)
      .replaceAll(README_URL, `http://127.0.0.1:${port}`);
    const run = await runBash(runnable);
    await server.stop();
    expect(run.code, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}\nserver stderr:\n${server.stderr()}`).toBe(0);
    // Every answer the session printed (or showed through `take`) is a success envelope.
    const answers = (run.stdout + run.stderr).split('\n').filter((line) => line.startsWith('{'));
    expect(answers.length).toBeGreaterThanOrEqual(10);
    for (const line of answers) expect(JSON.parse(line)).toMatchObject({ success: true });
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence) continue;
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    slugs.add(
      heading[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return slugs;
}
