import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { createAiProvider } from './ai/index.ts';
import { createApp } from './app.ts';
import { createAuthenticator } from './auth/authenticate.ts';
import { createRateLimiter } from './auth/rate-limit.ts';
import { ConfigError, loadConfig, webhookSettings, type Config } from './config.ts';
import { openDatabase, type DatabaseHandle, type Db } from './db/client.ts';
import { sessionsInUse } from './db/dialect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createLogger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { queueDepth } from './resources/webhooks/queries.ts';
import { createUserWithKey } from './resources/users/queries.ts';
import { createWebSocketHub } from './http/websocket.ts';
import { startWorker, type Worker } from './jobs/worker.ts';

const LAST_USED_FLUSH_MS = 30_000;

/**
 * Serves an app over HTTP and, at `GET /v1/ws`, WebSocket (the `ws` server @hono/node-server's
 * `upgradeWebSocket` needs); resolves once it listens. Port 0 picks a free one.
 *
 * @example const { server, port } = await listen(app, { port: 0, hostname: '127.0.0.1', maxFrameBytes: 1 << 20 });
 */
export async function listen(
  app: Hono<any>,
  options: { port: number; hostname?: string; maxFrameBytes: number },
): Promise<{ server: Server; port: number }> {
  // Frames up to the body limit are read and answered (PAYLOAD_TOO_LARGE beyond it); only a frame
  // several times larger is cut off by `ws` itself, closing the socket with 1009 (message too big).
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(4 * options.maxFrameBytes, 64 * 1024) });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve(
      { fetch: app.fetch, port: options.port, hostname: options.hostname, websocket: { server: wss } },
      () => {
        s.off('error', reject);
        resolve(s as Server);
      },
    );
    // EADDRINUSE, EACCES…: the caller says what to do; without a listener Node ends the process with a stack.
    s.once('error', (error) => reject(listenError(error, options.port)));
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : options.port };
}

/** A start-up failure whose message says what to do; `main` prints it as one line. */
export class StartupError extends Error {
  override name = 'StartupError';
}

function listenError(error: Error, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new StartupError(`Port ${port} is already in use (another Goalpost, or another program): stop that process, or set PORT to a free port.`);
  }
  if (code === 'EACCES') {
    return new StartupError(`Port ${port} may not be opened by this user (ports below 1024 need privileges): set PORT to 1024 or above.`);
  }
  if (code === 'EADDRNOTAVAIL') return new StartupError(`HOST is not an address of this machine: ${error.message}`);
  return error;
}

/**
 * Fails fast, before the database opens (a few seconds for the embedded one), when the port cannot be listened on.
 * `listen` still handles the race of another process taking it in between.
 */
function checkPortFree(port: number, hostname: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', (error) => reject(listenError(error, port)));
    probe.listen({ port, host: hostname, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Starts the whole service; resolves once it listens. Exported for tests that want a real process. */
export async function startServer(config: Config) {
  const logger = createLogger(config.LOG_LEVEL);
  await checkPortFree(config.PORT, config.HOST);
  const database = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
    statementTimeoutMs: config.STATEMENT_TIMEOUT_MS,
    unavailableTimeoutMs: config.DB_UNAVAILABLE_TIMEOUT_MS,
  });
  await migrateToLatest(database.db);

  const authenticator = authenticatorFor(config, database.db);
  const { rateLimiter, generateRateLimiter } = createLimiters(config, database);
  const webSockets = createWebSocketHub();
  const metrics = createMetrics({
    processMetrics: true,
    pool: () => {
      const max = database.sql.options.max;
      const running = sessionsInUse(database.sql);
      return { max, inUse: Math.min(running, max), waiting: Math.max(0, running - max) };
    },
    queue: () => queueDepth(database.db),
  });
  const app = createApp({
    db: database.db,
    availability: database.availability,
    authenticator,
    rateLimiter,
    logger,
    maxActiveGoals: config.MAX_ACTIVE_GOALS,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    webSockets,
    ai: createAiProvider(config),
    generateRateLimiter,
    webhooks: webhookSettings(config),
    metrics,
    metricsToken: config.METRICS_TOKEN,
    accessLogSampleRate: config.ACCESS_LOG_SAMPLE_RATE,
  });

  // A shared store (Redis) connects in the background; wait for it (5 s at most) so that this process's first requests
  // count against the shared budget, not only against its in-memory insurance limiter.
  if ((await Promise.all([rateLimiter.ready(), generateRateLimiter.ready()])).includes(false)) {
    logger.warn('the rate-limit store is not reachable yet; counting in this process until it is', { store: config.RATE_LIMIT_STORE });
  }
  let listening: Awaited<ReturnType<typeof listen>>;
  try {
    listening = await listen(app, { port: config.PORT, hostname: config.HOST, maxFrameBytes: config.BODY_LIMIT_BYTES });
  } catch (error) {
    // The embedded database's lock is released, the shared limiters disconnected: the process can exit cleanly.
    for (const limiter of [rateLimiter, generateRateLimiter]) await limiter.close().catch(() => {});
    await database.close().catch(() => {});
    throw error;
  }
  const { server, port } = listening;
  const flushTimer = setInterval(() => void authenticator.flushLastUsed(), LAST_USED_FLUSH_MS);
  flushTimer.unref();
  const worker = config.WORKER
    ? startWorker({
        db: database.db,
        settings: webhookSettings(config),
        logger,
        pollMs: config.WORKER_POLL_MS,
        onOutcome: (outcome) => metrics.deliveries.inc({ outcome }),
      })
    : undefined;
  logger.info('listening', { port, host: config.HOST, database: database.kind, worker: config.WORKER });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= shutDown(
      { server, flushTimer, webSockets, authenticator, limiters: [rateLimiter, generateRateLimiter], worker, database },
      config,
    ));

  return { app, server, port, database, logger, metrics, close };
}

