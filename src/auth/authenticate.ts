import { sql } from 'kysely';
import { jwtVerify, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { Db } from '../db/client.ts';
import type { Role } from '../db/schema.ts';
import type { Principal } from '../rpc/context.ts';
import { AppError } from '../rpc/errors.ts';
import { KEY_SET_ALGORITHMS, remoteKeySet, type KeySetTiming } from './jwks.ts';
import { API_KEY_PREFIX, hashApiKey, matchesSecret } from './keys.ts';

export interface AuthOptions {
  db: Db;
  /** How long a verified key or user is trusted without asking the database again. */
  cacheTtlMs: number;
  jwtSecret?: string;
  jwksUrl?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  serviceKey?: string;
  /** Bound on cached entries; the oldest go first. */
  cacheMax?: number;
  /** How `jwksUrl`'s key set is kept and fetched again (KEY_SET_TIMING when not given; tests shorten it). */
  keySetTiming?: KeySetTiming;
}

interface CachedKey {
  principal: Principal;
  expiresAt: number;
}

interface CachedUser {
  role: Role;
  expiresAt: number;
}

/** What an authenticator keeps between requests: its caches, and the `last_used_at` values not yet written. */
interface AuthState {
  options: AuthOptions;
  cacheMax: number;
  verifyJwt: ReturnType<typeof jwtVerifier>;
  /** SHA-256 of a verified API key → its principal. */
  keys: Map<string, CachedKey>;
  /**
   * SHA-256 → until when a key the database did not know (or knew revoked) is refused without asking it again:
   * a client retrying a revoked key in a loop, or a flood of made-up keys, costs no query per request. Apart
   * from `keys`, so refused keys never push verified ones out. A key is minted by us, never named by a client,
   * so one refused here cannot become valid within the TTL, short of a row restored by hand.
   */
  refused: Map<string, number>;
  users: Map<string, CachedUser>;
  /** API key id → when it was last used (epoch ms), until the next flush. */
  lastUsed: Map<string, number>;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const uuid = z.uuid();

/**
 * Turns credentials into a Principal. Verified API keys and users are cached for `cacheTtlMs`, so the
 * hot path costs no database round trip, and so are refused API keys; `last_used_at` is gathered in memory and written in one
 * statement per flush.
 *
 * @example const auth = createAuthenticator({ db, cacheTtlMs: 30_000 });
 *          const principal = await auth.authenticate(c.req.header('authorization'), ...);
 */
export function createAuthenticator(options: AuthOptions) {
  const state: AuthState = {
    options,
    cacheMax: options.cacheMax ?? 10_000,
    verifyJwt: jwtVerifier(options),
    keys: new Map(),
    refused: new Map(),
    users: new Map(),
    lastUsed: new Map(),
  };
  const isServiceKey = options.serviceKey ? matchesSecret(options.serviceKey) : () => false;

  return {
    /** Credentials from `Authorization: Bearer …` or `X-API-Key`, plus `x-user-id` for the service key. */
    async authenticate(headers: {
      authorization?: string;
      apiKey?: string;
      userId?: string;
    }): Promise<Principal> {
      const token = tokenOf(headers);
      if (isServiceKey(token)) return fromServiceKey(state, headers.userId);
      if (token.startsWith(API_KEY_PREFIX)) return fromApiKey(state, token);
      if (JWT_SHAPE.test(token)) return fromJwt(state, token);
      throw new AppError({ code: 'INVALID_KEY_PREFIX', message: `API keys start with "${API_KEY_PREFIX}"` });
    },

    /** Forget a key in this process (it was revoked here). */
    forgetApiKey(keyHash: string) {
      state.keys.delete(keyHash);
    },

    /** Writes the gathered `last_used_at` values in one statement; never moves one backwards. */
    async flushLastUsed(): Promise<void> {
      await writeLastUsed(state);
    },
  };
}

/** The token of `Authorization: Bearer …`, else of `X-API-Key`; UNAUTHORIZED when there is neither. */
function tokenOf(headers: { authorization?: string; apiKey?: string }): string {
  const bearer = headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  const token = bearer ?? headers.apiKey?.trim();
  if (!token) {
    throw new AppError({
      code: 'UNAUTHORIZED',
      message: headers.authorization
        ? 'Authorization must be "Bearer <token>"'
        : 'Authentication required: send Authorization: Bearer <key> or X-API-Key: <key>',
    });
  }
  return token;
}

async function fromApiKey(state: AuthState, token: string): Promise<Principal> {
  const { options, keys, refused } = state;
  const hash = hashApiKey(token);
  const now = Date.now();
  let cached = keys.get(hash);
  if (!cached && (refused.get(hash) ?? 0) > now) throw new AppError({ code: 'KEY_NOT_FOUND' });
  if (!cached || cached.expiresAt <= now) {
    const row = await options.db
      .selectFrom('api_keys')
      .innerJoin('users', 'users.id', 'api_keys.user_id')
      .select(['api_keys.id', 'api_keys.user_id', 'users.role'])
      .where('api_keys.key_hash', '=', hash)
      .where('api_keys.revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) {
      keys.delete(hash);
      if (options.cacheTtlMs > 0) remember(state, refused, hash, now + options.cacheTtlMs);
      throw new AppError({ code: 'KEY_NOT_FOUND' });
    }
    cached = {
      principal: { userId: row.user_id, role: row.role, kind: 'api_key', credentialId: `key:${row.id}`, apiKeyId: row.id },
      expiresAt: now + options.cacheTtlMs,
    };
    if (options.cacheTtlMs > 0) remember(state, keys, hash, cached);
  }
  state.lastUsed.set(cached.principal.apiKeyId!, now);
  return cached.principal;
}

async function fromJwt(state: AuthState, token: string): Promise<Principal> {
  if (!state.verifyJwt) {
    throw new AppError({ code: 'INVALID_TOKEN', message: 'Session tokens are not enabled on this server (JWT_SECRET or JWT_JWKS_URL)' });
  }
  let sub: unknown;
  try {
    sub = (await state.verifyJwt(token)).sub;
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new AppError({ code: 'INVALID_TOKEN', cause: error });
  }
  if (typeof sub !== 'string' || !uuid.safeParse(sub).success) {
    throw new AppError({ code: 'INVALID_TOKEN', message: 'The session token has no user id (sub) that is a UUID' });
  }
  // Canonical (lower case): the rate limit and the caches key on it, so one user is one budget.
  const userId = sub.toLowerCase();
  const role = await roleOf(state, userId);
  if (!role) throw new AppError({ code: 'INVALID_TOKEN', message: 'The session token names an unknown user' });
  return { userId, role, kind: 'session', credentialId: `user:${userId}` };
}

async function fromServiceKey(state: AuthState, userIdHeader: string | undefined): Promise<Principal> {
  if (!userIdHeader || !uuid.safeParse(userIdHeader).success) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'x-user-id: the service key needs the UUID of the user to act as',
      details: [{ path: ['headers', 'x-user-id'], message: 'must be a UUID', type: 'invalid_format' }],
    });
  }
  const userId = userIdHeader.toLowerCase();
  const role = await roleOf(state, userId);
  if (!role) throw new AppError({ code: 'NOT_FOUND', message: 'x-user-id: no such user' });
  return { userId, role, kind: 'service', credentialId: `service:${userId}` };
}

