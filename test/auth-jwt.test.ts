import { createHmac } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { createAuthenticator, type AuthOptions } from '../src/auth/authenticate.ts';
import { createRateLimiter } from '../src/auth/rate-limit.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { listen } from '../src/server.ts';
import { appServices, createHarness, expectError, ok, TEST_JWT_SECRET, type Answer, type Harness } from './support/harness.ts';
import { WsClient } from './support/ws-client.ts';

/**
 * Session JWTs with the claims a real identity provider sets: `iss` and `aud` (one audience or a list), `nbf`, and
 * keys from a JWKS endpoint (a loopback server here), including that endpoint being away. The basic HS256 cases
 * (expired, forged, alg none, no exp…) are in auth.test.ts.
 */
const ISSUER = 'https://id.example.test/';
const AUDIENCE = 'goalpost-api';
const now = () => Math.floor(Date.now() / 1000);

let h: Harness;
let jwks: { server: Server; url: string; keys: JWK[]; status: number; requests: number; hanging: ServerResponse[]; delayMs: number };
let rsa: Awaited<ReturnType<typeof generateKeyPair>>;

beforeAll(async () => {
  h = await createHarness();
  rsa = await generateKeyPair('RS256', { extractable: true });
  jwks = { server: createServer(), url: '', keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }], status: 200, requests: 0, hanging: [], delayMs: 0 };
  jwks.server.on('request', (_req, res) => {
    jwks.requests++;
    if (jwks.status === 0) return void jwks.hanging.push(res);
    const keys = jwks.keys; // as of the request; the answer may come `delayMs` later
    setTimeout(() => {
      res.writeHead(jwks.status, { 'content-type': 'application/json' });
      res.end(jwks.status === 200 ? JSON.stringify({ keys }) : '{"error":"down"}');
    }, jwks.delayMs);
  });
  await new Promise<void>((resolve) => jwks.server.listen(0, '127.0.0.1', resolve));
  jwks.url = `http://127.0.0.1:${(jwks.server.address() as AddressInfo).port}/.well-known/jwks.json`;
});
afterAll(async () => {
  jwks?.server.close();
  await h?.close();
});

/** An app like the server's, over the run's database, whose authenticator has `options`. */
function appOf(options: Omit<AuthOptions, 'db' | 'cacheTtlMs'>) {
  return createApp({
    db: h.db,
    authenticator: createAuthenticator({ db: h.db, cacheTtlMs: 30_000, ...options }),
    rateLimiter: createRateLimiter({ perMinute: 1_000_000, store: 'memory' }),
    logger: createLogger('silent'),
    maxActiveGoals: 3,
    bodyLimitBytes: 1024 * 1024,
    ...appServices(),
  });
}

