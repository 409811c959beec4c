import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describe, expect, it } from 'vitest';
import { createHarness, databaseUrl, onRealPostgres, type Harness } from './support/harness.ts';
import { runNode } from './support/processes.ts';

// `goalpost mcp --key`: the same tools over stdio, as a local MCP client (Claude Desktop, an IDE) starts it. On the
// embedded run the test database serves one connection at a time, so no harness is open while the CLI runs.
async function withHarness<T>(fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = await createHarness();
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

// The embedded test database serves one connection over its socket: no second one for the deadline's probe or the
// rate limit's leases there.
const embeddedOnly = () => (onRealPostgres() ? {} : { DB_UNAVAILABLE_TIMEOUT_MS: '0', RATE_LIMIT_STORE: 'memory' });
const cliEnv = () => ({ DATABASE_URL: databaseUrl(), LOG_LEVEL: 'silent', ...embeddedOnly() });
const env = () => ({ ...process.env, ...cliEnv() }) as Record<string, string>;

describe('goalpost mcp (stdio)', () => {
  it("serves the tools as the key's user, its writes landing in the database", async () => {
    const { key, userId, consumerKey } = await withHarness(async (h) => {
      const alice = await h.user();
      const consumer = await h.user('consumer');
      return { key: alice.key, userId: alice.id, consumerKey: consumer.key };
    });

    const client = new Client({ name: 'stdio-test', version: '1' });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: ['bin/goalpost.mjs', 'mcp', '--key', key], env: env(), stderr: 'pipe' }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('goals_create');
    const created: any = await client.callTool({ name: 'goals_create', arguments: { name: 'Over stdio' } });
    expect(created.isError).toBeFalsy();
    const invalid: any = await client.callTool({ name: 'goals_create', arguments: {} });
    expect(invalid.isError).toBe(true);
    expect(JSON.parse(invalid.content[0].text).error.code).toBe('VALIDATION_ERROR');
    await client.close();

    // GOALPOST_API_KEY works as well, and a consumer key gets the read-only tools.
    const reader = new Client({ name: 'stdio-test', version: '1' });
    await reader.connect(
      new StdioClientTransport({ command: process.execPath, args: ['bin/goalpost.mjs', 'mcp'], env: { ...env(), GOALPOST_API_KEY: consumerKey }, stderr: 'pipe' }),
    );
    const readOnly = (await reader.listTools()).tools;
    expect(readOnly.every((t) => t.annotations?.readOnlyHint)).toBe(true);
    await reader.close();

    await withHarness(async (h) => {
      const goal = await h.db.selectFrom('goals').select(['name', 'owner_id']).where('id', '=', created.structuredContent.id).executeTakeFirstOrThrow();
      expect(goal).toEqual({ name: 'Over stdio', owner_id: userId });
    });
  });

  it('refuses a bad key or none: one line on stderr, a non-zero exit, nothing on stdout', async () => {
    const bad = await runNode(['bin/goalpost.mjs', 'mcp', '--key', 'gp_live_nope'], cliEnv());
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/key/i);
    const none = await runNode(['bin/goalpost.mjs', 'mcp'], { ...cliEnv(), GOALPOST_API_KEY: undefined });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/--key/);
  });
});
