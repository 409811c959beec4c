import { z } from 'zod';

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

const intFrom = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? String(fallback) : v))
    .pipe(z.coerce.number<string>().int().min(min).max(max));

const flag = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? String(fallback) : v.trim().toLowerCase()))
    .pipe(z.enum(['true', 'false', '1', '0'], { message: 'must be true or false' }))
    .transform((v) => v === 'true' || v === '1');

/** `goals.generate` calls per user and minute unless GENERATE_RATE_LIMIT_PER_MINUTE says otherwise. */
export const GENERATE_RATE_LIMIT_DEFAULT = 10;

const envSchema = z.object({
  PORT: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? '8787' : v))
    .pipe(z.coerce.number<string>().int('must be a port number from 1 to 65535').min(1, 'must be a port number from 1 to 65535').max(65535, 'must be a port number from 1 to 65535')),
  HOST: z.string().default('0.0.0.0'),
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  DATA_DIR: z.string().default('./.data'),
  DATABASE_POOL_MAX: intFrom(10, 1),
  MAX_ACTIVE_GOALS: intFrom(3, 0),
  BODY_LIMIT_BYTES: intFrom(1024 * 1024, 1024),
  RATE_LIMIT_PER_MINUTE: intFrom(60, 1),
  RATE_LIMIT_STORE: z.enum(['memory', 'postgres', 'redis']).optional(),
  REDIS_URL: optionalString.pipe(z.url({ protocol: /^rediss?$/ }).optional()),
  KEY_CACHE_TTL_SECONDS: intFrom(30, 0),
  JWT_SECRET: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  JWT_JWKS_URL: optionalString.pipe(z.url().optional()),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  SERVICE_KEY: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  STATEMENT_TIMEOUT_MS: intFrom(15_000, 0),
  // 0 turns the deadline off: for a server that takes one connection (the embedded database served over a socket).
  DB_UNAVAILABLE_TIMEOUT_MS: intFrom(1000, 0, 60_000).refine((v) => v === 0 || v >= 100, 'must be 0 (off) or between 100 and 60000'),
  SHUTDOWN_TIMEOUT_MS: intFrom(10_000, 0),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  ACCESS_LOG_SAMPLE_RATE: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? '1' : v))
    .pipe(z.coerce.number<string>().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1')),
  METRICS_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  AI_PROVIDER: z.enum(['offline', 'openai'], { message: 'must be "offline" or "openai"' }).default('offline'),
  OPENAI_BASE_URL: optionalString.pipe(z.url({ protocol: /^https?$/, message: 'must be an http(s) URL, e.g. http://localhost:11434/v1' }).optional()),
  OPENAI_API_KEY: optionalString,
  AI_MODEL: optionalString.pipe(z.string().max(200).optional()),
  AI_TIMEOUT_MS: intFrom(30_000, 1),
  GENERATE_RATE_LIMIT_PER_MINUTE: intFrom(GENERATE_RATE_LIMIT_DEFAULT, 1),
  WEBHOOK_TIMEOUT_MS: intFrom(10_000, 1, 300_000),
  WEBHOOK_BACKOFF_MS: intFrom(10_000, 1, 86_400_000),
  WEBHOOK_MAX_ATTEMPTS: intFrom(8, 1, 30),
  WEBHOOK_ALLOW_PRIVATE_URLS: flag(false),
  WORKER: flag(true),
  WORKER_POLL_MS: intFrom(1000, 10, 60_000),
});

export type Config = Omit<z.output<typeof envSchema>, 'RATE_LIMIT_STORE'> & {
  RATE_LIMIT_STORE: 'memory' | 'postgres' | 'redis';
};

/** Thrown when the environment does not describe a runnable server; one line per bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses the environment once. The rate-limit store defaults to the most shared one available:
 * Redis when `REDIS_URL` is set, Postgres when `DATABASE_URL` is (several processes may share it),
 * memory for the embedded database (which only one process can open).
 *
 * @example const config = loadConfig(process.env);
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const store = c.RATE_LIMIT_STORE ?? (c.REDIS_URL ? 'redis' : c.DATABASE_URL ? 'postgres' : 'memory');
  if (store === 'redis' && !c.REDIS_URL) {
    throw new ConfigError('Invalid configuration:\n  RATE_LIMIT_STORE: "redis" needs REDIS_URL');
  }
  if (c.JWT_SECRET && c.JWT_JWKS_URL) {
    // One kind of session token: with both, the secret would win and every token of the key set be refused.
    throw new ConfigError('Invalid configuration:\n  JWT_SECRET, JWT_JWKS_URL: set one of them (HS256 tokens, or a key set), not both');
  }
  if (c.AI_PROVIDER === 'openai') {
    const missing = [
      !c.OPENAI_BASE_URL &&
        '  OPENAI_BASE_URL: required with AI_PROVIDER=openai (https://api.openai.com/v1, or a local server such as http://localhost:11434/v1)',
      !c.AI_MODEL && '  AI_MODEL: required with AI_PROVIDER=openai (the model name the server knows, e.g. gpt-4o-mini or llama3.1)',
    ].filter(Boolean);
    if (missing.length > 0) throw new ConfigError(`Invalid configuration:\n${missing.join('\n')}`);
  }
  return { ...c, RATE_LIMIT_STORE: store };
}

/** The WEBHOOK_* configuration, as the worker and the webhooks actions take it (`WebhookSettings`). */
export function webhookSettings(config: Config) {
  return {
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    backoffMs: config.WEBHOOK_BACKOFF_MS,
    maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
    allowPrivateUrls: config.WEBHOOK_ALLOW_PRIVATE_URLS,
  };
}
