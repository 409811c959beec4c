// What a shared rate-limit store costs one key over its window, by where the key stands against its limit: far
// from it (blocks), near it (the last 2 × divisor units, single-unit leases), and over it (refused locally). One
// limiter in the bench process drives one key through a whole window, one request after another, with the store's
// statements counted; a step of `npm run bench` (bench/run.ts), after the store comparison.
import type { Redis } from 'ioredis';
import type postgres from 'postgres';
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
