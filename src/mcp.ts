import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createAiProvider } from './ai/index.ts';
import { dispatchDeps } from './app.ts';
import { webhookSettings, type Config } from './config.ts';
import type { DatabaseHandle } from './db/client.ts';
import { createMcpServer } from './http/mcp.ts';
import { createLogger } from './logger.ts';
import { authenticatorFor, createLimiters } from './server.ts';

/**
 * `goalpost mcp --key <api key>`: the MCP tools of `/mcp` over stdio, acting as the key's user against the opened
 * (and migrated: cli.ts) database, for local MCP clients. stdout carries the protocol alone; logs go to stderr.
 * Each tool call counts against the key's rate limit, as a request would. Resolves when the client closes stdin (or on SIGTERM/SIGINT).
 *
 * @example await serveMcpStdio(database, loadConfig(), process.env.GOALPOST_API_KEY!);
 */
export async function serveMcpStdio(database: DatabaseHandle, config: Config, key: string): Promise<void> {
  const logger = createLogger(config.LOG_LEVEL);
  const authenticator = authenticatorFor(config, database.db);
  // A bad key fails here, before the protocol starts: one line on stderr, a non-zero exit (cli.ts).
  const principal = await authenticator.authenticate({ authorization: `Bearer ${key}` });
  const { rateLimiter, generateRateLimiter } = createLimiters(config, database);
  const dispatch = dispatchDeps({
    db: database.db,
    authenticator,
    maxActiveGoals: config.MAX_ACTIVE_GOALS,
    ai: createAiProvider(config),
    webhooks: webhookSettings(config),
    generateRateLimiter,
  });
  const server = createMcpServer({ dispatch, logger, countCall: (caller) => rateLimiter.consume(caller.credentialId) }, principal);
  const closed = new Promise<void>((resolve) => {
    server.onclose = resolve;
    process.stdin.once('end', resolve);
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await server.connect(new StdioServerTransport());
  logger.info('mcp: serving over stdio', { user_id: principal.userId, role: principal.role });
  await closed;
  await server.close();
  await authenticator.flushLastUsed();
  await Promise.all([rateLimiter.close(), generateRateLimiter.close()]);
}
