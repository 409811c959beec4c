import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getConnInfo } from '@hono/node-server/conninfo';
import { Scalar } from '@scalar/hono-api-reference';
import { Hono, type Context } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { sql } from 'kysely';
import type { AiProvider } from './ai/provider.ts';
import type { Authenticator } from './auth/authenticate.ts';
import type { RateLimiter } from './auth/rate-limit.ts';
import type { Availability } from './db/availability.ts';
import type { Db } from './db/client.ts';
import type { AdmissionDeps } from './http/admission.ts';
import { renderError, responseHeaders, type Env } from './http/answer.ts';
import { bodyLimit } from './http/body-limit.ts';
import { mcpRoute } from './http/mcp.ts';
import { observe } from './http/observe.ts';
import { createV1 } from './http/v1.ts';
import { createWebSocketHub, webSocketRoute, type WebSocketHub } from './http/websocket.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import type { WebhookSettings } from './rpc/context.ts';
import type { DispatchDeps } from './rpc/dispatch.ts';
import { AppError } from './rpc/errors.ts';
import { buildOpenApi } from './rpc/openapi.ts';
import { registry } from './resources/index.ts';

export interface AppDeps {
  db: Db;
  /** The deadline of queries while a Postgres server is away; `/readyz` answers as requests would. */
  availability?: Availability;
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  logger: Logger;
  maxActiveGoals: number;
  bodyLimitBytes: number;
  /** The open WebSockets of `GET /v1/ws`, for shutdown to drain; one of its own when not given. */
  webSockets?: WebSocketHub;
  /** The generation provider of `goals.generate` and `goals.generate-roadmap` (`AI_PROVIDER`). */
  ai: AiProvider;
  /** The per-user limit of the generating actions, on top of `rateLimiter`. */
  generateRateLimiter: RateLimiter;
  /** How the `test` and `redeliver` actions send, and which webhook URLs are accepted (WEBHOOK_*). */
  webhooks: WebhookSettings;
  /** The registry `GET /metrics` renders and the request middleware counts into; one of its own when not given. */
  metrics?: Metrics;
  /** METRICS_TOKEN: `GET /metrics` wants `Authorization: Bearer <it>`; unset, it answers loopback callers only. */
  metricsToken?: string;
  /** ACCESS_LOG_SAMPLE_RATE: the share of requests given an access-log line (default 1, all; 0, none). */
  accessLogSampleRate?: number;
  /** Validate every answer against its action's output schema (the test suite does; see `DispatchDeps`). */
  checkAnswers?: boolean;
}

/** What the dispatcher needs to run the registry's actions: every transport's (and `goalpost mcp`'s) half of the app. */
export function dispatchDeps(
  deps: Pick<AppDeps, 'db' | 'authenticator' | 'maxActiveGoals' | 'ai' | 'webhooks' | 'generateRateLimiter' | 'checkAnswers'>,
): DispatchDeps {
  return {
    registry,
    db: deps.db,
    maxActiveGoals: deps.maxActiveGoals,
    services: { forgetApiKey: deps.authenticator.forgetApiKey, ai: deps.ai, webhooks: deps.webhooks },
    limiters: { generate: deps.generateRateLimiter },
    checkAnswers: deps.checkAnswers,
  };
}

const scalarBundle = (() => {
  let bundle: string | undefined;
  return () => {
    bundle ??= readFileSync(createRequire(import.meta.url).resolve('@scalar/api-reference/browser/standalone.js'), 'utf8');
    return bundle;
  };
})();

