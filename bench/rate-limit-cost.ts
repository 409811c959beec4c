// What a shared rate-limit store costs one key over its window, by where the key stands against its limit: far
// from it (blocks), near it (the last 2 × divisor units, single-unit leases), and over it (refused locally). One
// limiter in the bench process drives one key through a whole window, one request after another, with the store's
// statements counted; a step of `npm run bench` (bench/run.ts), after the store comparison.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import postgres from 'postgres';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import {
  DEFAULT_LEASE_SETTINGS,
  LeasedLimiter,
  postgresLeaseStore,
  redisLeaseStore,
  type LeaseSettings,
  type LeaseStore,
} from '../src/auth/rate-limit-leases.ts';

export interface PhaseCost {
  requests: number;
  /** Leasing statements (each one write and one round trip) per request. */
  statementsPerRequest: number;
  /** Mean time of a consume, µs (a statement's round trip when it takes one). */
  meanUs: number;
}

export interface LimitCost {
  store: string;
  limit: number;
  far: PhaseCost;
  near: PhaseCost;
  over: PhaseCost;
  /** Statements for the whole window's budget (limit requests admitted). */
  statementsPerWindow: number;
}

/** Drives one fresh key of each store through its limit and `limit` refused requests beyond. */
export async function measureLimitCost(stores: { postgres: postgres.Sql; redis?: Redis }, limits = [60, 1000]): Promise<LimitCost[]> {
  const results: LimitCost[] = [];
  for (const limit of limits) {
    const settings: LeaseSettings = { ...DEFAULT_LEASE_SETTINGS, limit };
    const made: [string, LeaseStore][] = [['postgres', postgresLeaseStore(stores.postgres, settings)]];
    if (stores.redis) made.push(['redis', redisLeaseStore(stores.redis, settings)]);
    for (const [name, inner] of made) {
      let statements = 0;
      const counted: LeaseStore = {
        take: (key, want) => {
          statements++;
          return inner.take(key, want);
        },
        giveBack: (returns) => inner.giveBack(returns),
      };
      const limiter = new LeasedLimiter(counted, settings);
      const key = `rl-bench-cost:${name}:${limit}:${Date.now()}`;
      const nearFrom = limit - 2 * settings.divisor;
      const phases = { far: { requests: 0, statements: 0, us: 0 }, near: { requests: 0, statements: 0, us: 0 }, over: { requests: 0, statements: 0, us: 0 } };
      for (let i = 0; i < 2 * limit; i++) {
        const phase = i < nearFrom ? phases.far : i < limit ? phases.near : phases.over;
        const before = statements;
        const t = performance.now();
        const verdict = await limiter.consume(key);
        phase.us += (performance.now() - t) * 1000;
        phase.statements += statements - before;
        phase.requests++;
        if (verdict.admitted !== i < limit) throw new Error(`request ${i + 1} of a limit of ${limit} was ${verdict.admitted ? 'admitted' : 'refused'}`);
      }
      await limiter.close();
      const cost = (p: { requests: number; statements: number; us: number }): PhaseCost => ({
        requests: p.requests,
        statementsPerRequest: p.statements / p.requests,
        meanUs: p.us / p.requests,
      });
      results.push({
        store: name,
        limit,
        far: cost(phases.far),
        near: cost(phases.near),
        over: cost(phases.over),
        statementsPerWindow: phases.far.statements + phases.near.statements,
      });
    }
  }
  return results;
}

/** The table of `measureLimitCost`'s results. */
export function reportLimitCost(results: LimitCost[], out: (line?: string) => void): void {
  const f = (v: number, d: number) => v.toFixed(d);
  out('#### A key against its limit: one key through a whole window, one request after another');
  out();
  out('| store | limit | statements for the window | far: statements a request | µs | near (last 16): statements a request | µs | over (refused): statements a request | µs |');
  out('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    out(
      `| ${r.store} | ${r.limit} | ${r.statementsPerWindow} | ${f(r.far.statementsPerRequest, 3)} | ${f(r.far.meanUs, 0)} | ` +
        `${f(r.near.statementsPerRequest, 3)} | ${f(r.near.meanUs, 0)} | ${f(r.over.statementsPerRequest, 3)} | ${f(r.over.meanUs, 1)} |`,
    );
  }
  out();
  out(
    'Each statement is one write and one round trip. Far from the limit a busy key takes blocks that double while ' +
      'they are spent within seconds; the last 2 × 8 units go one a statement; past the limit a process refuses from ' +
      'what it knows, asking the store again at most once a second (rate-limiter-flexible wrote every refused request).',
  );
  out();
}

export interface BusyCost {
  store: string;
  requests: number;
  /** CPU of the bench process per consume, µs (the loop's own share included, alike for every store). */
  nodeCpuUs: number;
  /** CPU of the Postgres backend serving the leases per consume, µs (0 for memory and Redis). */
  postgresCpuUs: number;
  /** Leasing statements per consume. */
  statementsPerRequest: number;
}

