import type { PostgresJSDialectConfig } from 'kysely-postgres-js';
import type postgres from 'postgres';

/**
 * What Kysely's postgres.js dialect gets instead of the client itself: connections without postgres.js's
 * `reserve()`. In postgres.js 3.4.9, `reserve()` breaks when the database goes away and comes back: a
 * reserve whose connect fails stays queued and later takes a connection to nobody (the next request
 * hangs for ever), and a reserved connection that closed is put back in the pool, where the next write
 * throws from a `setImmediate` and ends the process (porsager/postgres#1154, #1208).
 *
 * Here, queries outside a transaction go to the pool's ordinary path, which fails cleanly
 * (ECONNREFUSED → 503) and reconnects by itself. `begin` … `commit`/`rollback`, as Kysely's driver
 * sends them, run inside `sql.begin()`, which holds one connection for the transaction; once that
 * connection is lost nothing more is written to it. Closing waits at most 5 s. So `db.connection()` outside a transaction does not
 * pin a session (nothing here relies on one), and a cursor (`.stream()`) works outside transactions only.
 *
 * @example new PostgresJSDialect({ postgres: withoutReserve(sql) })
 */
export function withoutReserve(sql: postgres.Sql): PostgresJSDialectConfig['postgres'] {
  const client = () => {
    throw new Error('withoutReserve: use reserve()');
  };
  const prepare = preparedStatements();
  return Object.assign(client, {
    reserve: async () => new Session(sql, prepare),
    // Bounded: a connection that died in the middle of a query is never "ended" by postgres.js 3.4.9, and
    // closing would wait for it for ever. After 5 s the rest is destroyed.
    end: () => sql.end({ timeout: 5 }),
  }) as unknown as PostgresJSDialectConfig['postgres'];
}

/**
 * How many distinct SQL texts run as named prepared statements; any further text runs unprepared.
 *
 * Why prepare: postgres.js sends a query with parameters that is not prepared in two round trips (Parse +
 * Describe, wait for the parameter types, then Bind + Execute), and the server parses and plans it each
 * time. A prepared one is a single Bind + Execute on a plan the connection keeps. Measured with
 * `npm run bench` (goals.get): two round trips and ~5× the Postgres CPU per request without it.
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
function preparedStatements(): (text: string, parameters: unknown[]) => { prepare: boolean } {
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
const result = (command: string) => Object.assign([], { command, count: 0 });

interface Transaction {
  sql?: postgres.TransactionSql;
  settle(commit: boolean): void;
  done?: Promise<unknown>;
  /** The connection is gone: the server rolled back, and nothing may be written to it any more. */
  closed: boolean;
}

/** One Kysely "connection": the pool, or the transaction it has begun. */
class Session {
  #tx: Transaction | undefined;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly prepare: (text: string, parameters: unknown[]) => { prepare: boolean },
  ) {}

  unsafe(text: string, parameters: unknown[] = []): unknown {
    const tx = this.#tx;
    if (!tx) {
      const begin = /^\s*(?:begin|start\s+transaction)\b(.*)$/is.exec(text);
      return begin ? this.#begin(begin[1]!) : this.sql.unsafe(text, parameters as never[], this.prepare(text, parameters));
    }
    if (/^\s*commit\s*$/i.test(text)) return this.#end(tx, true);
    if (/^\s*rollback\s*$/i.test(text)) return this.#end(tx, false);
    if (tx.closed || !tx.sql) return Promise.reject(closedError());
    return tx.sql.unsafe(text, parameters as never[], this.prepare(text, parameters)).catch((error: { code?: unknown }) => {
      if (typeof error?.code === 'string' && lostConnection.has(error.code)) tx.closed = true;
      throw error;
    });
  }

  release(): void {
    if (this.#tx) this.#end(this.#tx, false).catch(() => {});
  }

  #begin(options: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let started = false;
      const tx: Transaction = { settle: () => {}, closed: false };
      const finished = new Promise<void>((commit, rollback) => {
        tx.settle = (ok) => (ok ? commit() : rollback(ROLLBACK));
      });
      tx.done = this.sql.begin(options, async (sql) => {
        started = true;
        tx.sql = sql;
        this.#tx = tx;
        resolve(result('BEGIN'));
        await finished;
      });
      tx.done.catch((error) => {
        tx.closed = true;
        if (!started) reject(error);
      });
    });
  }

  async #end(tx: Transaction, commit: boolean): Promise<unknown> {
    this.#tx = undefined;
    if (tx.closed) {
      if (commit) throw closedError();
      return result('ROLLBACK');
    }
    tx.settle(commit);
    try {
      await tx.done;
    } catch (error) {
      if (error !== ROLLBACK) throw error;
    }
    return result(commit ? 'COMMIT' : 'ROLLBACK');
  }
}
