import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import { sessionsInUse } from '../src/db/dialect.ts';
import { createLogger, type LogLevel } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { appServices, createHarness, type Harness } from './support/harness.ts';
import { freePort, SERVER_ARGS, spawnNode, stopAll } from './support/processes.ts';
import { startReceiver } from './support/receiver.ts';

// The access log (one pino line per request, no secret in any line) and GET /metrics (counts after known traffic,
// the token), in-process on the run's database; then a real server process on its own embedded database, whose
// whole stderr is searched for every secret the run handled, and whose worker's deliveries show in /metrics.

/** A logger writing pino lines into an array. */
function capture(level: LogLevel = 'debug') {
  const lines: Record<string, any>[] = [];
  let raw = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      raw += String(chunk);
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger(level, stream), lines, raw: () => raw };
}

const accessLines = (lines: Record<string, any>[]) => lines.filter((l) => l.msg === 'request completed');

/** `name{labels} value` of a Prometheus text exposition, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (want.every(([k, v]) => have[k] === v) && Object.keys(have).length === want.length) return Number(m[3]);
  }
  return undefined;
}

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h.close();
  await stopAll();
});

function appWith(options: { logger: ReturnType<typeof createLogger>; metricsToken?: string; sampleRate?: number; perMinute?: number; db?: Harness['db'] }) {
  const metrics = createMetrics({
    pool: () => ({ max: 1, inUse: 0, waiting: 0 }),
  });
  const app = createApp({
    db: options.db ?? h.db,
    authenticator: h.authenticator,
    rateLimiter: createRateLimiter({ perMinute: options.perMinute ?? 1000, store: 'memory' }),
    logger: options.logger,
    maxActiveGoals: 3,
    bodyLimitBytes: 1024 * 1024,
    ...appServices(),
    metrics,
    metricsToken: options.metricsToken,
    accessLogSampleRate: options.sampleRate,
  });
  const send = async (path: string, init: { method?: string; key?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...init.headers };
    if (init.key) headers.authorization = `Bearer ${init.key}`;
    const res = await app.request(path, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as any, id: res.headers.get('x-request-id')! };
  };
  /** The exposition text, as a scraper with `token` gets it. */
  const scrape = async (token: string) => (await app.request('/metrics', { headers: { authorization: `Bearer ${token}` } })).text();
  return { app, metrics, send, scrape };
}

