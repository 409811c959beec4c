import { createLocalJWKSet, decodeJwt, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AppError } from '../rpc/errors.ts';

/** What a session token from a key set may be signed with: asymmetric algorithms only (never HS*, never `none`). */
export const KEY_SET_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface KeySetTiming {
  /** A fetched set is used this long as it is; the next request past it fetches it again, in the background. */
  maxAgeMs: number;
  /**
   * Past `maxAgeMs`, a set goes on serving this much longer while it is being fetched again or fetching fails (also the
   * first request after a quiet spell is judged on it while the fetch runs); past that, every token waits for a fetch.
   */
  maxStaleMs: number;
  /** A token naming a key id the set lacks makes a fetch at most this often. */
  cooldownMs: number;
  /** A fetch that takes longer has failed. */
  timeoutMs: number;
  /** After a failed fetch, this long before the next one. */
  retryMs: number;
}

export const KEY_SET_TIMING: KeySetTiming = {
  maxAgeMs: 10 * 60_000,
  maxStaleMs: 60 * 60_000,
  cooldownMs: 30_000,
  timeoutMs: 5_000,
  retryMs: 5_000,
};

/** A token signed this long before a set was fetched names a key the provider had published by then. */
const CLOCK_SKEW_MS = 60_000;

/**
 * The keys of `JWT_JWKS_URL`, for jose's `jwtVerify`. jose matches and imports the keys (`createLocalJWKSet`); this
 * decides when to fetch the set and what a failure to fetch it means, which jose's remote key set leaves to a
 * request that happens to come along (it fetches in the request, and treats a provider that is away like a bad token).
 *
 * - One fetch at a time. The set serves `maxAgeMs`, then is fetched again in the background while it goes on serving:
 *   no request waits for the provider once a set is held.
 * - A fetch fails (no answer within `timeoutMs`, an error status, not a key set): the set held goes on serving, up to
 *   `maxStaleMs` past its age, and the next fetch waits `retryMs`; an outage costs one fetch per `retryMs`, not one per
 *   request. A token the held set has no key for, or any token with no usable set, is SERVICE_UNAVAILABLE with
 *   `Retry-After`: the token may well be good, and a 401 makes a client sign its user out.
 * - A token naming a key id the set lacks makes a fetch (at most one per `cooldownMs`), and is INVALID_TOKEN when the
 *   fresh set lacks it too. Within the cooldown, a token signed after the set was fetched (its `iat`, give or take a
 *   minute of clock skew) may use a key the provider has just published: SERVICE_UNAVAILABLE until the next fetch may
 *   run; an older one is INVALID_TOKEN, as the provider publishes a key before signing with it.
 * - Anything else jose finds wrong with a token or its key (no key id, a key id the set has but for another
 *   algorithm, several keys that could match, a key that does not import) is the token's affair: INVALID_TOKEN, and
 *   nothing is fetched for it.
 * - Times are on the monotonic clock; a set counts as of when it was asked for (a token that waited for a fetch may
 *   be newer than the answer, and is judged by its `iat` as within the cooldown).
 *
 * @example const { payload } = await jwtVerify(token, remoteKeySet(new URL(url)), { algorithms: KEY_SET_ALGORITHMS });
 */
export function remoteKeySet(url: URL, timing: KeySetTiming = KEY_SET_TIMING): JWTVerifyGetKey {
  const keySet = new RemoteKeySet(url, timing);
  return (header, token) => keySet.getKey(header, token);
}

type ProtectedHeader = Parameters<JWTVerifyGetKey>[0];
type Token = Parameters<JWTVerifyGetKey>[1];

/** A fetched key set, as of when it was asked for. */
interface HeldSet {
  keys: JWTVerifyGetKey;
  kids: Set<unknown>;
  askedAt: number;
  askedAtWall: number;
}

// Durations on the monotonic clock (a wall clock stepped back would stretch every window); the wall-clock time a
// set was asked for only to compare with a token's `iat`.
const now = () => performance.now();

/** The state behind `remoteKeySet`: the set held, the fetch under way, and the last failure. */
class RemoteKeySet {
  private held: HeldSet | undefined;
  private fetching: Promise<void> | undefined;
  private failure: { until: number; cause: unknown } | undefined;
  private lastFetchAt = -Infinity;

  constructor(
    private readonly url: URL,
    private readonly timing: KeySetTiming,
  ) {}

