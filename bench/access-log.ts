// What the access log costs a request, measured so that a busy machine cannot fake it: ONE Goalpost process (this
// one: the app over real HTTP, on Postgres) serves goals.get under continuous load from bench/load.ts, and the access
// log is switched on and off every --switch seconds. The server's CPU time (process.cpuUsage) and its answered
// requests are summed per state, so drift on the machine hits both states alike, as do the JIT's state and the pool.
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import tsx bench/access-log.ts [--seconds 60] [--switch 2]
//
// "on" writes every line to a file through the same asynchronous pino destination the server uses for stderr.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import postgres from 'postgres';
import { createOfflineProvider } from '../src/ai/offline.ts';
import { createApp } from '../src/app.ts';
import { createAuthenticator } from '../src/auth/authenticate.ts';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import { openDatabase } from '../src/db/client.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import { createLogger, logDestination, type Logger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { listen } from '../src/server.ts';
import { fixtureOf, seedGoals, seedOwners } from './seed.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    switch: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '15' },
    connections: { type: 'string', default: '32' },
    // How lines reach the file: server (logDestination: asynchronous, 4 KiB chunks or every 250 ms), sync, or
    // unbuffered (asynchronous, each line written as it comes), or discard (lines built, not written).
    dest: { type: 'string', default: 'server' },
  },
});
const SECONDS = Number(args.seconds);
const SWITCH_MS = Number(args.switch) * 1000;
const SERVER_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const log = (line: string) => process.stderr.write(`[access-log] ${line}\n`);

async function main() {
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const dbName = `goalpost_accesslog_${Date.now()}`;
  await admin.unsafe(`create database ${dbName}`);
  const dbUrl = Object.assign(new URL(SERVER_URL), { pathname: `/${dbName}` }).toString();
  const dir = mkdtempSync(join(tmpdir(), 'goalpost-accesslog-'));
  const database = await openDatabase({ databaseUrl: dbUrl, poolMax: 10 });
  try {
    await migrateToLatest(database.db);
    const keys = await seedOwners(database.sql, 200, 1);
    await seedGoals(database.sql, 1, 10);
    const fixture = join(dir, 'fixture.json');
    writeFileSync(fixture, JSON.stringify(await fixtureOf(database.sql, keys, 10)));

    const logFile = join(dir, 'access.log');
    const destination =
      args.dest === 'sync' || args.dest === 'noop'
        ? pino.destination({ dest: logFile, sync: true })
        : args.dest === 'discard'
          ? ({ write: () => true, flushSync: () => {} } as unknown as ReturnType<typeof logDestination>)
        : args.dest === 'unbuffered'
          ? pino.destination({ dest: logFile, sync: false })
          : logDestination(logFile);
    const real = createLogger('info', destination);
    let on = false;
    const logger: Logger = {
      debug: real.debug,
      warn: real.warn,
      error: real.error,
      info: (msg, fields) => {
        if (on) real.info(msg, fields);
      },
      isEnabled: (level) => (level === 'info' ? on : real.isEnabled!(level)),
      // --dest noop: "on" builds the line's fields and calls nothing: the method's own noise floor.
      request: (line) => {
        if (on && args.dest !== 'noop') real.request!(line);
      },
    };
    const metrics = createMetrics();
    const app = createApp({
      db: database.db,
      authenticator: createAuthenticator({ db: database.db, cacheTtlMs: 30_000 }),
      rateLimiter: createRateLimiter({ perMinute: 1_000_000_000, store: 'memory' }),
      generateRateLimiter: createRateLimiter({ perMinute: 1_000_000_000, store: 'memory', keyPrefix: 'rl-generate' }),
      logger,
      maxActiveGoals: 3,
      bodyLimitBytes: 1024 * 1024,
      ai: createOfflineProvider(),
      webhooks: { timeoutMs: 10_000, backoffMs: 10_000, maxAttempts: 8, allowPrivateUrls: false },
      metrics,
    });
    // Requests counted as they come, synchronously with the switch (the metrics' counter is read asynchronously).
    let received = 0;
    const counting = { fetch: (request: Request, env: unknown) => (received++, app.fetch(request, env)) } as unknown as typeof app;
    const { server, port } = await listen(counting, { port: 0, hostname: '127.0.0.1', maxFrameBytes: 1024 * 1024 });
    const answered = () => received;

    const options = {
      url: `http://127.0.0.1:${port}/v1`,
      op: 'goals.get',
      fixture,
      connections: Number(args.connections),
      duration: SECONDS,
      warmup: Number(args.warmup),
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/load.ts', JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const totals = { on: { cpuUs: 0, requests: 0, ms: 0 }, off: { cpuUs: 0, requests: 0, ms: 0 } };
    let timer: NodeJS.Timeout | undefined;
    const measuring = new Promise<void>((resolve) => {
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('{"measuring":true}')) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await measuring;
    log(`measuring ${SECONDS} s, switching every ${SWITCH_MS / 1000} s`);
    let phase = { cpu: process.cpuUsage(), requests: answered(), at: performance.now() };
    const close = () => {
      const cpu = process.cpuUsage(phase.cpu);
      const requests = answered();
      const at = performance.now();
      const total = totals[on ? 'on' : 'off'];
      total.cpuUs += cpu.user + cpu.system;
      total.requests += requests - phase.requests;
      total.ms += at - phase.at;
      on = !on;
      phase = { cpu: process.cpuUsage(), requests, at };
    };
    timer = setInterval(close, SWITCH_MS);
    const code = await exited;
    clearInterval(timer);
    if (code !== 0) throw new Error(`load generator failed (${code})`);
    const result = JSON.parse(out.trim().split('\n').pop()!) as { errors: number; non2xx: number; timeouts: number };
    if (result.errors + result.non2xx + result.timeouts > 0) throw new Error(`failed requests: ${JSON.stringify(result)}`);
    (destination as unknown as { flushSync(): void }).flushSync();
    await new Promise((r) => setTimeout(r, 500));
    server.close();
    const lines = args.dest === 'discard' || args.dest === 'noop' ? 0 : readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('request completed')).length;

    const per = (t: { cpuUs: number; requests: number; ms: number }) => ({ cpuUs: t.cpuUs / t.requests, rps: (t.requests * 1000) / t.ms });
    const off = per(totals.off);
    const onn = per(totals.on);
    console.log('| access log | requests | req/s | server CPU per request |');
    console.log('| --- | ---: | ---: | ---: |');
    console.log(`| off | ${totals.off.requests} | ${off.rps.toFixed(0)} | ${off.cpuUs.toFixed(1)} µs |`);
    console.log(`| on | ${totals.on.requests} | ${onn.rps.toFixed(0)} | ${onn.cpuUs.toFixed(1)} µs |`);
    console.log(
      `\nThe access log adds ${(onn.cpuUs - off.cpuUs).toFixed(1)} µs of server CPU a request ` +
        `(${(((onn.cpuUs - off.cpuUs) / off.cpuUs) * 100).toFixed(1)}%); ${lines} lines written for ${totals.on.requests} requests logged (and those of the warm-up, off).`,
    );
  } finally {
    await database.close();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`[access-log] FAILED: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
