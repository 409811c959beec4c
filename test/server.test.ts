import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, describe, expect, it } from 'vitest';
import { listen, StartupError } from '../src/server.ts';
import { freePort, runNode, SERVER_ARGS, spawnNode, stopAll, type Exit, type Spawned } from './support/processes.ts';

/**
 * Real `src/server.ts` processes on their own embedded database (no DATABASE_URL, a fresh DATA_DIR):
 * what a user gets from `npm start` on a machine without Postgres. Independent of the run's database.
 */

const dirs: string[] = [];
afterAll(async () => {
  await stopAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'goalpost-server-'));
  dirs.push(dir);
  return dir;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startEmbedded(dataDir: string): Promise<{ server: Spawned; port: number }> {
  const port = await freePort();
  const server = spawnNode(SERVER_ARGS, { DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'silent' });
  await server.waitFor(/listening on http:\/\/\S+/, 60_000);
  return { server, port };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]);
}

async function call(url: string, key: string, body: unknown) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/**
 * Sends the request headers and half the body, and returns a function that sends the rest: the
 * request is in flight on the server in between.
 */
function startSlowRequest(port: number, key: string, body: string) {
  let finish!: () => void;
  const answer = new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, 10));
    finish = () => req.end(body.slice(10));
  });
  return { answer, finish: () => finish() };
}

describe('the server on the embedded database', () => {
  it('prints a demo key and a curl line that works, locks its data dir, drains on SIGTERM and keeps its data', async () => {
    const dataDir = freshDir();
    const lockFile = join(dataDir, 'goalpost.lock');

    // 1. First start on an empty directory: a demo key and a curl line to try it.
    const { server: first, port } = await startEmbedded(dataDir);
    const [curlLine] = await first.waitFor(/curl -s .*\n.*-d '.*'/, 30_000);
    const key = first.stdout().match(/^\s+(gp_live_[A-Za-z0-9_-]{32,})\s*$/m)?.[1];
    expect(key, first.stdout()).toBeDefined();
    const url = curlLine.match(/curl -s (\S+)/)![1]!;
    expect(url).toBe(`http://localhost:${port}/v1`);
    expect(curlLine).toContain(`-H 'Authorization: Bearer ${key}'`);
    expect(curlLine).toContain(`-H 'Content-Type: application/json'`);
    const data = JSON.parse(curlLine.match(/-d '(.*)'/)![1]!);
    expect(data).toEqual({ resource: 'goals', action: 'create', data: { name: expect.any(String) } });

    const created = await call(url, key!, data);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ success: true, data: { id: expect.any(String), name: data.data.name } });

    // 2. A second process on the same directory refuses to start, and leaves the first alone.
    const secondPort = await freePort();
    const second = await runNode(SERVER_ARGS, { DATA_DIR: dataDir, PORT: String(secondPort), LOG_LEVEL: 'silent' });
    expect(second.code).not.toBe(0);
    expect(second.code).not.toBeNull();
    expect(second.stderr).toMatch(/in use/);
    expect(second.stderr).toContain(String(first.child.pid));
    expect(second.stdout).not.toMatch(/listening/);
    expect(existsSync(lockFile)).toBe(true);
    const stillServing = await call(url, key!, { resource: 'goals', action: 'list' });
    expect(stillServing.status).toBe(200);
    expect(stillServing.body.data.count).toBe(1);

    // 3. SIGTERM with a request in flight: the request completes, then the process exits 0.
    const slow = startSlowRequest(port, key!, JSON.stringify({ resource: 'goals', action: 'create', data: { name: 'In flight' } }));
    await sleep(500); // the server has the headers and waits for the body
    first.child.kill('SIGTERM');
    await sleep(500);
    let exit: Exit | undefined;
    void first.exited.then((e) => (exit = e));
    expect(exit).toBeUndefined(); // still draining
    slow.finish();
    const inFlight = await within(slow.answer, 10_000, 'the in-flight request');
    expect(inFlight.status).toBe(201);
    expect(inFlight.body.data.name).toBe('In flight');
    expect(await within(first.exited, 10_000, 'exiting after SIGTERM')).toEqual({ code: 0, signal: null });
    expect(existsSync(lockFile)).toBe(false);

    // 4. Restarting on the same directory keeps the data and the key; no new demo key.
    const { server: again, port: againPort } = await startEmbedded(dataDir);
    await again.waitFor(/Users exist already/, 10_000);
    expect(again.stdout()).not.toMatch(/gp_live_/);
    const list = await call(`http://127.0.0.1:${againPort}/v1`, key!, { resource: 'goals', action: 'list' });
    expect(list.status).toBe(200);
    expect(list.body.data.items.map((g: { name: string }) => g.name).sort()).toEqual([data.data.name, 'In flight'].sort());
    expect(await within(again.stop('SIGTERM'), 15_000, 'the restarted server stopping')).toEqual({ code: 0, signal: null });
  }, 180_000);
});

describe('configuration', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '-1'],
    ['PORT', '0'],
    ['PORT', '70000'],
    ['MAX_ACTIVE_GOALS', '-1'],
    ['RATE_LIMIT_PER_MINUTE', '0'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['DB_UNAVAILABLE_TIMEOUT_MS', '50'],
    ['DB_UNAVAILABLE_TIMEOUT_MS', '60001'],
  ])('refuses %s=%s: exits non-zero naming the variable', async (name, value) => {
    const dataDir = freshDir();
    const run = await runNode(SERVER_ARGS, { DATA_DIR: dataDir, PORT: String(await freePort()), [name]: value });
    expect(run.code).not.toBe(0);
    expect(run.code).not.toBeNull();
    expect(run.stderr).toMatch(new RegExp(`^\\s*${name}: `, 'm'));
    expect(run.stdout).toBe('');
    expect(existsSync(join(dataDir, 'goalpost.lock'))).toBe(false);
  });

  it('refuses a port in use with one line naming it, exit 1, before opening the embedded database', async () => {
    const dataDir = freshDir();
    const port = await freePort();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(port, '0.0.0.0', resolve));
    try {
      const started = Date.now();
      const run = await runNode(SERVER_ARGS, { DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'info' });
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(
        `Port ${port} is already in use (another Goalpost, or another program): stop that process, or set PORT to a free port.\n`,
      );
      expect(run.stdout).toBe('');
      // The database was never opened: no lock, and no time spent starting it.
      expect(existsSync(join(dataDir, 'goalpost.lock'))).toBe(false);
      expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('listen() turns EADDRINUSE into a StartupError naming the port (the race after the early check)', async () => {
    const port = await freePort();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    try {
      const app = new Hono().get('/', (c) => c.text('x'));
      const failed = listen(app, { port, hostname: '127.0.0.1', maxFrameBytes: 1024 });
      await expect(failed).rejects.toBeInstanceOf(StartupError);
      await expect(failed).rejects.toThrow(`Port ${port} is already in use`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('refuses RATE_LIMIT_STORE=redis without REDIS_URL, naming both', async () => {
    const run = await runNode(SERVER_ARGS, { DATA_DIR: freshDir(), RATE_LIMIT_STORE: 'redis' });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/RATE_LIMIT_STORE/);
    expect(run.stderr).toMatch(/REDIS_URL/);
    expect(run.stdout).toBe('');
  });
});