/**
 * Stops taking connections and work, lets in-flight requests (up to the timeout) and deliveries (up to theirs) finish,
 * then closes the database.
 */
async function shutDown(
  running: {
    server: Server;
    flushTimer: NodeJS.Timeout;
    webSockets: ReturnType<typeof createWebSocketHub>;
    authenticator: ReturnType<typeof createAuthenticator>;
    limiters: ReturnType<typeof createRateLimiter>[];
    worker: Worker | undefined;
    database: Awaited<ReturnType<typeof openDatabase>>;
  },
  config: Config,
): Promise<void> {
  const { server, webSockets } = running;
  clearInterval(running.flushTimer);
  const drained = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // WebSockets: no new request frames, those in flight answered, then closed with 1001.
  void webSockets.drain(config.SHUTDOWN_TIMEOUT_MS);
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, config.SHUTDOWN_TIMEOUT_MS).unref());
  // The worker takes no new work; its attempts in flight end within WEBHOOK_TIMEOUT_MS, and are recorded.
  await Promise.all([Promise.race([drained, timeout]), running.worker?.stop()]);
  server.closeAllConnections();
  await running.authenticator.flushLastUsed();
  for (const limiter of running.limiters) await limiter.close();
  await running.database.close();
}

/** The general per-credential limit, and the per-user budget of the generating actions in the same store. */
/** The authenticator the configuration asks for (API keys, JWTs, the service key). */
export function authenticatorFor(config: Config, db: Db) {
  return createAuthenticator({
    db,
    cacheTtlMs: config.KEY_CACHE_TTL_SECONDS * 1000,
    jwtSecret: config.JWT_SECRET,
    jwksUrl: config.JWT_JWKS_URL,
    jwtIssuer: config.JWT_ISSUER,
    jwtAudience: config.JWT_AUDIENCE,
    serviceKey: config.SERVICE_KEY,
  });
}

/** The general rate limiter and the per-user one of the generating actions, in the configured store. */
export function createLimiters(config: Config, database: Pick<DatabaseHandle, 'sql' | 'availability'>) {
  // The postgres store's leases get a connection of their own, unless the database takes one connection at a time.
  const databaseUrl = config.DATABASE_POOL_MAX > 1 ? config.DATABASE_URL : undefined;
  const shared = {
    store: config.RATE_LIMIT_STORE,
    sql: database.sql,
    databaseUrl,
    availability: database.availability,
    redisUrl: config.REDIS_URL,
  };
  return {
    rateLimiter: createRateLimiter({ ...shared, perMinute: config.RATE_LIMIT_PER_MINUTE }),
    generateRateLimiter: createRateLimiter({
      ...shared,
      perMinute: config.GENERATE_RATE_LIMIT_PER_MINUTE,
      keyPrefix: 'rl-generate',
      what: 'generations',
    }),
  };
}

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  let running: Awaited<ReturnType<typeof startServer>>;
  try {
    running = await startServer(config);
  } catch (error) {
    if (error instanceof StartupError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  // At once: a SIGTERM while the banner is written still drains and releases the embedded database's lock.
  const shutdown = (signal: string) => {
    running.logger.info('shutting down', { signal });
    running.close().then(
      () => {
        running.logger.info('stopped', { signal });
        process.exit(0);
      },
      (error) => {
        running.logger.error('shutdown failed', { error: String(error) });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  const base = `http://localhost:${running.port}`;
  const where = running.database.kind === 'embedded' ? `embedded database in ${config.DATA_DIR}` : 'Postgres';
  console.log(`Goalpost listening on ${base} (${where}); docs at ${base}/docs`);

  if (running.database.kind === 'embedded') {
    const anyUser = await running.database.db.selectFrom('users').select('id').limit(1).executeTakeFirst();
    if (!anyUser) {
      const { user, key } = await createUserWithKey(running.database.db, {
        email: 'demo@goalpost.local',
        name: 'Demo user',
        keyName: 'demo',
      });
      console.log(`\nFirst run: created ${user.email} with this API key (shown once):\n\n  ${key}\n`);
      console.log('Try it:\n');
      console.log(
        `  curl -s ${base}/v1 -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\\n` +
          `    -d '{"resource":"goals","action":"create","data":{"name":"Book a demo call"}}'\n`,
      );
    } else {
      console.log('Users exist already; create another with: npx goalpost users create --email you@example.com');
    }
  }

}

if (isEntryPoint()) {
  main().catch((error) => {
    process.stderr.write(`Goalpost failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

/** Run as the program (`node dist/server.js`, `tsx src/server.ts`), not imported by a test. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
