// Cold start and memory of the server, run through tsx (`npm run dev`, and `npm start` before issue 23) and compiled
// (`npm start`: node dist/src/server.js), on the embedded database and on Postgres:
//
//   npm run build && node --import tsx bench/start.ts [--runs 5] [--json out.json]
//
// Start time: from spawning the process to the first 200 of GET /healthz (polled every 10 ms), which answers once
// the database is open, migrated and the server listens. RSS: VmRSS at that moment, and again after 2 s idle (the
// first start's lazily loaded modules and JIT settle). The embedded runs reopen one data directory made by a first
// start that is not counted; the Postgres runs use a database made for the run and dropped at the end.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';

const { values: args } = parseArgs({
  // --before DIR: also start the server of another checkout (e.g. `git archive <commit> | tar -x -C DIR`, with a
  // node_modules link) through tsx, as `npm start` did before.
  options: { runs: { type: 'string', default: '5' }, json: { type: 'string' }, before: { type: 'string' } },
});
const RUNS = Number(args.runs);
const SERVER_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

const VARIANTS: { name: string; args: string[]; cwd?: string }[] = [
  ...(args.before ? [{ name: 'before: tsx (src/server.ts)', args: ['--import', 'tsx', 'src/server.ts'], cwd: args.before }] : []),
  { name: 'tsx (src/server.ts)', args: ['--import', 'tsx', 'src/server.ts'] },
  { name: 'compiled (dist/src/server.js)', args: ['dist/src/server.js'] },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  startMs: number;
  rssReadyMb: number;
  rssIdleMb: number;
}

async function startOnce(nodeArgs: string[], env: Record<string, string>, cwd = process.cwd()): Promise<Sample> {
  const port = await freePort();
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'DATA_DIR', 'PORT', 'NODE_OPTIONS']) delete clean[name];
  const started = performance.now();
  const child = spawn(process.execPath, nodeArgs, {
    cwd,
    env: { ...clean, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode} before /healthz answered: ${stderr}`);
      if (performance.now() - started > 120_000) throw new Error(`no /healthz within 120 s: ${stderr}`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (res) => res.status === 200,
        () => false,
      );
      if (ok) break;
      await sleep(10);
    }
    const startMs = performance.now() - started;
    const rssReadyMb = rssMb(child.pid!);
    await sleep(2000);
    return { startMs, rssReadyMb, rssIdleMb: rssMb(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main() {
  if (!existsSync('dist/src/server.js')) throw new Error('dist/src/server.js is missing: npm run build first');
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const dbName = `goalpost_start_${Date.now()}`;
  await admin.unsafe(`create database ${dbName}`);
  const dataDir = mkdtempSync(join(tmpdir(), 'goalpost-start-'));
  try {
    const targets = {
      embedded: { DATA_DIR: join(dataDir, 'data') },
      postgres: { DATABASE_URL: Object.assign(new URL(SERVER_URL), { pathname: `/${dbName}` }).toString() },
    };
    // A first start of each (creates the data dir and demo user, migrates the database): not counted.
    const compiled = VARIANTS.at(-1)!;
    for (const env of Object.values(targets)) await startOnce(compiled.args, env);
    const samples = new Map<string, Sample[]>();
    for (let run = 1; run <= RUNS; run++) {
      for (const [target, env] of Object.entries(targets)) {
        for (const variant of VARIANTS) {
          const sample = await startOnce(variant.args, env, variant.cwd);
          const key = `${target}\t${variant.name}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          process.stderr.write(
            `[start] ${target} ${variant.name} run ${run}: ${sample.startMs.toFixed(0)} ms, RSS ${sample.rssReadyMb.toFixed(0)} MB ` +
              `(${sample.rssIdleMb.toFixed(0)} MB after 2 s)\n`,
          );
        }
      }
    }
    const rows = [...samples].map(([key, list]) => {
      const [target, variant] = key.split('\t') as [string, string];
      return {
        target,
        variant,
        runs: list.length,
        start_ms_median: median(list.map((s) => s.startMs)),
        start_ms_min: Math.min(...list.map((s) => s.startMs)),
        start_ms_max: Math.max(...list.map((s) => s.startMs)),
        rss_ready_mb_median: median(list.map((s) => s.rssReadyMb)),
        rss_idle_mb_median: median(list.map((s) => s.rssIdleMb)),
      };
    });
    console.log(`| database | how it runs | start → /healthz 200, median (min–max) | RSS when ready | RSS 2 s later |`);
    console.log('| --- | --- | ---: | ---: | ---: |');
    for (const r of rows) {
      console.log(
        `| ${r.target} | ${r.variant} | ${r.start_ms_median.toFixed(0)} ms (${r.start_ms_min.toFixed(0)}–${r.start_ms_max.toFixed(0)}) | ` +
          `${r.rss_ready_mb_median.toFixed(0)} MB | ${r.rss_idle_mb_median.toFixed(0)} MB |`,
      );
    }
    if (args.json) writeFileSync(args.json, `${JSON.stringify(rows, null, 2)}\n`);
  } finally {
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`[start] FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
