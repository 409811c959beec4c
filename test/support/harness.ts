import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { createOfflineProvider } from '../../src/ai/offline.ts';
import type { AiProvider } from '../../src/ai/provider.ts';
import { createApp } from '../../src/app.ts';
import { createAuthenticator } from '../../src/auth/authenticate.ts';
import { createRateLimiter } from '../../src/auth/rate-limit.ts';
import { openDatabase } from '../../src/db/client.ts';
import type { Role } from '../../src/db/schema.ts';
import { createLogger } from '../../src/logger.ts';
import { listen } from '../../src/server.ts';
import type { Services, WebhookSettings } from '../../src/rpc/context.ts';
import { createUserWithKey } from '../../src/resources/users/queries.ts';
import { createWebSocketHub } from '../../src/http/websocket.ts';

export const TEST_JWT_SECRET = 'test-jwt-secret-that-is-at-least-32-characters';
export const TEST_SERVICE_KEY = 'test-service-key-that-is-at-least-32-characters';

export const databaseUrl = () => inject('databaseUrl');
export const databaseKind = () => inject('databaseKind');
/** Concurrency tests mean something only where requests really run in parallel. */
export const onRealPostgres = () => inject('databaseKind') === 'postgres';

/**
 * What `createApp` needs beside the database, auth and HTTP limits, as a test wants it by default: the offline
 * provider and a generation limit no test reaches unless it asks for one.
 *
 * @example createApp({ db, authenticator, …, ...appServices({ ai: fake }) })
 */
/** Webhook settings for tests: quick timeouts and retries, loopback receivers allowed. */
export function testWebhookSettings(overrides: Partial<WebhookSettings> = {}): WebhookSettings {
  return { timeoutMs: 2000, backoffMs: 100, maxAttempts: 3, allowPrivateUrls: true, ...overrides };
}

export function appServices(options: { ai?: AiProvider; generateRateLimitPerMinute?: number; webhooks?: Partial<WebhookSettings> } = {}) {
  return {
    // Every answer a test sees is validated against its action's output schema: a drift fails the test.
    checkAnswers: true,
    ai: options.ai ?? createOfflineProvider(),
    webhooks: testWebhookSettings(options.webhooks),
    generateRateLimiter: createRateLimiter({
      perMinute: options.generateRateLimitPerMinute ?? 1_000_000,
      store: 'memory',
      keyPrefix: 'rl-generate',
      what: 'generations',
    }),
  };
}

/** The handler context's services, for tests that call handlers or queries without HTTP. */
export function testServices(): Services {
  return { ai: createOfflineProvider(), forgetApiKey: () => {}, webhooks: testWebhookSettings() };
}

export interface Answer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface HarnessOptions {
  rateLimitPerMinute?: number;
  maxActiveGoals?: number;
  bodyLimitBytes?: number;
  keyCacheTtlMs?: number;
  /** DB_UNAVAILABLE_TIMEOUT_MS (default 1000; always off on the embedded database). */
  unavailableTimeoutMs?: number;
  /** Override the database URL (a dead port, a wrong search_path…). */
  databaseUrl?: string;
  /** The provider of goals.generate (default: the offline one). */
  ai?: AiProvider;
  /** goals.generate calls per user and minute (default: no practical limit). */
  generateRateLimitPerMinute?: number;
  /** How webhooks are sent and which URLs are accepted (default: testWebhookSettings()). */
  webhooks?: Partial<WebhookSettings>;
}

/**
 * The app in-process on the run's database, with helpers. Each test makes its own users, so tests
 * never see each other's records.
 *
 * @example const h = await createHarness(); const alice = await h.user();
 *          const res = await h.invoke(alice.key, { resource: 'goals', action: 'list' });
 */
