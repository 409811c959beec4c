import {
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type postgres from 'postgres';
import { cancelUnsent, unavailable, type Availability } from './availability.ts';

/**
 * Kysely's dialect over a postgres.js client, without postgres.js's `reserve()`. Written here rather than taken
 * from `kysely-postgres-js` for two reasons.
 *
 * - `reserve()` breaks when the database goes away and comes back (postgres.js 3.4.9): a reserve whose connect
 *   fails stays queued and later takes a connection to nobody (the next request hangs for ever), and a reserved
 *   connection that closed is put back in the pool, where the next write throws from a `setImmediate` and ends
 *   the process (porsager/postgres#1154, #1208). Here, queries outside a transaction go to the pool's ordinary
 *   path, which fails cleanly (ECONNREFUSED → 503) and reconnects by itself. A transaction runs inside
 *   `sql.begin()`, which holds one connection for it; once that connection is lost nothing more is written to
 *   it. Closing waits at most 5 s.
 * - Kysely's runtime keeps every connection object a driver hands out in a `WeakSet`. `kysely-postgres-js` makes
 *   a new one per query, so that set gained an entry per query, each kept until a garbage collection clears it.
 *   Here a released connection is kept and handed out again, so Kysely sees as many as ran at once. Measured on
 *   `goals.get` against `kysely-postgres-js` with the same code otherwise: less server CPU and peak RSS
 *   (docs/performance.md).
 *
 * So `db.connection()` outside a transaction does not pin a session (nothing here relies on one), a cursor
 * (`.stream()`) works outside transactions only, and savepoints are not offered (nothing uses them). Transactions
 * go through Kysely's `transaction()`; `begin` sent as SQL is not one (it would run on a pooled connection).
 *
 * @example new Kysely<Database>({ dialect: new PostgresJsDialect(sql) })
 */
export class PostgresJsDialect implements Dialect {
  /** `availability`: the deadline of every query and transaction while the server is away (none embedded). */
  constructor(
    private readonly sql: postgres.Sql,
    private readonly availability?: Availability,
  ) {}

  createAdapter() {
    return new PostgresAdapter();
  }

  createDriver(): Driver {
    return new PostgresJsDriver(this.sql, this.availability);
  }

  createIntrospector(db: Kysely<any>) {
    return new PostgresIntrospector(db);
  }

  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}

/** Kysely connections handed out and not yet released, per postgres.js client: what the pool is asked to run. */
const inUse = new WeakMap<postgres.Sql, { sessions: number }>();

/**
 * How many queries and transactions run at once on `sql` through Kysely right now (statements sent straight to
 * postgres.js, such as the rate-limit store's, are not counted). The pool gauges of `/metrics` read it.
 *
 * @example const { max } = sql.options; const running = sessionsInUse(sql); // waiting: Math.max(0, running - max)
 */
export function sessionsInUse(sql: postgres.Sql): number {
  return inUse.get(sql)?.sessions ?? 0;
}

/** Released connections kept for reuse; beyond this many at once, the extra ones are dropped. */
const IDLE_SESSIONS_MAX = 256;

class PostgresJsDriver implements Driver {
  readonly #idle: Session[] = [];
  readonly #prepare = preparedStatements();
  readonly #usage: { sessions: number };

  constructor(
    private readonly sql: postgres.Sql,
    private readonly availability: Availability | undefined,
  ) {
    this.#usage = inUse.get(sql) ?? { sessions: 0 };
    inUse.set(sql, this.#usage);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    this.#usage.sessions++;
    return this.#idle.pop() ?? new Session(this.sql, this.#prepare, this.availability);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const options = [settings.isolationLevel && `isolation level ${settings.isolationLevel}`, settings.accessMode];
    await (connection as Session).begin(options.filter(Boolean).join(' '));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as Session).end(true);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as Session).end(false);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    this.#usage.sessions--;
    (connection as Session).release();
    if (this.#idle.length < IDLE_SESSIONS_MAX) this.#idle.push(connection as Session);
  }

  // Bounded: a connection that died in the middle of a query is never "ended" by postgres.js 3.4.9, and closing
  // would wait for it for ever. After 5 s the rest is destroyed.
  async destroy(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

/**
 * How many distinct SQL texts run as named prepared statements; any further text runs unprepared.
 *
 * Why prepare: postgres.js sends a query with parameters that is not prepared in two round trips (Parse +
 * Describe, wait for the parameter types, then Bind + Execute), and the server parses and plans it each
 * time. A prepared one is a single Bind + Execute on a plan the connection keeps. Measured with
 * `npm run bench` (goals.get): two round trips and several times the Postgres CPU per request without it
 * (docs/performance.md).
 *
 * Why a bound: postgres.js keeps every statement a connection prepared until the connection is recycled
 * (`max_lifetime`), and Postgres keeps it in that backend's memory. Kysely's SQL text varies with a
 * query's shape (an `in` list's length, the rows of a multi-row insert, the columns an update sets), so
 * the number of distinct texts is not bounded by the code alone. The hot statements are met first; past
 * the bound, new texts run as they did before (unprepared), so memory stays bounded whatever clients send.
 */
export const PREPARED_TEXTS_MAX = 500;

/**
 * Decides, per SQL text, whether it runs prepared: the first PREPARED_TEXTS_MAX texts with parameters met
 * do. (A text without parameters goes over the simple protocol, one round trip, and is never prepared.)
 */
function preparedStatements(): (text: string, parameters: readonly unknown[]) => { prepare: boolean } {
  const texts = new Set<string>();
  const yes = { prepare: true };
  const no = { prepare: false };
  return (text, parameters) => {
    if (parameters.length === 0) return no;
    if (texts.has(text)) return yes;
    if (texts.size >= PREPARED_TEXTS_MAX) return no;
    texts.add(text);
    return yes;
  };
}

const ROLLBACK = Symbol('rollback');
const lostConnection = new Set(['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);
const closedError = () =>
  Object.assign(new Error('The database connection closed during the transaction'), { code: 'CONNECTION_CLOSED' });
const writes = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

interface Transaction {
  sql?: postgres.TransactionSql;
  settle(commit: boolean): void;
  done?: Promise<unknown>;
  /** The connection is gone: the server rolled back, and nothing may be written to it any more. */
  closed: boolean;
  /** Given up on (the database did not answer within the deadline): rolled back when it answers again, if ever. */
  abandoned?: boolean;
}

/** One Kysely connection: the pool, or the transaction it has begun. Reused once released (see the driver). */
class Session implements DatabaseConnection {
  #tx: Transaction | undefined;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly prepare: (text: string, parameters: readonly unknown[]) => { prepare: boolean },
    private readonly availability: Availability | undefined,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.#run(query.sql, query.parameters);
    return {
      // postgres.js's result is an Array (its `map` and `slice` answer plain arrays): no copy.
      rows: result as unknown as R[],
      numAffectedRows: writes.has(result.command) ? BigInt(result.count) : undefined,
    };
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize = 100): AsyncIterableIterator<QueryResult<R>> {
    if (this.#tx) throw new Error('Streaming (a cursor) works outside transactions only');
    const rows = this.sql.unsafe(query.sql, query.parameters as never[], this.prepare(query.sql, query.parameters));
    for await (const chunk of rows.cursor(chunkSize)) yield { rows: chunk as unknown as R[] };
  }

  #run(text: string, parameters: readonly unknown[]): Promise<postgres.RowList<postgres.Row[]>> {
    const tx = this.#tx;
    const availability = this.availability;
    if (!tx) {
      const query = this.sql.unsafe(text, parameters as never[], this.prepare(text, parameters));
      // Past the deadline a query still queued in the driver is withdrawn: a request answered 503 never runs later.
      return availability ? availability.watch(query, () => cancelUnsent(query)) : query;
    }
    if (tx.closed || !tx.sql) return Promise.reject(closedError());
    const query = tx.sql.unsafe(text, parameters as never[], this.prepare(text, parameters));
    // In a transaction the statement is sent at once; past the deadline the transaction is given up (rolled back if
    // the connection ever answers again) and nothing more is written to it.
    const answer = availability ? availability.watch(query, () => this.#abandon(tx)) : query;
    return answer.catch((error: { code?: unknown }) => {
      if (typeof error?.code === 'string' && lostConnection.has(error.code)) tx.closed = true;
      throw error;
    });
  }

  #abandon(tx: Transaction): void {
    tx.closed = true;
    tx.abandoned = true;
    tx.settle(false);
  }

  /** Leaves no transaction open: one the caller did not end is rolled back. */
  release(): void {
    if (this.#tx) this.end(false).catch(() => {});
  }

  /** `BEGIN` with `options` (an isolation level, an access mode), held open in `sql.begin()` until `end`. */
  begin(options: string): Promise<void> {
    // While the database is known to be away, no BEGIN is queued in the driver to run when it is back.
    if (this.availability && !this.availability.available) return Promise.reject(unavailable());
    const tx: Transaction = { settle: () => {}, closed: false };
    const begun = new Promise<void>((resolve, reject) => {
      let started = false;
      const finished = new Promise<void>((commit, rollback) => {
        tx.settle = (ok) => (ok ? commit() : rollback(ROLLBACK));
      });
      tx.done = this.sql.begin(options, async (sql) => {
        started = true;
        // BEGIN answered after the deadline gave up on it: roll back at once, the caller is gone.
        if (tx.abandoned) throw ROLLBACK;
        tx.sql = sql;
        this.#tx = tx;
        resolve();
        await finished;
      });
      tx.done.catch((error) => {
        tx.closed = true;
        if (!started) reject(error);
      });
    });
    return this.availability ? this.availability.watch(begun, () => (tx.abandoned = true)) : begun;
  }

  /**
   * Commits or rolls back the open transaction. The session is free again at once, whatever the outcome. A rollback
   * with none open does nothing: Kysely rolls back after a commit that failed (which has ended the transaction),
   * and the commit's error is the one to report.
   */
  async end(commit: boolean): Promise<void> {
    const tx = this.#tx;
    this.#tx = undefined;
    if (!tx) {
      if (commit) throw new Error('commit without a transaction');
      return;
    }
    if (tx.closed) {
      if (commit) throw tx.abandoned ? unavailable() : closedError();
      return;
    }
    tx.settle(commit);
    try {
      await tx.done;
    } catch (error) {
      if (error !== ROLLBACK) throw error;
    }
  }
}
