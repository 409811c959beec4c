import type { Db } from '../db/client.ts';
import type { Logger } from '../logger.ts';
import type { WebhookSettings } from '../rpc/context.ts';
import { purgeExpiredKeys } from '../rpc/idempotency.ts';
import { attemptDelivery, leaseMs } from '../resources/webhooks/delivery.ts';
import {
  claimDueDeliveries,
  failAbandoned,
  fireDueReminders,
  msUntilNextDue,
  pruneDeliveries,
  type ClaimedDelivery,
} from '../resources/webhooks/queries.ts';

export interface WorkerOptions {
  db: Db;
  settings: WebhookSettings;
  logger: Logger;
  /** How often the queue is read when there was nothing to do (WORKER_POLL_MS). */
  pollMs: number;
  /** Attempts in flight at once in this process (default 64). */
  concurrency?: number;
  /** Delivered and failed deliveries are kept this many days. */
  retentionDays?: number;
  /** Told the outcome of each attempt (the `/metrics` counter): delivered, a retry scheduled, failed for good, or not recorded. */
  onOutcome?: (outcome: 'delivered' | 'retry' | 'failed' | 'unrecorded') => void;
}

export interface Worker {
  /** Takes no new work and waits for the attempts in flight to finish (each ends within WEBHOOK_TIMEOUT_MS). */
  stop(): Promise<void>;
}

const REMINDER_BATCH = 100;
/** Attempts in flight at once by default: they wait on receivers, not on this process. */
const CONCURRENCY = 64;
/** How often claims abandoned by a dead process are looked for, and old deliveries pruned. */
const SWEEP_EVERY_MS = 10_000;
/** The shortest wait between two ticks that found nothing to take. */
const MIN_WAIT_MS = 10;
const PRUNE_EVERY_MS = 60 * 60 * 1000;
/** Deliveries deleted by one prune: small enough to stay well inside STATEMENT_TIMEOUT_MS. */
const PRUNE_BATCH = 5000;
/** Expired idempotency keys deleted by one statement, and statements a sweep at most (more wait for the next sweep). */
const KEY_PURGE_BATCH = 5000;
const KEY_PURGE_BATCHES = 10;

/**
 * The background work of SPEC §5: turns due reminders into events and sends pending deliveries, in this process,
 * alongside any number of others (every step takes its rows with SKIP LOCKED or a claim, so two workers never send
 * one attempt twice). A failing database makes a tick fail and be tried again at the next one: nothing is lost, the
 * rows wait in Postgres.
 *
 * @example const worker = startWorker({ db, settings, logger, pollMs: 1000 }); … await worker.stop();
 */
export function startWorker(options: WorkerOptions): Worker {
  const worker = new QueueWorker(options);
  worker.schedule(0);
  return worker;
}

class QueueWorker implements Worker {
  readonly #options: WorkerOptions;
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  /** A slot freed while a tick ran: tick again at once after it. */
  #wake = false;
  /** The last tick failed (logged once per outage, not once a tick). */
  #failing = false;
  #lastSweep = 0;
  #lastPrune = 0;

  constructor(options: WorkerOptions) {
    this.#options = options;
  }

  /** Runs a tick after `ms`; 0 brings a waiting tick forward, or asks a running one for another right after. */
  schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#wake ||= ms === 0;
      return;
    }
    if (this.#timer !== undefined) {
      if (ms !== 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => this.#run(), ms);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
    await Promise.all(this.#inFlight);
  }

  #run(): void {
    this.#timer = undefined;
    this.#wake = false;
    this.#ticking = this.#tick().then((nextInMs) => {
      this.#ticking = undefined;
      this.schedule(this.#wake ? 0 : nextInMs);
    });
  }

  /**
   * One pass over the queue; answers when to look again: at once when there may be more to do, else when the next
   * reminder or retry is due, but after WORKER_POLL_MS at the latest (a reminder written meanwhile may be due sooner).
   */
  async #tick(): Promise<number> {
    const { db, settings, logger } = this.#options;
    try {
      let busy = (await fireDueReminders(db, REMINDER_BATCH)) === REMINDER_BATCH;
      const free = (this.#options.concurrency ?? CONCURRENCY) - this.#inFlight.size;
      if (free > 0 && !this.#stopped) {
        const claimed = await claimDueDeliveries(db, { limit: free, leaseMs: leaseMs(settings), maxAttempts: settings.maxAttempts });
        for (const delivery of claimed) this.#attempt(delivery);
        busy ||= claimed.length === free;
      }
      await this.#sweep();
      if (this.#failing) logger.info('worker: the queue is readable again');
      this.#failing = false;
      if (busy) return 0;
      // Every slot taken: the next attempt to finish wakes the worker (`#attempt`).
      if (free <= 0) return this.#options.pollMs;
      const next = await msUntilNextDue(db, settings.maxAttempts);
      // Not sooner than MIN_WAIT_MS: what is due now but was not taken is another process's (SKIP LOCKED) for a moment.
      return Math.min(Math.max(next ?? Infinity, MIN_WAIT_MS), this.#options.pollMs);
    } catch (error) {
      if (!this.#failing) logger.warn('worker: the queue cannot be read; retrying every poll', { error: String(error) });
      this.#failing = true;
      return this.#options.pollMs;
    }
  }

  #attempt(delivery: ClaimedDelivery): void {
    const { db, settings, logger, onOutcome } = this.#options;
    const done: Promise<void> = attemptDelivery(db, delivery, settings, { retry: true })
      .then((row) => onOutcome?.(row === undefined ? 'unrecorded' : row.status === 'pending' ? 'retry' : row.status))
      .catch((error) => {
        onOutcome?.('unrecorded');
        logger.warn('webhook delivery: the outcome of an attempt could not be recorded', { delivery_id: delivery.id, error: String(error) });
      })
      .finally(() => {
        this.#inFlight.delete(done);
        // A slot is free: look for more work now rather than at the next tick.
        this.schedule(0);
      });
    this.#inFlight.add(done);
  }

  /**
   * Now and then: deliveries whose last attempt's process died are failed, expired idempotency keys deleted, and old
   * deliveries pruned (in batches, one a sweep until none is left). Its own failures are logged and do not stop the tick.
   */
  async #sweep(): Promise<void> {
    const now = Date.now();
    if (now - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = now;
    try {
      await failAbandoned(this.#options.db, this.#options.settings.maxAttempts);
      // Expired idempotency keys (24 h old): bounded batches, a few a sweep at most.
      for (let i = 0; i < KEY_PURGE_BATCHES && (await purgeExpiredKeys(this.#options.db, KEY_PURGE_BATCH)) === KEY_PURGE_BATCH; i++);
      if (now - this.#lastPrune < PRUNE_EVERY_MS) return;
      const pruned = await pruneDeliveries(this.#options.db, { days: this.#options.retentionDays ?? 30, batch: PRUNE_BATCH });
      // A full batch: more is left, so the next sweep prunes again.
      if (pruned < PRUNE_BATCH) this.#lastPrune = now;
    } catch (error) {
      this.#options.logger.warn('worker: the sweep of old and abandoned deliveries or expired idempotency keys failed; trying again later', {
        error: String(error),
      });
    }
  }
}
