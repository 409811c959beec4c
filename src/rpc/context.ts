import type { AiProvider } from '../ai/provider.ts';
import type { Db } from '../db/client.ts';
import type { Role } from '../db/schema.ts';

/** Who is calling, as established by authentication. */
export interface Principal {
  userId: string;
  role: Role;
  /** What the rate limit counts: one API key, one session user, one service-acting user. */
  credentialId: string;
  kind: 'api_key' | 'session' | 'service';
  /** The API key's id when the caller used one. */
  apiKeyId?: string;
}

/**
 * Whose records an action may touch. `ownerId: null` is admin mode across every account; `admin`
 * makes answers carry `owner`.
 */
export interface Scope {
  ownerId: string | null;
  /** The owner of records the action creates. */
  actingUserId: string;
  admin: boolean;
}

/** How webhooks are delivered: the WEBHOOK_* configuration (SPEC §4 webhooks). */
export interface WebhookSettings {
  /** An attempt without a complete answer within this is a failure. */
  timeoutMs: number;
  /** The wait after the first failed attempt; it doubles after each. */
  backoffMs: number;
  /** Attempts before a delivery is `failed`. */
  maxAttempts: number;
  /** Lets webhook URLs name loopback and private addresses (tests, private deployments). */
  allowPrivateUrls: boolean;
}

export interface Services {
  /** Forget a revoked key in this process at once (other processes: within the cache TTL). */
  forgetApiKey(keyHash: string): void;
  /** The configured generation provider (`AI_PROVIDER`). */
  ai: AiProvider;
  webhooks: WebhookSettings;
}

/** A progress event of a streaming action: `stage` names the step, the rest is the step's own. */
export interface ProgressEvent {
  stage: string;
  [key: string]: unknown;
}

export interface Context {
  db: Db;
  principal: Principal;
  scope: Scope;
  maxActiveGoals: number;
  services: Services;
  /** Aborted when the caller went away; pass it to anything slow (AI providers). */
  signal: AbortSignal;
  /** Reports progress; a no-op unless the transport streams. */
  progress: (event: ProgressEvent) => void;
  /** The transport delivers progress (SSE), so streaming work upstream is worth it. */
  streaming: boolean;
}

/**
 * Builds the handler context without any HTTP: tests call handlers with it directly.
 *
 * @example const ctx = createContext({ db, principal, maxActiveGoals: 3, services: { ai, forgetApiKey } });
 */
export function createContext(options: {
  db: Db;
  principal: Principal;
  /** Whose records the call may touch; the principal's own when not given. */
  scope?: Scope;
  maxActiveGoals: number;
  services: Services;
  signal?: AbortSignal;
  progress?: (event: ProgressEvent) => void;
}): Context {
  return new HandlerContext(options);
}

const noProgress = () => {};

/**
 * `signal` is made when first asked for when the transport gave none: only streaming actions use it, and an
 * AbortController per request is a measurable part of a plain read. A class, because an object literal with a
 * getter is built on a slow path (docs/performance.md).
 */
class HandlerContext implements Context {
  readonly db: Db;
  readonly principal: Principal;
  readonly scope: Scope;
  readonly maxActiveGoals: number;
  readonly services: Services;
  readonly progress: (event: ProgressEvent) => void;
  readonly streaming: boolean;
  #signal: AbortSignal | undefined;

  constructor(options: Parameters<typeof createContext>[0]) {
    this.db = options.db;
    this.principal = options.principal;
    this.scope = options.scope ?? { ownerId: options.principal.userId, actingUserId: options.principal.userId, admin: false };
    this.maxActiveGoals = options.maxActiveGoals;
    this.services = options.services;
    this.progress = options.progress ?? noProgress;
    this.streaming = options.progress !== undefined;
    this.#signal = options.signal;
  }

  get signal(): AbortSignal {
    return (this.#signal ??= new AbortController().signal);
  }
}
