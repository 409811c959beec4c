import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { createAuthenticator, type AuthOptions } from '../src/auth/authenticate.ts';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import { createLogger } from '../src/logger.ts';
import { createHarness, expectError, ok, TEST_JWT_SECRET, type Answer, type Harness } from './support/harness.ts';

/**
 * Session JWTs with the claims a real identity provider sets: `iss` and `aud` (one audience or a list), `nbf`, and
 * keys from a JWKS endpoint (a loopback server here), including that endpoint being away. The basic HS256 cases
 * (expired, forged, alg none, no exp…) are in auth.test.ts.
 */
const ISSUER = 'https://id.example.test/';
const AUDIENCE = 'goalpost-api';
const now = () => Math.floor(Date.now() / 1000);

let h: Harness;
let jwks: { server: Server; url: string; keys: JWK[]; status: number };
let rsa: Awaited<ReturnType<typeof generateKeyPair>>;

beforeAll(async () => {
  h = await createHarness();
  rsa = await generateKeyPair('RS256', { extractable: true });
  jwks = { server: createServer(), url: '', keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }], status: 200 };
  jwks.server.on('request', (_req, res) => {
    res.writeHead(jwks.status, { 'content-type': 'application/json' });
    res.end(jwks.status === 200 ? JSON.stringify({ keys: jwks.keys }) : '{"error":"down"}');
  });
  await new Promise<void>((resolve) => jwks.server.listen(0, '127.0.0.1', resolve));
  jwks.url = `http://127.0.0.1:${(jwks.server.address() as AddressInfo).port}/.well-known/jwks.json`;
});
afterAll(async () => {
  jwks?.server.close();
  await h?.close();
});

/** An app like the server's, over the run's database, whose authenticator has `options`. */
function appWith(options: Omit<AuthOptions, 'db' | 'cacheTtlMs'>) {
  const app = createApp({
    db: h.db,
    authenticator: createAuthenticator({ db: h.db, cacheTtlMs: 30_000, ...options }),
    rateLimiter: createRateLimiter({ perMinute: 1_000_000, store: 'memory' }),
    logger: createLogger('silent'),
    maxActiveGoals: 3,
    bodyLimitBytes: 1024 * 1024,
  });
  return async (token: string, envelope: unknown = { resource: 'goals', action: 'list' }): Promise<Answer> => {
    const res = await app.request('/v1', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(envelope),
    });
    return { status: res.status, body: await res.json(), headers: res.headers };
  };
}

const hs256 = (claims: JWTPayload, secret = TEST_JWT_SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
const rs256 = (claims: JWTPayload, key = rsa.privateKey, kid = 'k1') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
const good = (sub: string): JWTPayload => ({ sub, iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300 });

describe('session JWTs with JWT_ISSUER and JWT_AUDIENCE (HS256)', () => {
  it('accepts our issuer with our audience, alone or in a list', async () => {
    const invoke = appWith({ jwtSecret: TEST_JWT_SECRET, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
    const alice = await h.user();
    ok(await invoke(await hs256(good(alice.id))));
    ok(await invoke(await hs256({ ...good(alice.id), aud: ['https://other.example.test', AUDIENCE] })));
  });

  it('refuses another issuer, an audience that is not ours, none at all, and a token not valid yet', async () => {
    const invoke = appWith({ jwtSecret: TEST_JWT_SECRET, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
    const alice = await h.user();
    const { iss: _iss, ...noIssuer } = good(alice.id);
    const { aud: _aud, ...noAudience } = good(alice.id);
    const cases: [string, JWTPayload][] = [
      ['another issuer', { ...good(alice.id), iss: 'https://evil.example.test/' }],
      ['no issuer', noIssuer],
      ['another audience', { ...good(alice.id), aud: 'another-api' }],
      ['a list without ours', { ...good(alice.id), aud: ['another-api', 'a-third'] }],
      ['no audience', noAudience],
      ['not valid before a minute from now', { ...good(alice.id), nbf: now() + 60 }],
    ];
    for (const [label, claims] of cases) {
      const res = await invoke(await hs256(claims));
      expect(res.status, label).toBe(401);
      expectError(res, 'INVALID_TOKEN', 401);
    }
    // Without JWT_ISSUER / JWT_AUDIENCE configured, the same claims are not checked.
    ok(await appWith({ jwtSecret: TEST_JWT_SECRET })(await hs256({ ...good(alice.id), aud: 'another-api' })));
  });
});

describe('session JWTs from a key set (JWT_JWKS_URL)', () => {
  it("acts as the user of a token signed with one of the set's keys", async () => {
    const invoke = appWith({ jwksUrl: jwks.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
    const alice = await h.user();
    const token = await rs256(good(alice.id));
    const created = ok(await invoke(token, { resource: 'goals', action: 'create', data: { name: 'Via the IdP' } }), 201);
    const row = await h.db.selectFrom('goals').select('owner_id').where('id', '=', created.id).executeTakeFirstOrThrow();
    expect(row.owner_id).toBe(alice.id);
    expect(ok(await invoke(token)).items.map((g: { name: string }) => g.name)).toEqual(['Via the IdP']);
  });

  it('refuses a token signed by another key, one naming a key the set lacks, an HS256 token, and bad claims', async () => {
    const invoke = appWith({ jwksUrl: jwks.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
    const alice = await h.user();
    const stranger = await generateKeyPair('RS256');
    // The classic confusion: HS256 "signed" with the public key, which an attacker has.
    const publicPem = await exportSPKI(rsa.publicKey);
    const cases: [string, string][] = [
      ['another key, same kid', await rs256(good(alice.id), stranger.privateKey)],
      ['a kid the set lacks', await rs256(good(alice.id), stranger.privateKey, 'k9')],
      ['HS256 with the public key as secret', await hs256(good(alice.id), publicPem)],
      ['expired', await rs256({ ...good(alice.id), exp: now() - 60 })],
      ['another audience', await rs256({ ...good(alice.id), aud: 'another-api' })],
      ['no expiry', await rs256({ sub: alice.id, iss: ISSUER, aud: AUDIENCE })],
    ];
    for (const [label, token] of cases) {
      const res = await invoke(token);
      expect(res.status, label).toBe(401);
      expectError(res, 'INVALID_TOKEN', 401);
    }
  });

  it('answers SERVICE_UNAVAILABLE while the key set cannot be fetched, and accepts the token once it can', async () => {
    // A fresh authenticator holds no keys yet: the first token makes it fetch the set.
    const invoke = appWith({ jwksUrl: jwks.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
    const alice = await h.user();
    const token = await rs256(good(alice.id));
    jwks.status = 500;
    try {
      const down = expectError(await invoke(token), 'SERVICE_UNAVAILABLE', 503);
      expect(down.message).toMatch(/JWT_JWKS_URL/);
    } finally {
      jwks.status = 200;
    }
    ok(await invoke(token));

    // Nobody listening at all.
    const unreachable = appWith({ jwksUrl: 'http://127.0.0.1:1/jwks.json' });
    expectError(await unreachable(token), 'SERVICE_UNAVAILABLE', 503);
  });
});
