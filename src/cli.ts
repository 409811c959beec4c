import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, loadConfig, webhookSettings, type Config } from './config.ts';
import { openDatabase, type Db } from './db/client.ts';
import { migrateToLatest } from './db/migrate.ts';
import { roles } from './db/schema.ts';
import { AppError } from './rpc/errors.ts';
import { createUserWithKey } from './resources/users/queries.ts';
import { startWorker } from './jobs/worker.ts';
import { createLogger } from './logger.ts';

const usage = `Usage:
  goalpost users create --email E [--name N] [--role standard_user|consumer|internal_admin]
      Creates a user and an API key; prints one JSON line {"user": {...}, "key": "gp_live_..."}.
  goalpost migrate
      Runs pending migrations.
  goalpost worker
      Runs the background work alone (reminders, webhook deliveries) until SIGTERM; run the API with WORKER=false.
All use DATABASE_URL, or the embedded database in DATA_DIR (default ./.data) when it is unset.`;

const userArgs = z.object({
  email: z.email(),
  name: z.string().min(1).max(200).optional(),
  role: z.enum(roles).default('standard_user'),
});

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

async function main(argv: string[]) {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { email: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const command = positionals.join(' ');
  if (values.help || !['users create', 'migrate', 'worker'].includes(command)) {
    if (values.help) return console.log(usage);
    fail(usage);
  }

  let config;
  try {
    config = loadConfig();
  } catch (error) {
    fail(error instanceof ConfigError ? error.message : String(error));
  }
  // Validated before the database opens: `fail` exits at once, which would leave an embedded database unclosed.
  const args = command === 'users create' ? userArgs.safeParse(values) : undefined;
  if (args && !args.success) fail(args.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n'));
  const database = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: command === 'worker' ? config.DATABASE_POOL_MAX : 2,
    statementTimeoutMs: config.STATEMENT_TIMEOUT_MS,
    unavailableTimeoutMs: config.DB_UNAVAILABLE_TIMEOUT_MS,
  });
  try {
    const applied = await migrateToLatest(database.db);
    if (command === 'worker') return await runWorker(database.db, config);
    if (command === 'migrate') {
      process.stderr.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n');
      return;
    }
    const { user, key } = await createUserWithKey(database.db, args!.data!);
    const out = { user: { id: user.id, email: user.email, name: user.name, role: user.role, created_at: user.created_at.toISOString() }, key };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } catch (error) {
    process.exitCode = 1;
    process.stderr.write(`${error instanceof AppError || error instanceof Error ? error.message : String(error)}\n`);
  } finally {
    await database.close();
  }
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
}

main(process.argv.slice(2)).catch((error) => fail(error instanceof Error ? error.message : String(error)));
