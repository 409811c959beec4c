import type postgres from 'postgres';

/** The `code` of the error a query fails with when the database cannot be reached within the deadline. */
export const DATABASE_UNAVAILABLE = 'DATABASE_UNAVAILABLE';

/** Error codes of postgres.js and Node that mean the connection, not the statement, failed. */
const connectionFailures = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

/** Between two probes while the database is away: what bounds recovery after it returns. */
const PROBE_EVERY_MS = 100;

export interface AvailabilityOptions {
  /** DB_UNAVAILABLE_TIMEOUT_MS: how long a query may wait for a database that answers nothing at all. */
  timeoutMs: number;
  /** A client of its own (one connection) that asks `select 1`: pool saturation does not make it late. */
  probe: postgres.Sql;
}

interface Watched {
  startedAt: number;
  fail(error: Error): void;
}

/**
 * Fails fast while the database is away. Every query runs under a deadline of `timeoutMs`: a query that has
 * waited that long while the database answered nothing at all (no other query, no probe) fails with DATABASE_UNAVAILABLE, whatever the driver is doing (reconnecting, connecting, or waiting on a
 * connection that died silently). A query not yet sent is taken out of the driver's queue so that it never runs
 * later; one already sent may or may not have committed. A slow query on a database that answers others is left
 * alone (STATEMENT_TIMEOUT_MS bounds it).
 *
 * A connection failure, or a query at a quarter of its deadline with no answer seen, starts a probe (`select 1` on a
 * warm connection of its own, within half the deadline). A probe refused, or unanswered while nothing else was answered
 * either, marks the database down: every query waiting is failed at once and new ones fail without reaching the
 * driver, while a probe runs every 100 ms; the first answer marks it up. So 503s come within the deadline, and
 * service resumes about 100 ms after the database returns.
 *
 * @example const availability = new Availability({ timeoutMs: 1000, probe: postgres(url, { max: 1 }) });
 *          const rows = await availability.watch(sql.unsafe('select 1'), cancelUnsent);
 */
export class Availability {
  readonly #options: AvailabilityOptions;
  readonly #watched = new Set<Watched>();
  readonly #timer: NodeJS.Timeout;
  #down = false;
  /** When the database last answered anything (a row, an SQL error, a probe). */
  #lastAnswer = performance.now();
  #probing = false;
  #closed = false;
  /** How often waiting queries are looked at: a query fails within one tick before its deadline. */
  readonly #tickMs: number;

  constructor(options: AvailabilityOptions) {
    this.#options = options;
    this.#tickMs = Math.max(10, Math.min(50, options.timeoutMs / 20));
    this.#timer = setInterval(() => this.#sweep(), this.#tickMs);
    this.#timer.unref();
    // Its connection opened now, while the database is there: a probe is then one round trip.
    options.probe.unsafe('select 1').catch(() => {});
  }

  /** False while the database is known to be away (a probe failed and none answered since). */
  get available(): boolean {
    return !this.#down;
  }

  /**
   * Runs `work` under the deadline. `cancel` is called when the deadline passes, or at once while the database is
   * down: it should stop the work if it has not reached the database yet. A postgres.js query is lazy: while the
   * database is down it is never started at all.
   */
  watch<T>(work: PromiseLike<T>, cancel?: () => void): Promise<T> {
    if (this.#down) {
      this.#probe();
      cancel?.();
      return Promise.reject(unavailable());
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const entry: Watched = {
        startedAt: performance.now(),
        fail: (error) => {
          if (settled) return;
          settled = true;
          this.#watched.delete(entry);
          cancel?.();
          reject(error);
        },
      };
      this.#watched.add(entry);
      work.then(
        (value) => {
          this.#answered();
          if (settled) return;
          settled = true;
          this.#watched.delete(entry);
          resolve(value);
        },
        (error: unknown) => {
          // Once failed here, its rejection is the driver's withdrawal (57014), not an answer.
          if (settled) return;
          if (isConnectionFailure(error)) this.#probe();
          else this.#answered();
          settled = true;
          this.#watched.delete(entry);
          reject(error);
        },
      );
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const entry of this.#watched) entry.fail(unavailable());
    await this.#options.probe.end({ timeout: 1 });
  }

  /**
   * The database answered (a query, a probe; even one given up on, delivered late after a partition healed): it is
   * there again.
   */
  #answered(): void {
    this.#lastAnswer = performance.now();
    this.#down = false;
  }

  #sweep(): void {
    const now = performance.now();
    const { timeoutMs } = this.#options;
    for (const entry of this.#watched) {
      // How long this query has waited with no answer at all from the database: a slow query on a database that
      // answers others (or the probe) is only slow.
      const quiet = now - Math.max(entry.startedAt, this.#lastAnswer);
      if (quiet >= timeoutMs - this.#tickMs) entry.fail(unavailable());
      else if (quiet >= timeoutMs / 4) this.#probe();
    }
  }

  /**
   * Probes until the database answers (once when it does at once). Down: the probe was refused (a connection error),
   * or it got no answer within half the deadline while nothing else was answered either. A busy database that answers
   * late is not down: its queries fail one by one, at their own deadline, only if nothing at all is answered.
   */
  #probe(): void {
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    const startedAt = performance.now();
    void this.#ask(this.#options.timeoutMs / 2).then((answered) => {
      this.#probing = false;
      if (answered || this.#lastAnswer > startedAt) {
        this.#down = false;
        return;
      }
      if (!this.#down) {
        this.#down = true;
        // Everything waiting on an answer that is not coming fails now rather than at its own deadline.
        for (const entry of this.#watched) entry.fail(unavailable());
      }
      setTimeout(() => this.#probe(), PROBE_EVERY_MS).unref();
    });
  }

  /** `select 1` on the probe's own connection within `ms`; a probe not sent by then is withdrawn. */
  #ask(ms: number): Promise<boolean> {
    const query = this.#options.probe.unsafe('select 1');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        cancelUnsent(query);
        resolve(false);
      }, ms);
    });
    const answered = query.then(
      () => {
        this.#answered();
        return true;
      },
      (error: unknown) => !isConnectionFailure(error),
    );
    return Promise.race([answered, late]).finally(() => clearTimeout(timer));
  }
}

/** Takes a postgres.js query that has not been sent yet out of the driver's queue (it rejects with 57014). */
export function cancelUnsent(query: postgres.PendingQuery<any>): void {
  // `executed`: asked for (a query nobody awaited never runs, and its cancel would reject with nobody listening);
  // `state` null: not written to a connection yet.
  const internals = query as unknown as { executed: boolean; state: unknown };
  if (internals.executed && internals.state === null) void query.cancel();
}

export function unavailable(): Error {
  return Object.assign(new Error('The database did not answer within DB_UNAVAILABLE_TIMEOUT_MS'), { code: DATABASE_UNAVAILABLE });
}

function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && connectionFailures.has(code);
}
