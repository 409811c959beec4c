import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { ConfigError, loadConfig, webhookSettings, type Config } from './config.ts';
import { openDatabase, type DatabaseHandle, type Db } from './db/client.ts';
import { migrateToLatest } from './db/migrate.ts';
import { roles, type ApiKeyRow, type User } from './db/schema.ts';
import { startWorker } from './jobs/worker.ts';
import { createLogger } from './logger.ts';
import { serveMcpStdio } from './mcp.ts';
import { createApiKey, findApiKey, listApiKeys, revokeApiKey } from './resources/api-keys/queries.ts';
import { createUserWithKey, findUserByEmail, listUsers } from './resources/users/queries.ts';
import { AppError } from './rpc/errors.ts';

// `goalpost <command>`: one entry of COMMANDS per command. Arguments are read with node:util's parseArgs (no
// dependency: five flags and one positional do not need one) and validated with zod before the database opens,
// so a mistake never leaves the embedded database's lock behind. Exit codes: 0 done, 1 it failed, 2 a usage error.
// Whatever a command answers goes to stdout as JSON lines; messages and logs go to stderr, one line each.

/** What a command gets: its validated arguments, the migrated database, the configuration. */
interface RunContext<A> {
  args: A;
  db: Db;
  /** The opened database whole (its postgres.js client too), for commands that build the service's parts. */
  database: DatabaseHandle;
  config: Config;
  /** The migrations that ran before the command (every command migrates first). */
  applied: string[];
}

/** One CLI command: the words that name it, its usage line and help, its options, and what it does. */
export interface Command<A = any> {
  /** The words after `goalpost`, e.g. `keys create`. */
  name: string;
  /** The arguments after the name, for the usage line: `--email E [--name N]`. */
  usage: string;
  /** One line for `goalpost --help`; `help` adds what `goalpost <command> --help` says besides. */
  summary: string;
  help?: string;
  options?: ParseArgsConfig['options'];
  /** Positional arguments after the name, by name (`keys revoke <id>`). */
  positionals?: string[];
  /** Validates `{ ...options, ...positionals }`; its messages name the flag (`--email: …`). */
  args: z.ZodType<A>;
  /** Database connections this command wants from a Postgres server (default 1: a command runs one statement at a time). */
  poolMax?(config: Config): number;
  run(context: RunContext<A>): Promise<void>;
}

const email = z.email('must be an email address');
const nothing = z.object({});