  async getKey(header: ProtectedHeader, token: Token) {
    const started = now();
    if (!this.usable()) {
      if (this.mayFetch()) await this.fetchSet();
      if (!this.usable()) throw this.away();
    } else if (now() - this.held!.askedAt > this.timing.maxAgeMs && this.mayFetch()) {
      void this.fetchSet();
    }
    const set = this.held!;
    try {
      return await set.keys(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      return await this.keyNotInSet(set, header, token, error, started);
    }
  }

  /**
   * A token whose key `set` has no match for: the key from a set fetched again if the key id may be one published
   * since, else the answer the doc comment of `remoteKeySet` gives (INVALID_TOKEN or SERVICE_UNAVAILABLE).
   */
  private async keyNotInSet(set: HeldSet, header: ProtectedHeader, token: Token, error: unknown, started: number) {
    // Only a key id the set lacks may be a key published since; one it has (with another algorithm, key type,
    // use…), or none at all, is the token's affair.
    if (typeof header.kid !== 'string' || set.kids.has(header.kid)) throw error;
    if (set.askedAt >= started) throw error; // asked for after this token arrived: the key is not published
    // Fetch the set again (or wait for the fetch under way), at most once per cooldown.
    if (this.fetching || (now() - this.lastFetchAt >= this.timing.cooldownMs && this.mayFetch())) {
      await (this.fetching ?? this.fetchSet());
      if (this.held !== set) {
        set = this.held!;
        try {
          return await set.keys(header, token);
        } catch (again) {
          // Asked for after this token arrived, it decides; asked for before, the token is judged as below.
          if (!(again instanceof errors.JWKSNoMatchingKey) || set.askedAt >= started) throw again;
        }
      }
    }
    if (!this.mayFetch()) throw this.away(); // the fetch failed, now or a moment ago: nobody can tell
    if (signedAfter(token, set.askedAtWall - CLOCK_SKEW_MS)) {
      throw this.unavailable(
        'The session token names a key the identity provider may have just published; try again shortly',
        this.lastFetchAt + this.timing.cooldownMs,
        error,
      );
    }
    throw error;
  }

  /** Fetches the set (one fetch at a time); never rejects: a failure is recorded in `failure`. */
  private fetchSet(): Promise<void> {
    this.fetching ??= this.load().finally(() => {
      this.fetching = undefined; // after the assignment above, even if `load` threw before its first await
    });
    return this.fetching;
  }

  /** One fetch: the set it answers becomes `held`, or its failure `failure`. */
  private async load(): Promise<void> {
    const askedAt = (this.lastFetchAt = now());
    const askedAtWall = Date.now();
    try {
      const response = await fetch(this.url, {
        signal: AbortSignal.timeout(this.timing.timeoutMs), // the body's read included
        redirect: 'manual',
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
      if (response.status !== 200) throw new Error(`GET ${this.url.href} answered ${response.status}`);
      const jwks = (await response.json()) as JSONWebKeySet;
      // createLocalJWKSet checks the shape (JWKSInvalid): a set that is not one is a failed fetch. The set counts as
      // of when it was asked for: a token that arrived while it was on its way may be newer than the answer.
      this.held = { keys: createLocalJWKSet(jwks), kids: new Set(jwks.keys.map((key) => key.kid)), askedAt, askedAtWall };
      this.failure = undefined;
    } catch (cause) {
      this.failure = { until: now() + this.timing.retryMs, cause };
    }
  }

  private mayFetch(): boolean {
    return this.failure === undefined || now() >= this.failure.until;
  }

  private usable(): boolean {
    return this.held !== undefined && now() - this.held.askedAt <= this.timing.maxAgeMs + this.timing.maxStaleMs;
  }

  private unavailable(message: string, retryAt: number, cause: unknown): AppError {
    return new AppError({
      code: 'SERVICE_UNAVAILABLE',
      message,
      headers: { 'Retry-After': String(Math.max(1, Math.ceil((retryAt - now()) / 1000))) },
      cause,
    });
  }

  private away(): AppError {
    return this.unavailable(
      "The identity provider's key set (JWT_JWKS_URL) cannot be fetched; try again shortly",
      this.failure?.until ?? now() + this.timing.retryMs,
      this.failure?.cause,
    );
  }
}

/** Whether a token says it was issued after `at` (its `iat`; not yet verified, so it decides only this token's answer). */
function signedAfter(token: Parameters<JWTVerifyGetKey>[1], at: number): boolean {
  try {
    const { iat } = decodeJwt(`${token.protected}.${token.payload}.${token.signature}`);
    return typeof iat === 'number' && iat * 1000 > at;
  } catch {
    return false;
  }
}
