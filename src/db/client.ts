import { mkdirSync, openSync, closeSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kysely } from 'kysely';
import postgres from 'postgres';
import { Availability } from './availability.ts';
import { PostgresJsDialect } from './dialect.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  /** The raw postgres.js client, for the few places that want it (rate-limit store, readiness). */
  sql: postgres.Sql;
  /** `postgres` for a server, `embedded` for PGlite under DATA_DIR. */
  kind: 'postgres' | 'embedded';
  /** The deadline of queries while a Postgres server is away (none for the embedded database, which cannot be). */
  availability?: Availability;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  databaseUrl?: string;
  dataDir?: string;
  poolMax?: number;
  /** A Postgres server cancels any statement running longer (0 = never), so no request hangs on one. */
  statementTimeoutMs?: number;
  /**
   * DB_UNAVAILABLE_TIMEOUT_MS: a query that gets no answer from a Postgres server within this fails (503). 0 turns
   * the deadline off (tests that reach the embedded database through its socket: it takes one connection only).
   */
  unavailableTimeoutMs?: number;
}

/** The default of DB_UNAVAILABLE_TIMEOUT_MS. */
export const UNAVAILABLE_TIMEOUT_MS = 1000;

/**
 * Opens Postgres through postgres.js and Kysely. Without a URL it starts PGlite under `dataDir`,
 * serves it on a loopback socket and connects the same driver to it, so there is one driver path.
 *
 * @example const { db, close } = await openDatabase({ databaseUrl: process.env.DATABASE_URL });
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    const timeoutMs = options.unavailableTimeoutMs ?? UNAVAILABLE_TIMEOUT_MS;
    const sql = createClient(options.databaseUrl, {
      max: options.poolMax ?? 10,
      connection: options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {},
      timeoutMs,
    });
    const availability =
      timeoutMs > 0 ? new Availability({ timeoutMs, probe: createClient(options.databaseUrl, { max: 1, timeoutMs, probe: true }) }) : undefined;
    const db = new Kysely<Database>({ dialect: new PostgresJsDialect(sql, availability) });
    return {
      db,
      sql,
      kind: 'postgres',
      availability,
      close: async () => {
        await availability?.close();
        await db.destroy();
      },
    };
  }
  const embedded = await startEmbedded(options.dataDir ?? './.data');
  // PGlite is one session: postgres.js must hold exactly one connection to it.
  const sql = createClient(embedded.url, { max: 1 });
  const db = new Kysely<Database>({ dialect: new PostgresJsDialect(sql) });
  return {
    db,
    sql,
    kind: 'embedded',
    close: async () => {
      await db.destroy();
      await embedded.stop();
    },
  };
}

/**
 * A postgres.js client. Against a server that may go away (`timeoutMs` given), reconnection is flat and short: the
 * default backoff grows per failed attempt up to 20 s, and requests queued behind a reconnecting connection waited
 * for it long after the server was back (docs/decisions.md, Fail fast). A connection attempt is bounded by twice the
 * deadline (2 s at least); a request's own wait is bounded by `Availability`, not by this.
 */
function createClient(
  url: string,
  options: { max: number; connection?: Record<string, number>; timeoutMs?: number; probe?: boolean },
): postgres.Sql {
  const timeoutMs = options.timeoutMs || undefined;
  return postgres(url, {
    max: options.max,
    connection: options.connection ?? {},
    onnotice: () => {},
    connect_timeout: timeoutMs === undefined ? 10 : Math.max(2, (2 * timeoutMs) / 1000),
    ...(timeoutMs !== undefined && { backoff: () => 0.05 + Math.random() * 0.1 }),
    // The probe keeps its one connection open (no idle timeout, as the pool) and asks for no types: a probe is then
    // one round trip, not a connection's start-up, which a busy server may take longer than the deadline to give.
    ...(options.probe && { fetch_types: false }),
  });
}

interface Embedded {
  url: string;
  stop(): Promise<void>;
}

/** Starts PGlite under `dataDir` behind a lock file, served on a random loopback port. */
export async function startEmbedded(dataDir: string): Promise<Embedded> {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const releaseLock = acquireLock(join(dir, 'goalpost.lock'));
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
    const pglite = await PGlite.create(join(dir, 'pgdata'));
    const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: 0 });
    await server.start();
    return {
      url: `postgres://postgres@${server.getServerConn()}/postgres`,
      async stop() {
        await server.stop();
        await pglite.close();
        releaseLock();
      },
    };
  } catch (error) {
    releaseLock();
    throw error;
  }
}

/**
 * PGlite does not lock its data directory, and two processes writing one corrupt it. The lock file
 * holds the owner's pid; a lock left by a dead process is taken over.
 */
function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number(readFileSync(path, 'utf8'));
      // An empty file is a lock being written this instant by another process: in use, not stale.
      if (!pid || (pid !== process.pid && isAlive(pid))) {
        throw new Error(
          `The embedded database in ${path.replace(/goalpost\.lock$/, '')} is in use by process ${pid || 'starting now'}. ` +
            'Stop it, or set DATA_DIR to another directory, or DATABASE_URL to a Postgres server.',
        );
      }
      unlinkSync(path);
    }
  }
  throw new Error(`could not lock ${path}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
