import { Redis } from 'ioredis';
import postgres from 'postgres';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Availability } from '../db/availability.ts';
import { AppError } from '../rpc/errors.ts';
import {
  DEFAULT_LEASE_SETTINGS,
  LeasedLimiter,
  postgresLeaseStore,
  redisLeaseStore,
  type LeaseSettings,
  type LeaseStore,
} from './rate-limit-leases.ts';

export interface RateLimitOptions {
  perMinute: number;
  store: 'memory' | 'postgres' | 'redis';
  /** For the postgres store: the app's postgres.js client (the table comes from the migrations). */
  sql?: postgres.Sql;
  /**
   * For the postgres store on a server (not the embedded database, which takes one connection): leases then go
   * through a client of their own, so that a lease waiting for its commit never holds up a request's query.
   */
  databaseUrl?: string;
  /**
   * For the postgres store: the deadline while the database is away (src/db/availability.ts). A lease not answered
   * in time, or asked for while the database is known to be down, is counted in memory instead (as any store failure).
   */
  availability?: Availability;
  redisUrl?: string;
  /** Keeps namespaces apart when several limiters share one store (tests, `generate`). */
  keyPrefix?: string;
  /** What is counted, for the 429 message: "requests" by default, "generations" for `goals.generate`. */
  what?: string;
  /** The shared stores' lease settings (tests shorten the window); see src/auth/rate-limit-leases.ts. */
  leases?: Partial<Omit<LeaseSettings, 'limit'>>;
}

export interface RateLimitVerdict {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

/**
 * A fixed one-minute window per credential. The memory store (rate-limiter-flexible's) is exact for one process.
 * Postgres and Redis share the budget between processes through leases (src/auth/rate-limit-leases.ts): a process
 * takes a block of a key's budget in one statement and spends it locally, so the limit stays exact across processes
 * and a busy key costs one write per block, not per request. If the shared store fails, an in-memory limiter takes
 * over (per process) rather than letting every request through or failing it.
 *
 * @example const limiter = createRateLimiter({ perMinute: 60, store: 'memory' });
 *          const verdict = await limiter.consume('key:…'); // throws RATE_LIMIT_EXCEEDED
 */
export function createRateLimiter(options: RateLimitOptions) {
  const keyPrefix = options.keyPrefix ?? 'rl';
  const settings: LeaseSettings = { ...DEFAULT_LEASE_SETTINGS, ...options.leases, limit: options.perMinute };
  const insuranceLimiter = new RateLimiterMemory({ points: options.perMinute, duration: settings.windowMs / 1000, keyPrefix });
  const { store, redis, sql } = leaseStore(options, settings);
  const leases = store && new LeasedLimiter(store, settings);

  /** The in-memory count: the memory store, and the shared stores' stand-in while they fail. */
  async function consumeInMemory(key: string): Promise<RateLimitVerdict> {
    try {
      return verdict(await insuranceLimiter.consume(key, 1), options.perMinute);
    } catch (error) {
      if (error instanceof RateLimiterRes) throw exceeded(options, verdict(error, options.perMinute));
      throw error;
    }
  }

  return {
    /** Counts one request for `key`; throws RATE_LIMIT_EXCEEDED (with Retry-After) past the limit. */
    async consume(key: string): Promise<RateLimitVerdict> {
      if (!leases || (redis && redis.status !== 'ready') || options.availability?.available === false) return consumeInMemory(key);
      let leased;
      try {
        const leasing = leases.consume(`${keyPrefix}:${key}`);
        leased = await (options.availability ? options.availability.watch(leasing) : leasing);
      } catch {
        return consumeInMemory(key);
      }
      const v = { limit: options.perMinute, remaining: leased.remaining, resetSeconds: Math.max(1, Math.ceil(leased.msLeft / 1000)) };
      if (!leased.admitted) throw exceeded(options, v);
      return v;
    },
    /**
     * Resolves once the shared store can count (Redis connected), or after `timeoutMs` if it cannot yet: until then the
     * in-memory insurance limiter answers, and its counts are this process's alone. The server waits for it before it
     * listens, so that a fresh process's first requests count against the shared budget.
     */
    async ready(timeoutMs = 5_000): Promise<boolean> {
      if (!redis || redis.status === 'ready') return true;
      return redisReady(redis, timeoutMs);
    },
    /** Gives the units this process holds back to the shared budget, and closes the store's connection. */
    async close(): Promise<void> {
      await leases?.close();
      redis?.disconnect();
      await sql?.end({ timeout: 5 });
    },
  };
}

/** The lease store of `options.store` (none for memory), and the Redis client it opened. */
function leaseStore(options: RateLimitOptions, settings: LeaseSettings): { store?: LeaseStore; redis?: Redis; sql?: postgres.Sql } {
  switch (options.store) {
    case 'memory':
      return {};
    case 'redis': {
      if (!options.redisUrl) throw new Error('the redis rate-limit store needs REDIS_URL');
      const redis = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
      redis.on('error', () => {
        // ioredis reconnects by itself; the insurance limiter answers meanwhile.
      });
      return { store: redisLeaseStore(redis, settings), redis };
    }
    case 'postgres': {
      if (options.databaseUrl) {
        // A lease's commit waits for the WAL flush; on the app's pool, queries pipelined behind it would wait as
        // long (docs/performance.md, rate-limit leases). Opened lazily: an idle limiter holds no connection.
        const sql = postgres(options.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
        return { store: postgresLeaseStore(sql, settings), sql };
      }
      if (!options.sql) throw new Error('the postgres rate-limit store needs the database client');
      return { store: postgresLeaseStore(options.sql, settings) };
    }
  }
}

function exceeded(options: RateLimitOptions, v: RateLimitVerdict): AppError {
  return new AppError({
    code: 'RATE_LIMIT_EXCEEDED',
    message: `Rate limit of ${options.perMinute} ${options.what ?? 'requests'} per minute exceeded; retry in ${v.resetSeconds} s`,
    headers: { 'Retry-After': String(v.resetSeconds), ...rateLimitHeaders(v) },
  });
}

/** Whether `client` got connected within `timeoutMs`. */
function redisReady(client: Redis, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    client.once('ready', onReady);
  });
}

function verdict(res: RateLimiterRes, limit: number): RateLimitVerdict {
  return { limit, remaining: res.remainingPoints, resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
}

/** The IETF draft's RateLimit-* headers. */
export function rateLimitHeaders(v: RateLimitVerdict): Record<string, string> {
  return {
    'RateLimit-Limit': String(v.limit),
    'RateLimit-Remaining': String(v.remaining),
    'RateLimit-Reset': String(v.resetSeconds),
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
