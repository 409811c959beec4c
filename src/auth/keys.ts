import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

export const API_KEY_PREFIX = 'gp_live_';

/** A new API key: the prefix and 32 random bytes in base64url (43 characters). */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * What is stored and looked up: the SHA-256 of the whole key, hex. The key itself is never stored.
 * `crypto.hash` (one shot, Node ≥ 20.12) rather than `createHash()`: it runs on every request, and the
 * Hash object costs twice as much (docs/performance.md).
 */
export function hashApiKey(key: string): string {
  return hash('sha256', key);
}

/** Enough of the key to recognise it in a list, not enough to use it. */
export function displayPrefix(key: string): string {
  return key.slice(0, API_KEY_PREFIX.length + 6);
}

/**
 * Constant-time comparison with one secret of any length (compares digests); the secret's digest is
 * computed once, so a check costs one hash.
 *
 * @example const isServiceKey = matchesSecret(config.SERVICE_KEY); if (isServiceKey(token)) …
 */
export function matchesSecret(secret: string): (candidate: string) => boolean {
  const expected = hash('sha256', secret, 'buffer');
  return (candidate) => timingSafeEqual(hash('sha256', candidate, 'buffer'), expected);
}