describe('the access log', () => {
  it('writes one pino line per request with method, path, resource, action, status, duration, request and user id', async () => {
    const { logger, lines } = capture('info');
    const { send } = appWith({ logger });
    const alice = await h.user();
    const created = await send('/v1', { key: alice.key, body: { resource: 'goals', action: 'create', data: { name: 'Logged' } } });
    const got = await send(`/v1/goals/${created.body.data.id}`, { key: alice.key });
    const missing = await send('/v1', { key: alice.key, body: { resource: 'goals', action: 'get', id: randomUUID() } });
    const unknownKey = await send('/v1/goals', { key: `gp_live_${randomBytes(32).toString('base64url')}` });
    const badResource = await send('/v1', { key: alice.key, body: { resource: 'nope', action: 'list' } });
    const health = await send('/healthz');
    expect([created, got, missing, unknownKey, badResource, health].map((r) => r.status)).toEqual([201, 200, 404, 401, 400, 200]);

    const access = accessLines(lines);
    expect(access).toHaveLength(6);
    const byId = (id: string) => access.filter((l) => l.request_id === id);
    const base = { level: 30, time: expect.any(Number), pid: process.pid, msg: 'request completed', duration_ms: expect.any(Number) };
    expect(byId(created.id)).toEqual([
      { ...base, method: 'POST', path: '/v1', resource: 'goals', action: 'create', status: 201, request_id: created.id, user_id: alice.id },
    ]);
    expect(byId(got.id)).toEqual([
      { ...base, method: 'GET', path: `/v1/goals/${created.body.data.id}`, resource: 'goals', action: 'get', status: 200, request_id: got.id, user_id: alice.id },
    ]);
    expect(byId(missing.id)).toEqual([{ ...base, method: 'POST', path: '/v1', resource: 'goals', action: 'get', status: 404, request_id: missing.id, user_id: alice.id }]);
    // Refused before a principal or an action was known.
    expect(byId(unknownKey.id)).toEqual([{ ...base, method: 'GET', path: '/v1/goals', resource: '-', action: '/v1', status: 401, request_id: unknownKey.id, user_id: null }]);
    expect(byId(badResource.id)).toEqual([{ ...base, method: 'POST', path: '/v1', resource: '-', action: '/v1', status: 400, request_id: badResource.id, user_id: alice.id }]);
    expect(byId(health.id)).toEqual([{ ...base, method: 'GET', path: '/healthz', resource: '-', action: '/healthz', status: 200, request_id: health.id, user_id: null }]);
    for (const line of access) expect(line.duration_ms).toBeGreaterThan(0);
  });

  it('logs a 5xx with its stack and request id, besides its access line', async () => {
    const { logger, lines } = capture('info');
    const { send } = appWith({ logger, db: h.db.withSchema('nowhere') });
    const alice = await h.user();
    const failed = await send('/v1', { key: alice.key, body: { resource: 'agents', action: 'list' } });
    expect(failed.status).toBe(500);
    const mine = lines.filter((l) => l.request_id === failed.id);
    expect(mine.map((l) => [l.level, l.msg])).toEqual([
      [50, 'request failed'],
      [30, 'request completed'],
    ]);
    expect(mine[0]).toMatchObject({ code: 'INTERNAL_ERROR', stack: expect.stringMatching(/nowhere[\s\S]*\n\s+at /) });
    expect(mine[1]).toMatchObject({ resource: 'agents', action: 'list', status: 500 });
  });

  it('never writes a key, token, webhook secret or Authorization header, at debug level either', async () => {
    const { logger, raw } = capture('debug');
    const { send } = appWith({ logger });
    const alice = await h.user();
    const apiKey = await send('/v1', { key: alice.key, body: { resource: 'api-keys', action: 'create', data: { name: 'ci' } } });
    const hook = await send('/v1', {
      headers: { 'x-api-key': alice.key },
      body: { resource: 'webhooks', action: 'create', data: { url: 'https://example.com/hook' } },
    });
    const fake = `gp_live_${randomBytes(32).toString('base64url')}`;
    await send('/v1/goals', { headers: { authorization: `Bearer ${fake}` } });
    await send('/v1/goals', { headers: { authorization: `Bearer not-a-key-${fake}` } });
    expect(apiKey.status).toBe(201);
    expect(hook.status).toBe(201);
    const secrets = [alice.key, apiKey.body.data.key, hook.body.data.secret, fake];
    for (const secret of secrets) expect(secret).toMatch(/^(gp_live_|whsec_)/);
    const log = raw();
    expect(accessLines(log.split('\n').filter(Boolean).map((l) => JSON.parse(l)))).toHaveLength(4);
    for (const secret of secrets) expect(log).not.toContain(secret);
    expect(log).not.toMatch(/authorization|bearer|x-api-key/i);
  });

  it('redacts fields named like credentials, should a call site pass one', () => {
    const { logger, lines } = capture('info');
    logger.info('careless', { key: 'gp_live_x', token: 't', nested: { authorization: 'Bearer y', secret: 'whsec_z', kept: 1 } });
    expect(lines[0]).toMatchObject({ key: '[redacted]', token: '[redacted]', nested: { authorization: '[redacted]', secret: '[redacted]', kept: 1 } });
  });

  it('samples: ACCESS_LOG_SAMPLE_RATE=0 writes no access line, but still logs 5xx and counts everything', async () => {
    const { logger, lines } = capture('info');
    const { send, metrics } = appWith({ logger, sampleRate: 0 });
    const alice = await h.user();
    for (let i = 0; i < 3; i++) expect((await send('/v1', { key: alice.key, body: { resource: 'goals', action: 'list' } })).status).toBe(200);
    expect(accessLines(lines)).toHaveLength(0);
    expect(sample(await metrics.registry.metrics(), 'goalpost_http_requests_total', { resource: 'goals', action: 'list', status: '200' })).toBe(3);
    const broken = appWith({ logger, sampleRate: 0, db: h.db.withSchema('nowhere') });
    const failed = await broken.send('/v1', { key: alice.key, body: { resource: 'agents', action: 'list' } });
    expect(accessLines(lines).map((l) => l.request_id)).toEqual([failed.id]);
  });
});

