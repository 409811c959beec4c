import type { Context, MiddlewareHandler } from 'hono';
import type { Logger, RequestLine } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Env } from './answer.ts';

export interface ObserveOptions {
  logger: Logger;
  metrics: Metrics;
  /** The share of requests (0–1) given an access-log line (ACCESS_LOG_SAMPLE_RATE); 5xx are always logged. */
  accessLogSampleRate: number;
}

/** Paths outside `/v1` with a label of their own; anything else is `other` (labels must stay few). */
const NAMED_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/docs/scalar.js', '/v1/ws']);

/**
 * The access log and the request metrics, around everything else: one JSON line per request (method, path,
 * resource, action, status, duration, request id, user id — nothing from the headers or the body) and the
 * request count, duration histogram, in-flight gauge and 429 count of `/metrics`. The resource and action are
 * those of the registry once the call is prepared; before that (refused at admission, unknown resource), and
 * for the routes outside `/v1`, resource is `-` and action names the route.
 *
 * @example app.use(observe({ logger, metrics, accessLogSampleRate: 1 }));
 */
export function observe(options: ObserveOptions): MiddlewareHandler<Env> {
  const { logger, metrics, accessLogSampleRate } = options;
  return async function observe(c, next) {
    const start = performance.now();
    metrics.inFlight.inc();
    try {
      await next();
    } finally {
      metrics.inFlight.dec();
      const seconds = (performance.now() - start) / 1000;
      const status = c.res.status;
      const { resource, action } = c.get('rpc') ?? { resource: '-', action: routeLabel(c) };
      const labels = { resource, action, status: String(status) };
      metrics.requests.inc(labels);
      metrics.duration.observe(labels, seconds);
      if (status === 429) metrics.rateLimited.inc({ resource, action });
      if (status >= 500 || (accessLogSampleRate > 0 && (accessLogSampleRate >= 1 || Math.random() < accessLogSampleRate))) {
        if (logger.isEnabled?.('info') ?? true) {
          const line: RequestLine = {
            method: c.req.method,
            path: c.req.path,
            resource,
            action,
            status,
            duration_ms: Math.round(seconds * 1e6) / 1e3,
            request_id: c.get('requestId'),
            user_id: c.get('principal')?.userId ?? null,
          };
          if (logger.request) logger.request(line);
          else logger.info('request completed', { ...line });
        }
      }
    }
  };
}

function routeLabel(c: Context<Env>): string {
  const path = c.req.path;
  if (NAMED_PATHS.has(path)) return path;
  // An API request refused before its action was known (credentials, rate limit, body, envelope).
  if (path === '/v1' || path.startsWith('/v1/')) return '/v1';
  return 'other';
}
