import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHarness, databaseUrl, expectError, onRealPostgres, type Harness } from './support/harness.ts';
import { runNode, stopAll } from './support/processes.ts';

/**
 * On the embedded run the test database is served by vitest's main process to ONE connection at a
 * time, so no harness is open while the CLI runs: each test runs the CLI first, then opens a harness
 * (withHarness) to look at the result, and closes it before the next test.
 */
async function withHarness<T>(fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = await createHarness();
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

// On the embedded database (served over a socket that takes one connection) without the deadline's probe beside it.
const goalpost = (...args: string[]) =>
  runNode(['bin/goalpost.mjs', ...args], { DATABASE_URL: databaseUrl(), LOG_LEVEL: 'silent', ...(onRealPostgres() ? {} : { DB_UNAVAILABLE_TIMEOUT_MS: '0' }) });
const email = (label: string) => `cli-${label}-${randomUUID()}@test.goalpost`;

afterAll(() => stopAll());

describe('goalpost users create', () => {
  it('prints exactly one JSON line with the user and a key that works', async () => {
    const address = email('admin');
    const run = await goalpost('users', 'create', '--email', address, '--name', 'Ada Admin', '--role', 'internal_admin');
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.code).toBe(0);
    expect(run.stdout.endsWith('\n')).toBe(true);
    const lines = run.stdout.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('');
    const out = JSON.parse(lines[0]!);
    expect(out).toEqual({
      user: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        email: address,
        name: 'Ada Admin',
        role: 'internal_admin',
        created_at: expect.stringMatching(/Z$/),
      },
      key: expect.stringMatching(/^gp_live_[A-Za-z0-9_-]{32,}$/),
    });

    await withHarness(async (h) => {
      const row = await h.db.selectFrom('users').selectAll().where('id', '=', out.user.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ email: address, name: 'Ada Admin', role: 'internal_admin' });
      expect(row.created_at.toISOString()).toBe(out.user.created_at);

      const res = await h.invoke(out.key, { resource: 'goals', action: 'list' });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ items: [], count: 0, next_cursor: null });
      // The role took: admin mode is open to this key.
      const admin = await h.invoke(out.key, { resource: 'goals', action: 'list', data: { adminMode: true, limit: 1 } });
      expect(admin.status).toBe(200);
      const keys = await h.invoke(out.key, { resource: 'api-keys', action: 'list' });
      expect(keys.body.data.count).toBe(1);
    });
  });

  it('defaults to a standard user without a name', async () => {
    const address = email('plain');
    const run = await goalpost('users', 'create', '--email', address);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.user).toMatchObject({ email: address, name: null, role: 'standard_user' });
    await withHarness(async (h) => {
      const admin = await h.invoke(out.key, { resource: 'goals', action: 'list', data: { adminMode: true } });
      expectError(admin, 'FORBIDDEN', 403);
    });
  });

  it('refuses a duplicate email (any case): non-zero exit, message on stderr, nothing on stdout', async () => {
    const address = email('dup');
    const first = await goalpost('users', 'create', '--email', address);
    expect(first.code).toBe(0);
    const again = await goalpost('users', 'create', '--email', address.toUpperCase(), '--name', 'Other');
    expect(again.code).not.toBe(0);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/exists/);
    await withHarness(async (h) => {
      const users = await h.db
        .selectFrom('users')
        .select('name')
        .where((eb) => eb(eb.fn('lower', ['email']), '=', address.toLowerCase()))
        .execute();
      expect(users).toEqual([{ name: null }]);
    });
  });

  it('refuses a bad --role, a bad or missing --email and an unknown command', async () => {
    const address = email('badrole');
    const badRole = await goalpost('users', 'create', '--email', address, '--role', 'superuser');
    expect(badRole.code).not.toBe(0);
    expect(badRole.stdout).toBe('');
    expect(badRole.stderr).toMatch(/--role/);

    const badEmail = await goalpost('users', 'create', '--email', 'not-an-email');
    expect(badEmail.code).not.toBe(0);
    expect(badEmail.stdout).toBe('');
    expect(badEmail.stderr).toMatch(/--email/);

    const noEmail = await goalpost('users', 'create');
    expect(noEmail.code).not.toBe(0);
    expect(noEmail.stdout).toBe('');
    expect(noEmail.stderr).toMatch(/--email/);

    const unknown = await goalpost('users', 'delete');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/Usage/);

    await withHarness(async (h) => {
      const user = await h.db.selectFrom('users').select('id').where('email', '=', address).executeTakeFirst();
      expect(user).toBeUndefined();
    });
  });

  it('refuses bad arguments before opening the embedded database (no lock left behind)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'goalpost-cli-'));
    try {
      const dataDir = join(dir, 'data');
      const run = await runNode(['bin/goalpost.mjs', 'users', 'create', '--email', email('x'), '--role', 'root'], {
        DATA_DIR: dataDir,
        LOG_LEVEL: 'silent',
      });
      expect(run.code).not.toBe(0);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/--role/);
      expect(existsSync(join(dataDir, 'goalpost.lock'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('goalpost migrate', () => {
  it('exits 0 on a migrated database and prints nothing on stdout', async () => {
    const run = await goalpost('migrate');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/up to date|applied/);
  });
});