describe('GET /metrics', () => {
  const TOKEN = 'metrics-token-0123456789';

  it('counts requests by resource, action and status, their durations and the 429s, behind METRICS_TOKEN', async () => {
    const { logger } = capture('silent');
    const { send, scrape: scrapeWith } = appWith({ logger, metricsToken: TOKEN, perMinute: 4 });
    const alice = await h.user();
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) statuses.push((await send('/v1', { key: alice.key, body: { resource: 'goals', action: 'create', data: { name: `M${i}` } } })).status);
    statuses.push((await send(`/v1/goals/${randomUUID()}`, { key: alice.key })).status);
    statuses.push((await send('/v1', { key: alice.key, body: { resource: 'agents', action: 'list' } })).status);
    // The fifth and sixth requests of the minute: over the limit of 4.
    for (let i = 0; i < 2; i++) statuses.push((await send('/v1', { key: alice.key, body: { resource: 'agents', action: 'list' } })).status);
    expect(statuses).toEqual([201, 201, 404, 200, 429, 429]);

    expect((await send('/metrics')).status).toBe(401);
    expect((await send('/metrics', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const scrape = await scrapeWith(TOKEN);
    const count = (labels: Record<string, string>) => sample(scrape, 'goalpost_http_requests_total', labels);
    expect(count({ resource: 'goals', action: 'create', status: '201' })).toBe(2);
    expect(count({ resource: 'goals', action: 'get', status: '404' })).toBe(1);
    expect(count({ resource: 'agents', action: 'list', status: '200' })).toBe(1);
    // Refused at admission, before the action is known.
    expect(count({ resource: '-', action: '/v1', status: '429' })).toBe(2);
    expect(count({ resource: '-', action: '/metrics', status: '401' })).toBe(2);
    // This scrape is counted once it has answered: in the next one.
    expect(count({ resource: '-', action: '/metrics', status: '200' })).toBeUndefined();
    expect(sample(await scrapeWith(TOKEN), 'goalpost_http_requests_total', { resource: '-', action: '/metrics', status: '200' })).toBe(1);
    expect(sample(scrape, 'goalpost_rate_limit_rejections_total', { resource: '-', action: '/v1' })).toBe(2);
    expect(sample(scrape, 'goalpost_http_request_duration_seconds_count', { resource: 'goals', action: 'create', status: '201' })).toBe(2);
    expect(sample(scrape, 'goalpost_http_request_duration_seconds_bucket', { resource: 'goals', action: 'create', status: '201', le: '+Inf' })).toBe(2);
    expect(sample(scrape, 'goalpost_http_request_duration_seconds_sum', { resource: 'goals', action: 'create', status: '201' })).toBeGreaterThan(0);
    // The scrape itself is in flight while it renders.
    expect(sample(scrape, 'goalpost_http_requests_in_flight')).toBe(1);
    expect(sample(scrape, 'goalpost_db_pool_max')).toBe(1);
  });

  it('without METRICS_TOKEN answers loopback callers only (403 to a caller it cannot place)', async () => {
    const { logger } = capture('silent');
    const { send } = appWith({ logger });
    const res = await send('/metrics');
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('METRICS_TOKEN') });
  });

  it('reads the pool gauges: in use, and waiting beyond the pool size', async () => {
    const sql = h.sql;
    const max = sql.options.max;
    const metrics = createMetrics({
      pool: () => {
        const running = sessionsInUse(sql);
        return { max, inUse: Math.min(running, max), waiting: Math.max(0, running - max) };
      },
    });
    const before = sessionsInUse(sql);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // `max` transactions hold every connection; one more query waits for one of them.
    const holders = Array.from({ length: max }, () => h.db.transaction().execute(() => gate));
    const waiting = h.db.selectFrom('users').select('id').limit(1).execute();
    await new Promise((r) => setTimeout(r, 50));
    const scrape = await metrics.registry.metrics();
    open();
    await Promise.all([...holders, waiting]);
    // Other tests of this file share the pool only between their own awaits: none runs now.
    expect(before).toBe(0);
    expect(sample(scrape, 'goalpost_db_pool_max')).toBe(max);
    expect(sample(scrape, 'goalpost_db_pool_in_use')).toBe(max);
    expect(sample(scrape, 'goalpost_db_pool_waiting')).toBe(1);
    expect(sessionsInUse(sql)).toBe(0);
  });
});

