import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the database pool holds right now (read at each scrape). */
export interface PoolUsage {
  /** Connections the pool may open (DATABASE_POOL_MAX; 1 for the embedded database). */
  max: number;
  /** Queries and transactions running on a connection. */
  inUse: number;
  /** Queries and transactions beyond `max` at once: they wait for (or queue behind) a busy connection. */
  waiting: number;
}

/** Jobs waiting in the Postgres queue (read at each scrape). */
export interface QueueDepth {
  /** Webhook deliveries pending: their first attempt or a retry. */
  deliveries: number;
  /** Action-item reminders whose time has come and that no worker has turned into events yet. */
  reminders: number;
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'failed' | 'unrecorded';

export interface MetricsSources {
  pool?: () => PoolUsage;
  queue?: () => Promise<QueueDepth>;
  /** Also the Node process metrics of prom-client (CPU, memory, event loop, GC); the server wants them, tests may not. */
  processMetrics?: boolean;
}

/**
 * The Prometheus metrics of one server (SPEC §5), in a registry of its own so that several apps in one process
 * (the tests) do not share counts. `GET /metrics` renders `registry`.
 *
 * @example const metrics = createMetrics({ pool: () => poolUsage(sql), processMetrics: true });
 *          metrics.requests.inc({ resource: 'goals', action: 'get', status: '200' });
 */
export function createMetrics(sources: MetricsSources = {}) {
  const registry = new Registry();
  const labelNames = ['resource', 'action', 'status'] as const;
  const metrics = {
    registry,
    requests: new Counter({
      name: 'goalpost_http_requests_total',
      help: 'HTTP requests answered, by resource, action and status',
      labelNames,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'goalpost_http_request_duration_seconds',
      help: 'Time from the request to its answer (for SSE: to the start of the stream), by resource, action and status',
      labelNames,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    inFlight: new Gauge({ name: 'goalpost_http_requests_in_flight', help: 'HTTP requests being served', registers: [registry] }),
    rateLimited: new Counter({
      name: 'goalpost_rate_limit_rejections_total',
      help: 'Requests refused with 429 RATE_LIMIT_EXCEEDED, by resource and action',
      labelNames: ['resource', 'action'] as const,
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'goalpost_webhook_delivery_attempts_total',
      help: 'Webhook delivery attempts made by this process\'s worker, by outcome (delivered, retry scheduled, failed for good, outcome not recorded)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
  for (const outcome of ['delivered', 'retry', 'failed', 'unrecorded'] satisfies DeliveryOutcome[]) metrics.deliveries.inc({ outcome }, 0);

  const pool = sources.pool;
  if (pool) {
    const gauge = (name: string, help: string, read: (usage: PoolUsage) => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read(pool()));
        },
      });
    gauge('goalpost_db_pool_max', 'Connections the database pool may open', (u) => u.max);
    gauge('goalpost_db_pool_in_use', 'Queries and transactions running on a pool connection', (u) => u.inUse);
    gauge('goalpost_db_pool_waiting', 'Queries and transactions waiting for a busy pool connection', (u) => u.waiting);
  }
  const queue = sources.queue;
  if (queue) {
    let last: QueueDepth | undefined;
    new Gauge({
      name: 'goalpost_job_queue_depth',
      help: 'Jobs waiting in the Postgres queue: pending webhook deliveries, reminders due (absent while the database does not answer)',
      labelNames: ['queue'] as const,
      registers: [registry],
      async collect() {
        // A scrape must answer even when the database does not: the gauge is then left out, not stale.
        last = await within(queue(), QUEUE_READ_TIMEOUT_MS).catch(() => undefined);
        this.reset();
        if (!last) return;
        this.set({ queue: 'webhook_deliveries' }, last.deliveries);
        this.set({ queue: 'reminders_due' }, last.reminders);
      },
    });
  }
  if (sources.processMetrics) collectDefaultMetrics({ register: registry });
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** How long a scrape waits for the queue's depth before leaving it out. */
const QUEUE_READ_TIMEOUT_MS = 1000;

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]);
}