/** CPU time (user + system) of process `pid`, µs; 0 if it is gone. */
function cpuOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0;
  }
}

/**
 * The limiter alone under the bench's key mix: `keys` keys drawn at random by 32 loops at about `rate` consumes a
 * second in all, far from any limit, for `seconds` after `warmupSeconds` (blocks grow during the warm-up, as in a
 * server that has run a while). CPU of this process and of the lease connection's backend, per consume: what a store
 * adds to a request, without HTTP or the machine's other load in the figure.
 */
export async function measureBusyKeys(options: { databaseUrl: string; redis?: Redis; keys?: number; rate?: number; seconds?: number; warmupSeconds?: number }): Promise<BusyCost[]> {
  const { keys = 1000, rate = 3000, seconds = 10, warmupSeconds = 20 } = options;
  const names = Array.from({ length: keys }, (_, i) => `key:${i}`);
  const settings: LeaseSettings = { ...DEFAULT_LEASE_SETTINGS, limit: 1e9 };
  const results: BusyCost[] = [];
  const stores: string[] = ['memory', 'postgres', ...(options.redis ? ['redis'] : [])];
  for (const name of stores) {
    let statements = 0;
    let sql: postgres.Sql | undefined;
    let consume: (key: string) => Promise<unknown>;
    let close = async () => {};
    if (name === 'memory') {
      const memory = new RateLimiterMemory({ points: 1e9, duration: 60 });
      consume = (key) => memory.consume(key, 1);
    } else {
      let inner: LeaseStore;
      if (name === 'postgres') {
        sql = postgres(options.databaseUrl, { max: 1, onnotice: () => {}, connection: { application_name: 'bench-leases' } });
        inner = postgresLeaseStore(sql, settings);
      } else inner = redisLeaseStore(options.redis!, settings);
      const limiter = new LeasedLimiter(
        {
          take: (key, want) => {
            statements++;
            return inner.take(key, want);
          },
          giveBack: (returns) => inner.giveBack(returns),
        },
        settings,
      );
      const prefix = `rl-bench-busy-${name}-${Date.now()}`;
      consume = (key) => limiter.consume(`${prefix}:${key}`);
      close = () => limiter.close();
    }
    const pause = (32 * 1000) / rate;
    const started = performance.now();
    let requests = 0;
    let from: { at: number; requests: number; statements: number; node: NodeJS.CpuUsage; pg: number } | undefined;
    let backend = 0;
    const mark = async () => {
      if (sql && backend === 0) backend = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
      from = { at: performance.now(), requests, statements, node: process.cpuUsage(), pg: backend ? cpuOf(backend) : 0 };
    };
    const warm = setTimeout(() => void mark(), warmupSeconds * 1000);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (performance.now() - started < (warmupSeconds + seconds) * 1000) {
          await consume(names[Math.floor(Math.random() * keys)]!);
          requests++;
          await new Promise((r) => setTimeout(r, pause));
        }
      }),
    );
    clearTimeout(warm);
    const node = process.cpuUsage(from!.node);
    const n = requests - from!.requests;
    results.push({
      store: name,
      requests: n,
      nodeCpuUs: (node.user + node.system) / n,
      postgresCpuUs: backend ? (cpuOf(backend) - from!.pg) / n : 0,
      statementsPerRequest: (statements - from!.statements) / n,
    });
    await close();
    await sql?.end({ timeout: 5 });
  }
  return results;
}

/** The table of `measureBusyKeys`'s results. */
export function reportBusyKeys(results: BusyCost[], out: (line?: string) => void): void {
  const memory = results.find((r) => r.store === 'memory');
  out('#### The limiter alone, busy keys far from their limit (1000 keys at random, ~3000 consumes/s, in the bench process)');
  out();
  out('| store | consumes | statements a consume | node CPU µs a consume | Postgres CPU µs a consume | added to a request against memory |');
  out('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const added = memory ? r.nodeCpuUs + r.postgresCpuUs - memory.nodeCpuUs : NaN;
    out(
      `| ${r.store} | ${r.requests} | ${r.statementsPerRequest.toFixed(4)} | ${r.nodeCpuUs.toFixed(1)} | ${r.postgresCpuUs.toFixed(1)} | ` +
        `${r.store === 'memory' ? 'baseline' : `${added >= 0 ? '+' : ''}${added.toFixed(1)} µs`} |`,
    );
  }
  out();
  out(
    "Node CPU includes the loop's own timers, the same for every store; Redis's own CPU is not counted. Before issue 22 " +
      'the postgres store wrote once per request (about +270 µs of CPU a request in the store comparison).',
  );
  out();
}