/** `POST /v1` on `appOf(options)` with a bearer token. */
function appWith(options: Omit<AuthOptions, 'db' | 'cacheTtlMs'>) {
  const app = appOf(options);
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
    // An `exp` of 1e400 parses as Infinity: a token that never expires.
    const payload = `{"sub":"${alice.id}","iss":"${ISSUER}","aud":"${AUDIENCE}","exp":1e400}`;
    const signingInput = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
    const forever = `${signingInput}.${createHmac('sha256', TEST_JWT_SECRET).update(signingInput).digest('base64url')}`;
    const tokens: [string, string][] = [
      ...(await Promise.all(cases.map(async ([label, claims]) => [label, await hs256(claims)] as [string, string]))),
      ['an exp that is not finite', forever],
    ];
    for (const [label, token] of tokens) {
      const res = await invoke(token);
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
    // An `exp` of 1e400 parses as Infinity: a token that never expires, signed with the set's own key.
    const payload = `{"sub":"${alice.id}","iss":"${ISSUER}","aud":"${AUDIENCE}","exp":1e400}`;
    const input = `${Buffer.from('{"alg":"RS256","kid":"k1"}').toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
    const signature = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, new TextEncoder().encode(input));
    const forever = `${input}.${Buffer.from(signature).toString('base64url')}`;
    const cases: [string, string][] = [
      // First, while nothing has been fetched: the set is fetched for it, and the key is not there. (Later, a token
      // issued since the set was fetched and naming a key it lacks may be SERVICE_UNAVAILABLE: the rotation case.)
      ['a kid the set lacks', await rs256(good(alice.id), stranger.privateKey, 'k9')],
      ['an exp that is not finite', forever],
      ['another key, same kid', await rs256(good(alice.id), stranger.privateKey)],
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

  it('refuses (INVALID_TOKEN, not 503) a token without a key id when several keys of the set could have signed it', async () => {
    const other = await generateKeyPair('RS256', { extractable: true });
    const saved = jwks.keys;
    jwks.keys = [
      { ...(await exportJWK(other.publicKey)), alg: 'RS256' },
      { ...(await exportJWK(rsa.publicKey)), alg: 'RS256' },
    ];
    try {
      const invoke = appWith({ jwksUrl: jwks.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
      const alice = await h.user();
      // jose leaves trying each matching key to its caller; providers name their keys (kid), so Goalpost does not.
      const token = await new SignJWT(good(alice.id)).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
      expectError(await invoke(token), 'INVALID_TOKEN', 401);
    } finally {
      jwks.keys = saved;
    }
  });
});

describe('a key set that cannot be fetched, or has just changed', () => {
  /**
   * Shortened for the test, with room for a loaded machine: the set used 1.5 s as it is (then fetched again in the
   * background), a fetch for an unknown key at most every second, a failed fetch retried after a second.
   */
  const timing = { maxAgeMs: 1_500, maxStaleMs: 60_000, cooldownMs: 1_000, timeoutMs: 2_000, retryMs: 1_000 };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** The key set server answering `status` (0: never answering) while `body` runs. */
  const failing = async <T>(status: number, body: () => Promise<T>) => {
    jwks.status = status;
    try {
      return await body();
    } finally {
      jwks.status = 200;
      for (const res of jwks.hanging.splice(0)) res.destroy();
    }
  };
  const fetchesDuring = async (body: () => Promise<unknown>) => {
    const before = jwks.requests;
    await body();
    return jwks.requests - before;
  };

  it('answers SERVICE_UNAVAILABLE with Retry-After when no set was ever fetched, without a fetch per request, and recovers', async () => {
    const invoke = appWith({ jwksUrl: jwks.url, keySetTiming: timing });
    const alice = await h.user();
    const token = await rs256(good(alice.id));
    await failing(500, async () => {
      const fetches = await fetchesDuring(async () => {
        for (let i = 0; i < 5; i++) {
          const res = await invoke(token);
          expect(expectError(res, 'SERVICE_UNAVAILABLE', 503).message).toMatch(/JWT_JWKS_URL/);
          expect(res.headers.get('retry-after')).toBe('1');
        }
      });
      // One fetch failed; the next four were answered from that failure, within retryMs (a second).
      expect(fetches).toBe(1);
      // A token that is not even for this key set (HS256) is refused before any key is looked for.
      expectError(await invoke(await hs256(good(alice.id))), 'INVALID_TOKEN', 401);
    });
    await sleep(timing.retryMs + 100);
    ok(await invoke(token));

    // Nobody listening at all, and a provider that never answers (the fetch times out).
    expectError(await appWith({ jwksUrl: 'http://127.0.0.1:1/jwks.json', keySetTiming: timing })(token), 'SERVICE_UNAVAILABLE', 503);
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/jwks.json`;
      expectError(await appWith({ jwksUrl: url, keySetTiming: { ...timing, timeoutMs: 300 } })(token), 'SERVICE_UNAVAILABLE', 503);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it("keeps judging tokens on the set it holds while the provider is away or hangs, and no request waits for it", async () => {
    const invoke = appWith({ jwksUrl: jwks.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE, keySetTiming: timing });
    const alice = await h.user();
    const token = await rs256(good(alice.id));
    const otherAudience = await rs256({ ...good(alice.id), aud: 'another-api' });
    const stranger = await generateKeyPair('RS256');
    const unknownKey = await rs256(good(alice.id), stranger.privateKey, 'k2');
    ok(await invoke(token));
    await failing(503, async () => {
      await sleep(timing.maxAgeMs + 100); // past its age: fetched again in the background, which fails
      const fetches = await fetchesDuring(async () => {
        ok(await invoke(token));
        ok(await invoke(token));
        // Still refused when bad, on the set held.
        expectError(await invoke(otherAudience), 'INVALID_TOKEN', 401);
        // A key id the set lacks may be one the provider added meanwhile: not a sign-out.
        expectError(await invoke(unknownKey), 'SERVICE_UNAVAILABLE', 503);
      });
      expect(fetches).toBe(1);
    });
    await sleep(timing.retryMs + 100);
    await failing(0, async () => {
      // A provider that takes its time: the set held answers at once.
      const started = performance.now();
      ok(await invoke(token));
      ok(await invoke(token));
      expect(performance.now() - started).toBeLessThan(timing.timeoutMs / 2);
    });
  });

  it('stops serving a set that could not be fetched again for maxStaleMs past its age', async () => {
    const invoke = appWith({ jwksUrl: jwks.url, keySetTiming: { ...timing, maxAgeMs: 300, maxStaleMs: 300, retryMs: 100 } });
    const alice = await h.user();
    const token = await rs256(good(alice.id));
    ok(await invoke(token));
    await failing(503, async () => {
      await sleep(400);
      ok(await invoke(token)); // stale, within maxStaleMs
      await sleep(400);
      expectError(await invoke(token), 'SERVICE_UNAVAILABLE', 503); // a key the provider may have removed since
    });
    await sleep(150); // retryMs after the last failed fetch
    ok(await invoke(token));
  });

  it('a key the provider has just added: 503 within the cooldown for a token issued since the fetch, accepted after it; an unknown key is INVALID_TOKEN', async () => {
    const invoke = appWith({ jwksUrl: jwks.url, keySetTiming: { ...timing, maxAgeMs: 60_000 } });
    const alice = await h.user();
    // Everything signed up front: the cooldown below is a second, and making an RSA key can take a good part of one.
    const current = await rs256(good(alice.id));
    const next = await generateKeyPair('RS256', { extractable: true });
    const rotated = await rs256(good(alice.id), next.privateKey, 'k2');
    const stranger = await generateKeyPair('RS256');
    const unknownKey = await rs256(good(alice.id), stranger.privateKey, 'k9');
    // Issued two minutes ago, before the set was fetched: its key would have been in the set.
    const unknownOld = await rs256({ ...good(alice.id), iat: now() - 120 }, stranger.privateKey, 'k8');
    const nextJwk = { ...(await exportJWK(next.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' };
    const saved = jwks.keys;
    ok(await invoke(current)); // fetches the set: k1 only
    jwks.keys = [...saved, nextJwk];
    try {
      const fetches = await fetchesDuring(async () => {
        const early = await invoke(rotated);
        expectError(early, 'SERVICE_UNAVAILABLE', 503);
        expect(Number(early.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        // Again and again within the cooldown: the same answer, and no fetch.
        for (let i = 0; i < 3; i++) expectError(await invoke(unknownOld), 'INVALID_TOKEN', 401);
      });
      expect(fetches).toBe(0);
      await sleep(timing.cooldownMs + 100);
      expect(await fetchesDuring(async () => ok(await invoke(rotated)))).toBe(1); // fetched again for k2
      await sleep(timing.cooldownMs + 100);
      expectError(await invoke(unknownKey), 'INVALID_TOKEN', 401); // fetched again for k9: not there
    } finally {
      jwks.keys = saved;
    }
  });

  it('a key id the set has, used with another algorithm, is INVALID_TOKEN at once and fetches nothing', async () => {
    const invoke = appWith({ jwksUrl: jwks.url, keySetTiming: timing });
    const alice = await h.user();
    ok(await invoke(await rs256(good(alice.id))));
    const pss = await generateKeyPair('PS256');
    const ps256 = await new SignJWT(good(alice.id)).setProtectedHeader({ alg: 'PS256', kid: 'k1' }).sign(pss.privateKey);
    const fetches = await fetchesDuring(async () => {
      for (let i = 0; i < 3; i++) expectError(await invoke(ps256), 'INVALID_TOKEN', 401);
    });
    expect(fetches).toBe(0);
  });

  it('a token that arrives while the set is on its way, naming a key the answer lacks, is not signed out', async () => {
    // The answer may have been made before the token's key was published: judged by its iat, as within the cooldown.
    const invoke = appWith({ jwksUrl: jwks.url, keySetTiming: timing });
    const alice = await h.user();
    const next = await generateKeyPair('RS256');
    const current = await rs256(good(alice.id));
    const rotated = await rs256(good(alice.id), next.privateKey, 'k2');
    jwks.delayMs = 400;
    try {
      const first = invoke(current); // asks for the set
      await sleep(100);
      const [a, b] = await Promise.all([first, invoke(rotated)]);
      ok(a);
      expectError(b, 'SERVICE_UNAVAILABLE', 503);
    } finally {
      jwks.delayMs = 0;
    }
  });

  it('closes a WebSocket whose header token could not be checked with 1013 (try again later), not 1008', async () => {
    const app = appOf({ jwksUrl: 'http://127.0.0.1:1/jwks.json', keySetTiming: timing });
    const { server, port } = await listen(app, { port: 0, hostname: '127.0.0.1', maxFrameBytes: 1024 * 1024 });
    try {
      const alice = await h.user();
      const ws = await WsClient.open(`ws://127.0.0.1:${port}/v1/ws`, { authorization: `Bearer ${await rs256(good(alice.id))}` });
      expect((await ws.next((f) => f.type === 'error')).error.code).toBe('SERVICE_UNAVAILABLE');
      expect(await ws.closed).toEqual({ code: 1013, reason: 'credentials could not be checked' });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('configuration', () => {
  it('refuses JWT_SECRET and JWT_JWKS_URL together, naming both', () => {
    expect(() => loadConfig({ JWT_SECRET: TEST_JWT_SECRET, JWT_JWKS_URL: 'https://id.example.test/jwks.json' })).toThrow(
      /JWT_SECRET, JWT_JWKS_URL: set one of them/,
    );
  });
});