export async function createHarness(options: HarnessOptions = {}) {
  const database = await openDatabase({
    databaseUrl: options.databaseUrl ?? databaseUrl(),
    poolMax: databaseKind() === 'embedded' ? 1 : 10,
    // The embedded database takes one connection: no probe beside it.
    unavailableTimeoutMs: databaseKind() === 'embedded' ? 0 : options.unavailableTimeoutMs,
  });
  const authenticator = createAuthenticator({
    db: database.db,
    cacheTtlMs: options.keyCacheTtlMs ?? 30_000,
    jwtSecret: TEST_JWT_SECRET,
    serviceKey: TEST_SERVICE_KEY,
  });
  const rateLimiter = createRateLimiter({ perMinute: options.rateLimitPerMinute ?? 1_000_000, store: 'memory' });
  const services = appServices({ ai: options.ai, generateRateLimitPerMinute: options.generateRateLimitPerMinute, webhooks: options.webhooks });
  const webSockets = createWebSocketHub();
  const bodyLimitBytes = options.bodyLimitBytes ?? 1024 * 1024;
  const app = createApp({
    db: database.db,
    availability: database.availability,
    authenticator,
    rateLimiter,
    logger: createLogger('silent'),
    maxActiveGoals: options.maxActiveGoals ?? 3,
    bodyLimitBytes,
    webSockets,
    ...services,
  });
  const listening: { close(): Promise<void> }[] = [];

  async function request(path: string, init: RequestInit & { key?: string } = {}): Promise<Answer> {
    const headers = new Headers(init.headers);
    if (init.key) headers.set('authorization', `Bearer ${init.key}`);
    if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
    const res = await app.request(path, { ...init, headers });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body, headers: res.headers };
  }

  return {
    app,
    /** The webhook settings the app's actions use; a test may change them (the SSRF guard's flag) while it runs. */
    webhookSettings: services.webhooks,
    db: database.db,
    sql: database.sql,
    authenticator,
    request,
    /** POST /v1 with the envelope. */
    invoke(key: string | undefined, envelope: unknown, headers: Record<string, string> = {}) {
      return request('/v1', { method: 'POST', key, headers, body: JSON.stringify(envelope) });
    },
    webSockets,
    /**
     * The app on a real listening server (HTTP and WebSocket) on a free port of 127.0.0.1; closed with
     * the harness.
     */
    async listen() {
      const { server, port } = await listen(app, { port: 0, hostname: '127.0.0.1', maxFrameBytes: bodyLimitBytes });
      const handle = {
        port,
        url: `http://127.0.0.1:${port}`,
        wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
        async close() {
          await webSockets.drain(0);
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        },
      };
      listening.push(handle);
      return handle;
    },
    /** A new user with a fresh API key. */
    async user(role: Role = 'standard_user', name?: string) {
      const { user, key } = await createUserWithKey(database.db, {
        email: `${role}-${randomUUID()}@test.goalpost`,
        name: name ?? null,
        role,
      });
      return { ...user, key };
    },
    async close() {
      for (const server of listening) await server.close();
      await rateLimiter.close();
      await database.close();
    },
  };
}

export type Harness = Awaited<ReturnType<typeof createHarness>>;

/** Asserts a success envelope with `status` and returns its `data`. */
export function ok(answer: Answer, status = 200): any {
  if (answer.status !== status || answer.body?.success !== true) {
    throw new Error(`expected ${status} success, got ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return answer.body.data;
}

/** Asserts the error envelope's shape and returns it. */
export function expectError(answer: Answer, code: string, status: number) {
  const body = answer.body as { success: boolean; error: { code: string; status: number; message: string; request_id: string } };
  if (answer.status !== status || body?.success !== false || body.error?.code !== code || body.error.status !== status) {
    throw new Error(`expected ${status} ${code}, got ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  if (typeof body.error.message !== 'string' || !body.error.request_id) {
    throw new Error(`error envelope lacks message or request_id: ${JSON.stringify(answer.body)}`);
  }
  if (answer.headers.get('x-request-id') !== body.error.request_id) {
    throw new Error('X-Request-Id header and error.request_id differ');
  }
  return body.error;
}
