import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHarness, databaseUrl, expectError, onRealPostgres, type Harness } from './support/harness.ts';
import { freePort, runNode, stopAll } from './support/processes.ts';

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
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^goalpost: unknown command "users delete"; the commands are users create, .*\n$/);

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

/** stderr is one line: the message, no stack, no usage dump. */
function expectOneLine(stderr: string, pattern: RegExp) {
  expect(stderr.split('\n')).toHaveLength(2);
  expect(stderr).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('goalpost --version, --help and usage errors', () => {
  it('prints the package version', async () => {
    const run = await goalpost('--version');
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const { version } = JSON.parse(readFileSync('package.json', 'utf8'));
    expect(run.stdout).toBe(`${version}\n`);
  });

  it('lists every command with --help, and shows one command with <command> --help or help <command>', async () => {
    const all = await goalpost('--help');
    expect(all.code).toBe(0);
    for (const name of ['users create', 'users list', 'keys create', 'keys list', 'keys revoke', 'migrate', 'worker']) {
      expect(all.stdout).toContain(`goalpost ${name}`);
    }
    const one = await goalpost('keys', 'create', '--help');
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^Usage: goalpost keys create --email E \[--name N\]\n/);
    expect(one.stdout).not.toContain('goalpost users list');
    const viaHelp = await goalpost('help', 'keys', 'create');
    expect(viaHelp).toMatchObject({ code: 0, stdout: one.stdout });
  });

  it('answers no command with the usage on stderr and exit 2', async () => {
    const run = await goalpost();
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^Usage:/);
  });

  it.each([
    [['deploy'], /^goalpost: unknown command "deploy"/],
    [['keys', 'create', '--email', 'a@b.co', '--bogus'], /^goalpost keys create: Unknown option '--bogus'/],
    [['keys', 'create'], /^goalpost keys create: --email is required/],
    [['keys', 'create', '--email', 'nope'], /^goalpost keys create: --email must be an email address/],
    [['keys', 'list'], /^goalpost keys list: --email is required/],
    [['keys', 'revoke'], /^goalpost keys revoke: <id> is required/],
    [['keys', 'revoke', 'abc'], /^goalpost keys revoke: <id> must be an API key id/],
    [['users', 'list', 'extra'], /^goalpost users list: Unexpected argument 'extra'/],
  ])('refuses %j with one line and exit 2', async (args, pattern) => {
    const run = await goalpost(...args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expectOneLine(run.stderr, pattern);
  });

  it('says in one line, exit 1, when the database cannot be reached', async () => {
    const port = await freePort();
    const run = await runNode(['bin/goalpost.mjs', 'users', 'list'], {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nowhere`,
      LOG_LEVEL: 'silent',
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expectOneLine(run.stderr, /^goalpost users list: .*ECONNREFUSED/);
  });
});

describe('goalpost keys', () => {
  async function createUser(label: string) {
    const run = await goalpost('users', 'create', '--email', email(label));
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout) as { user: { id: string; email: string }; key: string };
  }

  it('keys create reissues a key for a user (one JSON line, the key once); keys list shows it without the key', async () => {
    const { user, key: first } = await createUser('reissue');
    // By email in another case: emails are matched as users create matches them.
    const run = await goalpost('keys', 'create', '--email', user.email.toUpperCase(), '--name', 'laptop');
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')).toHaveLength(2);
    const out = JSON.parse(run.stdout);
    expect(out).toEqual({
      user: { id: user.id, email: user.email },
      api_key: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        user_id: user.id,
        name: 'laptop',
        prefix: out.key.slice(0, out.api_key.prefix.length),
        created_at: expect.stringMatching(/Z$/),
        last_used_at: null,
        revoked_at: null,
      },
      key: expect.stringMatching(/^gp_live_[A-Za-z0-9_-]{32,}$/),
    });
    expect(out.key).not.toBe(first);

    const list = await goalpost('keys', 'list', '--email', user.email);
    expect(list.code, list.stderr).toBe(0);
    const keys = list.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(keys.map((k) => k.name)).toEqual(['laptop', 'default']);
    expect(keys[0]).toEqual(out.api_key);
    expect(list.stdout).not.toContain('gp_live_' + out.key.slice(8));
    expect(list.stdout).not.toContain(first);

    await withHarness(async (h) => {
      const res = await h.invoke(out.key, { resource: 'goals', action: 'list' });
      expect(res.status).toBe(200);
    });
  });

  it('keys revoke revokes a key: it is refused afterwards, the other key still works', async () => {
    const { user, key: kept } = await createUser('revoke');
    const made = JSON.parse((await goalpost('keys', 'create', '--email', user.email)).stdout);
    const run = await goalpost('keys', 'revoke', made.api_key.id);
    expect(run.code).toBe(0);
    const revoked = JSON.parse(run.stdout);
    expect(revoked).toMatchObject({ id: made.api_key.id, user_id: user.id, revoked_at: expect.stringMatching(/Z$/) });
    // Again: still revoked, the same time.
    const again = await goalpost('keys', 'revoke', made.api_key.id);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).revoked_at).toBe(revoked.revoked_at);

    await withHarness(async (h) => {
      expectError(await h.invoke(made.key, { resource: 'goals', action: 'list' }), 'KEY_NOT_FOUND', 401);
      expect((await h.invoke(kept, { resource: 'goals', action: 'list' })).status).toBe(200);
    });
  });

  it('refuses an unknown email, an unknown key id and a sixth active key: one line, exit 1', async () => {
    const nobody = await goalpost('keys', 'create', '--email', email('nobody'));
    expect(nobody.code).toBe(1);
    expect(nobody.stdout).toBe('');
    expectOneLine(nobody.stderr, /^goalpost keys create: No user with email /);

    const listNobody = await goalpost('keys', 'list', '--email', email('nobody'));
    expect(listNobody.code).toBe(1);
    expectOneLine(listNobody.stderr, /^goalpost keys list: No user with email /);

    const unknown = await goalpost('keys', 'revoke', randomUUID());
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expectOneLine(unknown.stderr, /^goalpost keys revoke: No API key /);

    const { user } = await createUser('limit');
    for (let i = 0; i < 4; i++) expect((await goalpost('keys', 'create', '--email', user.email)).code).toBe(0);
    const sixth = await goalpost('keys', 'create', '--email', user.email);
    expect(sixth.code).toBe(1);
    expect(sixth.stdout).toBe('');
    expectOneLine(sixth.stderr, /^goalpost keys create: A user may hold at most 5 active API keys/);
  });
});

describe('goalpost users list', () => {
  it('prints every user as one JSON line, with their active keys', async () => {
    const address = email('listed');
    const created = JSON.parse((await goalpost('users', 'create', '--email', address, '--role', 'consumer')).stdout);
    await goalpost('keys', 'create', '--email', address);
    const run = await goalpost('users', 'list');
    expect(run.code).toBe(0);
    const users = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(users.find((u) => u.email === address)).toEqual({ ...created.user, active_keys: 2 });
    expect(run.stdout).not.toContain('gp_live_');
  });
});
