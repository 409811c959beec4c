import { Redis } from 'ioredis';
import type postgres from 'postgres';
import { cancelUnsent, type Availability } from '../db/availability.ts';
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { AppError } from '../rpc/errors.ts';

export interface RateLimitOptions {
  perMinute: number;
  store: 'memory' | 'postgres' | 'redis';
  /** For the postgres store: the app's postgres.js client (the table comes from the migrations). */
  sql?: postgres.Sql;
  /** For the postgres store: the deadline while the database is away (a count that fails falls back to memory). */
  availability?: Availability;
  redisUrl?: string;
  /** Keeps namespaces apart when several limiters share one store (tests, `generate`). */
  keyPrefix?: string;
  /** What is counted, for the 429 message: "requests" by default, "generations" for `goals.generate`. */
  what?: string;
}

export interface RateLimitVerdict {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

/**
 * A fixed one-minute window per credential, from rate-limiter-flexible. The memory store is exact for
 * one process; Redis or Postgres share the count between processes. If the shared store fails, an
 * in-memory limiter takes over (per process) rather than letting every request through or failing it.
 *
 * @example const limiter = createRateLimiter({ perMinute: 60, store: 'memory' });
 *          const verdict = await limiter.consume('key:…'); // throws RATE_LIMIT_EXCEEDED
 */
export function createRateLimiter(options: RateLimitOptions) {
  const common = { points: options.perMinute, duration: 60, keyPrefix: options.keyPrefix ?? 'rl' };
  const insuranceLimiter = new RateLimiterMemory(common);
  const { limiter, redis } = storeLimiter(options, common, insuranceLimiter);

  return {
    /** Counts one request for `key`; throws RATE_LIMIT_EXCEEDED (with Retry-After) past the limit. */
    async consume(key: string): Promise<RateLimitVerdict> {
      try {
        const res = await limiter.consume(key, 1);
        return verdict(res, options.perMinute);
      } catch (error) {
        if (error instanceof RateLimiterRes) throw exceeded(options, verdict(error, options.perMinute));
        throw error;
      }
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
    async close(): Promise<void> {
      redis?.disconnect();
    },
  };
}

type LimiterOptions = { points: number; duration: number; keyPrefix: string };

/** The limiter of `options.store`, with `insuranceLimiter` behind a shared one; and the Redis client it opened. */
function storeLimiter(
  options: RateLimitOptions,
  common: LimiterOptions,
  insuranceLimiter: RateLimiterMemory,
): { limiter: RateLimiterAbstract; redis?: Redis } {
  switch (options.store) {
    case 'memory':
      return { limiter: insuranceLimiter };
    case 'redis': {
      if (!options.redisUrl) throw new Error('the redis rate-limit store needs REDIS_URL');
      const redis = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
      redis.on('error', () => {
        // ioredis reconnects by itself; the insurance limiter answers meanwhile.
      });
      return { limiter: new RateLimiterRedis({ ...common, storeClient: redis, insuranceLimiter }), redis };
    }
    case 'postgres': {
      if (!options.sql) throw new Error('the postgres rate-limit store needs the database client');
      const sql = options.sql;
      // rate-limiter-flexible speaks to a `pg`-style client; this is that shape over postgres.js.
      const storeClient = {
        query: async ({ text, values }: { text: string; values?: unknown[] }) => {
          const query = sql.unsafe(text, (values ?? []) as postgres.ParameterOrJSON<never>[], { prepare: true });
          const rows = await (options.availability ? options.availability.watch(query, () => cancelUnsent(query)) : query);
          return { rows, rowCount: rows.count };
        },
      };
      const limiter = new RateLimiterPostgres({
        ...common,
        storeClient,
        storeType: 'pool',
        tableName: 'rate_limits',
        tableCreated: true,
        insuranceLimiter,
      });
      return { limiter };
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