const COMMANDS: Command[] = [
  {
    name: 'users create',
    usage: '--email E [--name N] [--role standard_user|consumer|internal_admin]',
    summary: 'Creates a user and an API key; prints one JSON line {"user": {...}, "key": "gp_live_..."}.',
    help: 'The key is shown once, here. A user with the same email (any case) is refused.',
    options: { email: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' } },
    args: z.object({ email, name: z.string().min(1).max(200).optional(), role: z.enum(roles).default('standard_user') }),
    async run({ args, db }) {
      const { user, key } = await createUserWithKey(db, args);
      print({ user: userJson(user), key });
    },
  },
  {
    name: 'users list',
    usage: '',
    summary: 'Prints every user, oldest first, one JSON line each, with how many active keys they hold.',
    args: nothing,
    async run({ db }) {
      for (const user of await listUsers(db)) print({ ...userJson(user), active_keys: user.active_keys });
    },
  },
  {
    name: 'keys create',
    usage: '--email E [--name N]',
    summary: 'Creates an API key for an existing user; prints one JSON line {"user", "api_key", "key": "gp_live_..."}.',
    help: 'The key is shown once, here: use it to replace a lost one (then revoke the lost one). At most 5 active keys per user.',
    options: { email: { type: 'string' }, name: { type: 'string' } },
    args: z.object({ email, name: z.string().trim().min(1).max(100).default('cli') }),
    async run({ args, db }) {
      const user = await userByEmail(db, args.email);
      const { row, key } = await createApiKey(db, { userId: user.id, name: args.name });
      print({ user: { id: user.id, email: user.email }, api_key: apiKeyJson(row), key });
    },
  },
  {
    name: 'keys list',
    usage: '--email E',
    summary: "Prints a user's API keys, newest first, one JSON line each (revoked ones included; never the key itself).",
    options: { email: { type: 'string' } },
    args: z.object({ email }),
    async run({ args, db }) {
      const user = await userByEmail(db, args.email);
      const { rows } = await listApiKeys(db, user.id, { after: undefined, limit: 10_000 });
      for (const row of rows) print(apiKeyJson(row));
    },
  },
  {
    name: 'keys revoke',
    usage: '<id>',
    summary: 'Revokes the API key with this id (as `keys list` shows it); prints it as one JSON line.',
    help: 'A running server may accept the key for up to KEY_CACHE_TTL_SECONDS (30 s) more: the time it trusts a verified key.',
    positionals: ['id'],
    args: z.object({ id: z.uuid('must be an API key id (a UUID, as keys list prints it)') }),
    async run({ args, db }) {
      const key = await findApiKey(db, args.id);
      const revoked = key && (await revokeApiKey(db, { userId: key.user_id, id: key.id }));
      if (!revoked) throw new AppError({ code: 'NOT_FOUND', message: `No API key ${args.id}` });
      print(apiKeyJson(revoked));
    },
  },
  {
    name: 'migrate',
    usage: '',
    summary: 'Runs pending migrations (the server runs them at start-up too).',
    args: nothing,
    // The migrations ran before `run`, as for every command; it only says what they did.
    async run({ applied }) {
      process.stderr.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n');
    },
  },
  {
    name: 'worker',
    usage: '',
    summary: 'Runs the background work alone (reminders, webhook deliveries) until SIGTERM; run the API with WORKER=false.',
    args: nothing,
    poolMax: (config) => config.DATABASE_POOL_MAX,
    run: ({ db, config }) => runWorker(db, config),
  },
  {
    name: 'mcp',
    usage: '--key K',
    summary: "Serves the MCP tools over stdio as the key's user, for local MCP clients (docs/mcp.md).",
    help: 'The key may come from GOALPOST_API_KEY instead. stdout carries the protocol alone, logs go to stderr; each tool call counts against the key\'s rate limit. Runs until the client closes stdin.',
    options: { key: { type: 'string' } },
    args: z.object({ key: z.string().min(1, 'is required (or set GOALPOST_API_KEY)').prefault(() => process.env.GOALPOST_API_KEY ?? '') }),
    run: ({ args, database, config }) => serveMcpStdio(database, config, args.key),
  },
];

const USAGE_FOOTER = `Options: --help after any command shows its help; goalpost --version prints the version.
All commands use DATABASE_URL, or the embedded database in DATA_DIR (default ./.data) when it is unset;
they migrate it first. Exit status: 0 done, 1 failed, 2 a usage error.`;

function usage(): string {
  const lines = COMMANDS.map((c) => `  goalpost ${c.name}${c.usage ? ` ${c.usage}` : ''}\n      ${c.summary}`);
  return `Usage:\n${lines.join('\n')}\n${USAGE_FOOTER}`;
}

function commandHelp(command: Command): string {
  return [`Usage: goalpost ${command.name}${command.usage ? ` ${command.usage}` : ''}`, '', command.summary, command.help]
    .filter((line) => line !== undefined)
    .join('\n');
}

/** A mistake in how the command was called: exit 2. */
class UsageError extends Error {}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function userJson(user: User) {
  return { id: user.id, email: user.email, name: user.name, role: user.role, created_at: user.created_at.toISOString() };
}

function apiKeyJson(row: ApiKeyRow) {
  const iso = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString());
  return {
    id: row.id,
    user_id: row.user_id,
    name: row.name,
    prefix: row.prefix,
    created_at: iso(row.created_at),
    last_used_at: iso(row.last_used_at as Date | null),
    revoked_at: iso(row.revoked_at as Date | null),
  };
}

async function userByEmail(db: Db, address: string): Promise<User> {
  const user = await findUserByEmail(db, address);
  if (!user) throw new AppError({ code: 'NOT_FOUND', message: `No user with email ${address} (goalpost users list shows them)` });
  return user;
}

function version(): string {
  // src/cli.ts sits one level below package.json, the compiled dist/src/cli.js two.
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'goalpost') return pkg.version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}