/**
 * Builds the Hono app: request id and security headers, health, OpenAPI and docs, the WebSocket, then `/v1`
 * behind body limit → admission. One error handler renders every failure as the envelope.
 *
 * @example const app = createApp(deps); const res = await app.request('/v1', { method: 'POST', ... });
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const admission: AdmissionDeps = { authenticator: deps.authenticator, rateLimiter: deps.rateLimiter, dispatch: dispatchDeps(deps) };

  const metrics = deps.metrics ?? createMetrics();
  // First: it times and counts everything below, errors included (onError has answered by the time it resumes).
  app.use(observe({ logger: deps.logger, metrics, accessLogSampleRate: deps.accessLogSampleRate ?? 1 }));
  app.use(responseHeaders());
  // The reference page is a browser document: it gets Hono's full set for HTML as well.
  app.use('/docs/*', secureHeaders({ xFrameOptions: 'DENY' }));

  app.get('/healthz', (c) => c.json({ success: true, data: { status: 'ok' } }));
  app.get('/readyz', async (c) => {
    // While the database is known to be away, at once, as every request is answered; else a query as requests make.
    if (deps.availability && !deps.availability.available) {
      throw new AppError({ code: 'SERVICE_UNAVAILABLE', message: 'The database does not answer' });
    }
    await withTimeout(sql`select 1`.execute(deps.db), 3000);
    return c.json({ success: true, data: { status: 'ready' } });
  });

  app.get('/metrics', async (c) => {
    checkMetricsAccess(c, deps.metricsToken);
    c.header('Content-Type', metrics.registry.contentType);
    c.header('Cache-Control', 'no-store');
    return c.body(await metrics.registry.metrics());
  });

  const openapi = buildOpenApi(registry);
  app.get('/openapi.json', (c) => c.json(openapi));
  // The reference page's script is served from here, not a CDN: users and these machines may be offline.
  app.get('/docs/scalar.js', (c) => {
    c.header('Content-Type', 'application/javascript; charset=utf-8');
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(scalarBundle());
  });
  app.get('/docs', Scalar({ url: '/openapi.json', cdn: '/docs/scalar.js', pageTitle: 'Goalpost API' }));

  // Before `/v1`'s middleware: a socket authenticates by header or by a first frame, and each request frame
  // (not the upgrade) goes through admission.
  const hub = deps.webSockets ?? createWebSocketHub();
  app.get('/v1/ws', webSocketRoute({ ...admission, logger: deps.logger, maxFrameBytes: deps.bodyLimitBytes, hub }), () => {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'GET /v1/ws is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)',
    });
  });
  app.route('/v1', createV1({ ...admission, logger: deps.logger, bodyLimitBytes: deps.bodyLimitBytes }));
  app.post(
    '/mcp',
    bodyLimit({
      maxSize: deps.bodyLimitBytes,
      onError: () => {
        throw new AppError({ code: 'PAYLOAD_TOO_LARGE', message: `The request body is over ${deps.bodyLimitBytes} bytes` });
      },
    }),
    mcpRoute({ ...admission, logger: deps.logger }),
  );

  const allowedMethods = routeMethods(app);
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length > 0) {
      throw new AppError({
        code: 'METHOD_NOT_ALLOWED',
        message: `${c.req.method} ${c.req.path}: this route takes ${allow.join(', ')}`,
        headers: { allow: allow.join(', ') },
      });
    }
    throw new AppError({ code: 'NOT_FOUND', message: `No route ${c.req.method} ${c.req.path}; the API is POST /v1` });
  });
  app.onError(renderError(deps.logger));
  return app;
}

/**
 * `/metrics` says how busy the service is and which resources are used, nothing of anyone's data; still not for
 * everyone. With METRICS_TOKEN set it wants `Authorization: Bearer <token>` (401 without it, from anywhere); without
 * it, only a caller on this machine (loopback) may scrape (403 otherwise). A reverse proxy on the same machine makes
 * every caller look local: set METRICS_TOKEN there (docs/decisions.md).
 */
function checkMetricsAccess(c: Context<Env>, token: string | undefined): void {
  if (token !== undefined) {
    const sent = /^Bearer (.+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
    const digest = (value: string) => createHash('sha256').update(value).digest();
    if (!timingSafeEqual(digest(sent), digest(token))) {
      throw new AppError({ code: 'UNAUTHORIZED', message: 'GET /metrics wants Authorization: Bearer <METRICS_TOKEN>' });
    }
    return;
  }
  if (!isLoopback(remoteAddress(c))) {
    throw new AppError({
      code: 'FORBIDDEN',
      message: 'GET /metrics answers callers on this machine only; set METRICS_TOKEN to scrape from elsewhere',
    });
  }
}

function remoteAddress(c: Context<Env>): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // not served over a socket (app.request in tests)
  }
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

/**
 * The methods the app's routes take at a path (HEAD wherever GET is, as Hono answers it), from its route table;
 * middleware (`use`, method ALL) is not a route. Read when first asked, once every route is registered.
 */
function routeMethods(app: Hono<Env>): (path: string) => string[] {
  let routes: { pattern: RegExp; method: string }[] | undefined;
  return (path) => {
    routes ??= app.routes
      .filter((route) => route.method !== 'ALL')
      .map((route) => ({ pattern: pathPattern(route.path), method: route.method }));
    const methods = new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method));
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  };
}

/** A Hono route path (`/v1/:resource/:id`, `/docs/*`) as a regular expression over request paths. */
function pathPattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) => (segment === '*' ? '.*' : segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}/?$`);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AppError({ code: 'SERVICE_UNAVAILABLE', message: 'The database does not answer' })), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
