import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** `node --import tsx src/server.ts`: the sources, as `npm run dev` runs them (`npm start` runs the same code compiled; .ci/run smoke-tests that), with signals going straight to it. */
export const SERVER_ARGS = ['--import', 'tsx', 'src/server.ts'];

/** Every variable the server reads; none is inherited from the test run's environment. */
const CONFIG_VARS = [
  'PORT',
  'HOST',
  'DATABASE_URL',
  'DATA_DIR',
  'DATABASE_POOL_MAX',
  'MAX_ACTIVE_GOALS',
  'BODY_LIMIT_BYTES',
  'RATE_LIMIT_PER_MINUTE',
  'RATE_LIMIT_STORE',
  'REDIS_URL',
  'KEY_CACHE_TTL_SECONDS',
  'JWT_SECRET',
  'JWT_JWKS_URL',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'SERVICE_KEY',
  'REQUEST_TIMEOUT_MS',
  'SHUTDOWN_TIMEOUT_MS',
  'LOG_LEVEL',
  'ACCESS_LOG_SAMPLE_RATE',
  'METRICS_TOKEN',
  'AI_PROVIDER',
  'OPENAI_BASE_URL',
  'OPENAI_API_KEY',
  'AI_MODEL',
  'AI_TIMEOUT_MS',
  'GENERATE_RATE_LIMIT_PER_MINUTE',
  'WEBHOOK_TIMEOUT_MS',
  'WEBHOOK_BACKOFF_MS',
  'WEBHOOK_MAX_ATTEMPTS',
  'WEBHOOK_ALLOW_PRIVATE_URLS',
  'WORKER',
  'WORKER_POLL_MS',
  'STATEMENT_TIMEOUT_MS',
  'DB_UNAVAILABLE_TIMEOUT_MS',
];

/** A free TCP port on loopback: listen on port 0, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches; rejects when the process exits first or on timeout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<Exit>;
  /** Sends `signal` and waits for the exit; SIGKILL after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

const running = new Set<Spawned>();

/**
 * Runs `node <args>` in the project with a clean configuration environment (nothing of the test run's
 * DATABASE_URL, PORT…) plus `env`. TypeScript entry points take `--import tsx`.
 *
 * @example const server = spawnNode(['--import', 'tsx', 'src/server.ts'], { PORT: '8080' });
 *          await server.waitFor(/listening/);
 */
export function spawnNode(args: string[], env: Record<string, string | undefined>): Spawned {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const name of CONFIG_VARS) delete base[name];
  const child = spawn(process.execPath, args, {
    cwd: process.cwd(),
    env: { ...base, ...env } as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const l of listeners) l();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  let exitInfo: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  const spawned: Spawned = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const done = () => {
          listeners.delete(check);
          clearTimeout(timer);
        };
        const check = () => {
          const match = out.match(pattern);
          if (match) {
            done();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${pattern}\nstdout: ${out}\nstderr: ${err}`));
        }, timeoutMs);
        listeners.add(check);
        check();
        void exited.then((e) => {
          if (!listeners.has(check)) return;
          // Output may still be in flight when the exit event fires.
          setTimeout(() => {
            if (!listeners.has(check)) return;
            check();
            if (!listeners.has(check)) return;
            done();
            reject(new Error(`exited (${e.code ?? e.signal}) before ${pattern}\nstdout: ${out}\nstderr: ${err}`));
          }, 50);
        });
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (!exitInfo) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      running.delete(spawned);
      return exited;
    },
  };
  running.add(spawned);
  void exited.then(() => running.delete(spawned));
  return spawned;
}

/** Stops every process spawned here that is still running (for afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGTERM')));
}

/** Runs a command to completion: its exit code and output. */
export async function runNode(args: string[], env: Record<string, string | undefined>, timeoutMs = 60_000) {
  const p = spawnNode(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const exit = await p.exited;
  clearTimeout(timer);
  // Let the pipes drain.
  await Promise.all([
    new Promise((r) => (p.child.stdout!.readableEnded ? r(null) : p.child.stdout!.once('end', r))),
    new Promise((r) => (p.child.stderr!.readableEnded ? r(null) : p.child.stderr!.once('end', r))),
  ]);
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}