/** The command named by the first words of `argv`, and the rest; undefined when none is. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (command && argv.slice(0, words).every((w) => !w.startsWith('-'))) return { command, rest: argv.slice(words) };
  }
  return undefined;
}

/** The validated arguments of `command`; UsageError, in one line, on anything wrong. */
function parseCommandArgs(command: Command, rest: string[]): { help: boolean; args: unknown } {
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: (command.positionals?.length ?? 0) > 0,
      strict: true,
    });
  } catch (error) {
    // parseArgs explains at length (how to pass a value that starts with "-"): its first sentence is enough.
    const message = error instanceof Error ? error.message.split(/\.\s/)[0]!.replace(/\.$/, '') : String(error);
    throw new UsageError(`goalpost ${command.name}: ${message} (see goalpost ${command.name} --help)`);
  }
  if (parsed.values.help) return { help: true, args: undefined };
  const names = command.positionals ?? [];
  if (parsed.positionals.length > names.length) {
    throw new UsageError(`goalpost ${command.name}: unexpected argument "${parsed.positionals[names.length]}" (see goalpost ${command.name} --help)`);
  }
  const { help: _help, ...values } = parsed.values;
  const positionals = Object.fromEntries(names.map((name, i) => [name, parsed.positionals[i]]));
  const result = command.args.safeParse({ ...values, ...positionals });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = String(issue.path[0] ?? '');
    const what = names.includes(field) ? `<${field}>` : `--${field}`;
    const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
    throw new UsageError(`goalpost ${command.name}: ${what} ${message} (see goalpost ${command.name} --help)`);
  }
  return { help: false, args: result.data };
}

/**
 * Runs `goalpost <argv>`; answers the exit status. Output goes to stdout, every error to stderr as one line.
 *
 * @example process.exitCode = await runCli(['keys', 'list', '--email', 'ada@example.com']);
 */
export async function runCli(argv: string[]): Promise<number> {
  const [first, ...more] = argv;
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const named = findCommand(more);
    process[first === undefined ? 'stderr' : 'stdout'].write(`${named ? commandHelp(named.command) : usage()}\n`);
    return first === undefined ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const words = argv.filter((w) => !w.startsWith('-')).slice(0, 2).join(' ') || first;
    const names = COMMANDS.map((c) => c.name).join(', ');
    return fail(`goalpost: unknown command "${words}"; the commands are ${names} (goalpost --help)`, 2);
  }
  const { command, rest } = found;
  let parsed;
  try {
    parsed = parseCommandArgs(command, rest);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error), 2);
  }
  if (parsed.help) {
    process.stdout.write(`${commandHelp(command)}\n`);
    return 0;
  }

  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    return fail(error instanceof ConfigError ? error.message : String(error), 1);
  }
  let database;
  try {
    database = await openDatabase({
      databaseUrl: config.DATABASE_URL,
      dataDir: config.DATA_DIR,
      poolMax: command.poolMax?.(config) ?? 1,
      statementTimeoutMs: config.STATEMENT_TIMEOUT_MS,
      unavailableTimeoutMs: config.DB_UNAVAILABLE_TIMEOUT_MS,
    });
  } catch (error) {
    return fail(`goalpost ${command.name}: ${oneLine(error)}`, 1);
  }
  try {
    const applied = await migrateToLatest(database.db);
    await command.run({ args: parsed.args, db: database.db, database, config, applied });
    return 0;
  } catch (error) {
    return fail(`goalpost ${command.name}: ${oneLine(error)}`, 1);
  } finally {
    await database.close();
  }
}

function oneLine(error: unknown): string {
  const message = error instanceof AppError || error instanceof Error ? error.message : String(error);
  // An unreachable server says so by its code alone (ECONNREFUSED); a stack never reaches the terminal.
  const code = (error as { code?: unknown } | null)?.code;
  const text = message || (typeof code === 'string' ? code : 'failed');
  return text.replace(/\s*\n\s*/g, '; ');
}

function fail(message: string, status: number): number {
  process.stderr.write(`${message}\n`);
  return status;
}

/** The worker alone, until SIGTERM or SIGINT; the deliveries in flight finish first. */
async function runWorker(db: Db, config: Config) {
  const logger = createLogger(config.LOG_LEVEL);
  const worker = startWorker({ db, settings: webhookSettings(config), logger, pollMs: config.WORKER_POLL_MS });
  logger.info('worker started', { poll_ms: config.WORKER_POLL_MS });
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info('worker stopping', { signal });
  await worker.stop();
  logger.info('worker stopped', { signal });
}

runCli(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error) => {
    process.stderr.write(`goalpost: ${oneLine(error)}\n`);
    process.exitCode = 1;
  },
);