async function roleOf(state: AuthState, userId: string): Promise<Role | undefined> {
  const { options, users } = state;
  const now = Date.now();
  const cached = users.get(userId);
  if (cached && cached.expiresAt > now) return cached.role;
  const user = await options.db.selectFrom('users').select('role').where('id', '=', userId).executeTakeFirst();
  if (user && options.cacheTtlMs > 0) remember(state, users, userId, { role: user.role, expiresAt: now + options.cacheTtlMs });
  return user?.role;
}

/** Caches `value` under `key`, dropping the oldest entry once `map` holds `cacheMax`. */
function remember<V>(state: AuthState, map: Map<string, V>, key: string, value: V) {
  if (map.size >= state.cacheMax) map.delete(map.keys().next().value!);
  map.set(key, value);
}

async function writeLastUsed(state: AuthState): Promise<void> {
  const { lastUsed } = state;
  if (lastUsed.size === 0) return;
  const entries = [...lastUsed];
  lastUsed.clear();
  const ids = entries.map(([id]) => id);
  const times = entries.map(([, at]) => new Date(at).toISOString());
  try {
    await sql`
      update api_keys set last_used_at = v.at
      from unnest(${ids}::uuid[], ${times}::timestamptz[]) as v(id, at)
      where api_keys.id = v.id and (api_keys.last_used_at is null or api_keys.last_used_at < v.at)
    `.execute(state.options.db);
  } catch {
    // The database is away: keep the newest times for the next flush.
    for (const [id, at] of entries) if (!lastUsed.has(id)) lastUsed.set(id, at);
  }
}

export type Authenticator = ReturnType<typeof createAuthenticator>;

/**
 * Verifies a session JWT and answers its claims, with jose for either kind of key: the signature, `exp` (required, and
 * finite: a token without one would be valid for ever) and `nbf`; `iss` and `aud` when configured, where `aud` may be
 * one audience or a list that names ours (RFC 7519 §4.1.3). `JWT_SECRET` accepts HS256 only; `JWT_JWKS_URL`, the
 * asymmetric algorithms of KEY_SET_ALGORITHMS, with the keys of `remoteKeySet` (which answers SERVICE_UNAVAILABLE,
 * not INVALID_TOKEN, while the provider's key set cannot be fetched). Undefined when neither is configured.
 */
function jwtVerifier(options: AuthOptions) {
  const claims = { issuer: options.jwtIssuer, audience: options.jwtAudience, requiredClaims: ['exp'] };
  const finite = (payload: JWTPayload) => {
    if (!Number.isFinite(payload.exp)) throw new Error('exp is not a finite number');
    return payload;
  };
  if (options.jwtSecret) {
    const secret = new TextEncoder().encode(options.jwtSecret);
    return async (token: string) => finite((await jwtVerify(token, secret, { ...claims, algorithms: ['HS256'] })).payload);
  }
  if (!options.jwksUrl) return undefined;
  const keys = remoteKeySet(new URL(options.jwksUrl), options.keySetTiming);
  return async (token: string) => finite((await jwtVerify(token, keys, { ...claims, algorithms: KEY_SET_ALGORITHMS })).payload);
}