describe('a server process', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('logs every request as JSON with no secret anywhere on stderr, and scrapes its worker\'s deliveries and its queue', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'goalpost-observe-'));
    dirs.push(dataDir);
    const receiver = await startReceiver();
    const port = await freePort();
    const server = spawnNode(SERVER_ARGS, {
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
      WORKER_POLL_MS: '100',
    });
    await server.waitFor(/curl -s .*\n.*-d '.*'/, 90_000);
    const key = server.stdout().match(/^\s+(gp_live_[A-Za-z0-9_-]{32,})\s*$/m)![1]!;
    const base = `http://127.0.0.1:${port}`;
    const ids: string[] = [];
    const call = async (body: unknown, headers: Record<string, string> = { authorization: `Bearer ${key}` }) => {
      const id = `obs-${randomUUID()}`;
      ids.push(id);
      const res = await fetch(`${base}/v1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const newKey = await call({ resource: 'api-keys', action: 'create', data: { name: 'second' } });
    const hook = await call({ resource: 'webhooks', action: 'create', data: { url: receiver.url(), events: ['action_item.completed'] } });
    const item = await call({ resource: 'action-items', action: 'create', data: { description: 'Ship it' } }, { 'x-api-key': newKey.body.data.key });
    const done = await call({ resource: 'action-items', action: 'update', id: item.body.data.id, data: { completed: true } });
    const fake = `gp_live_${randomBytes(32).toString('base64url')}`;
    const refused = await call({ resource: 'goals', action: 'list' }, { authorization: `Bearer ${fake}` });
    expect([newKey, hook, item, done, refused].map((r) => r.status)).toEqual([201, 201, 201, 200, 401]);
    await receiver.waitFor(1, { timeoutMs: 20_000 });

    // The worker records the outcome after the receiver answered: poll until the counter shows it.
    let scrape = '';
    for (let i = 0; i < 50; i++) {
      scrape = await (await fetch(`${base}/metrics`)).text();
      if (sample(scrape, 'goalpost_webhook_delivery_attempts_total', { outcome: 'delivered' }) === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sample(scrape, 'goalpost_webhook_delivery_attempts_total', { outcome: 'delivered' })).toBe(1);
    expect(sample(scrape, 'goalpost_webhook_delivery_attempts_total', { outcome: 'failed' })).toBe(0);
    expect(sample(scrape, 'goalpost_job_queue_depth', { queue: 'webhook_deliveries' })).toBe(0);
    expect(sample(scrape, 'goalpost_job_queue_depth', { queue: 'reminders_due' })).toBe(0);
    expect(sample(scrape, 'goalpost_http_requests_total', { resource: 'action-items', action: 'update', status: '200' })).toBe(1);
    expect(sample(scrape, 'goalpost_http_requests_total', { resource: 'api-keys', action: 'create', status: '201' })).toBe(1);
    expect(sample(scrape, 'goalpost_db_pool_max')).toBe(1);
    expect(sample(scrape, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(sample(scrape, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);

    expect(await server.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const stderr = server.stderr();
    const lines = stderr.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, any>);
    expect(lines[0]).toMatchObject({ level: 30, msg: 'listening', port, database: 'embedded' });
    expect(lines.slice(-2).map((l) => l.msg)).toEqual(['shutting down', 'stopped']);
    for (const id of ids) expect(accessLines(lines).filter((l) => l.request_id === id)).toHaveLength(1);
    for (const secret of [key, newKey.body.data.key, hook.body.data.secret, fake]) expect(stderr).not.toContain(secret);
    expect(stderr).not.toMatch(/authorization|bearer|x-api-key/i);
  }, 180_000);
});
