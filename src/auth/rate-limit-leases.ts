import type { Redis } from 'ioredis';
import type postgres from 'postgres';

// Leases of a shared rate-limit budget (issue 22; the design and its exactness argument are in docs/decisions.md,
// "Rate limit leases"). The shared record — a `rate_limits` row, or a Redis hash — is the only authority: it holds
// how many units of the key's window have been handed out. A process takes a block of units in one statement and
// admits locally only units it holds, so the sum admitted in a window never exceeds the limit, over any number of
// processes. Blocks follow the process's demand for the key and shrink as the shared budget runs low (never more
// than 1/`divisor` of what is left, single units near the end); units unused for a while go back.

/** What a store answers to a request for a block of a key's budget. */
export interface Lease {
  /** Units now held by the caller: 0 when the window's budget is all handed out. */
  granted: number;
  /** Units of the window not handed out to anyone, after this grant. */
  unleased: number;
  /** Milliseconds until the window ends, by the store's clock, as the statement ran. */
  msLeft: number;
  /** The window's end by the store's clock: names the window when units go back. */
  windowEnd: string;
}

export interface LeaseReturn {
  key: string;
  units: number;
  windowEnd: string;
}

export interface LeaseStore {
  /** Hands out min(want, what is left, max(1, ⌊what is left ÷ divisor⌋)) units of `key`'s current window. */
  take(key: string, want: number): Promise<Lease>;
  /** Gives unused units back to the windows they came from (units of a window that has ended are dropped). */
  giveBack(returns: LeaseReturn[]): Promise<void>;
  /** Housekeeping every few minutes (rows of long-gone windows). */
  sweep?(): Promise<void>;
}

export interface LeaseSettings {
  limit: number;
  windowMs: number;
  /** A lease never takes more than 1/divisor of the units left in the window (at least 1). */
  divisor: number;
  /** The largest block, whatever the demand. */
  maxBlock: number;
  /** A block spent within this time asks for twice as much next time; one that lasted twice as long, for half. */
  spendMs: number;
  /** Units held but unused for this long go back to the shared budget (not below spendMs: steady traffic would give back). */
  idleMs: number;
  /** After the budget was found spent, how long a process refuses locally before asking the store again. */
  recheckMs: number;
}

export const DEFAULT_LEASE_SETTINGS: Omit<LeaseSettings, 'limit'> = {
  windowMs: 60_000,
  divisor: 8,
  maxBlock: 256,
  spendMs: 10_000,
  idleMs: 10_000,
  recheckMs: 1_000,
};

export interface LeaseVerdict {
  admitted: boolean;
  /** The shared units not yet handed out (as of this process's last lease) plus the units this process holds. */
  remaining: number;
  msLeft: number;
}

interface KeyState {
  held: number;
  unleased: number;
  /** performance.now() from which nothing of this window may be spent: never later than the window's real end. */
  deadline: number;
  windowEnd: string;
  want: number;
  leasedAt: number;
  lastGrant: number;
  lastUsed: number;
  /** While the window's budget is spent: refuse locally until then. */
  recheckAt: number;
  pending?: Promise<void>;
}

/**
 * Admits requests from leased blocks of each key's shared budget. `consume` rejects only when the store fails
 * (the caller falls back to its in-memory insurance limiter).
 *
 * @example const leases = new LeasedLimiter(postgresLeaseStore(sql, settings), settings);
 *          const { admitted, remaining, msLeft } = await leases.consume('rl:key:…');
 */
export class LeasedLimiter {
  private readonly keys = new Map<string, KeyState>();
  private readonly timer: NodeJS.Timeout;
  private lastStoreSweep = performance.now();

  constructor(
    private readonly store: LeaseStore,
    private readonly settings: LeaseSettings,
  ) {
    this.timer = setInterval(() => void this.sweep(), Math.min(1_000, settings.idleMs)).unref();
  }

  async consume(key: string): Promise<LeaseVerdict> {
    for (;;) {
      const now = performance.now();
      let s = this.keys.get(key);
      if (!s) {
        s = { held: 0, unleased: this.settings.limit, deadline: 0, windowEnd: '', want: 1, leasedAt: 0, lastGrant: 0, lastUsed: now, recheckAt: 0 };
        this.keys.set(key, s);
      }
      if (now >= s.deadline) {
        // The window is over (or about to be, by the store's clock): its units are not spent in the next one.
        s.held = 0;
        s.recheckAt = 0;
      }
      if (s.held > 0) {
        s.held -= 1;
        s.lastUsed = now;
        // A block of some size running low: the next one is asked for now, so that no request waits for it.
        if (!s.pending && s.lastGrant >= 4 && s.held <= s.lastGrant / 4) this.startLease(key, s, now).catch(() => {});
        return { admitted: true, remaining: s.unleased + s.held, msLeft: s.deadline - now };
      }
      if (s.pending) {
        await s.pending;
        continue;
      }
      if (now < s.recheckAt) return { admitted: false, remaining: 0, msLeft: s.deadline - now };
      await this.startLease(key, s, now);
    }
  }

  /** Gives back every unit held in a window that has not ended, and stops the timer. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const now = performance.now();
    const returns: LeaseReturn[] = [];
    for (const [key, s] of this.keys) {
      if (s.held > 0 && now < s.deadline) returns.push({ key, units: s.held, windowEnd: s.windowEnd });
      s.held = 0;
    }
    this.keys.clear();
    if (returns.length > 0) await this.store.giveBack(returns).catch(() => {});
  }

  private startLease(key: string, s: KeyState, now: number): Promise<void> {
    s.pending = this.lease(key, s, now).finally(() => {
      s.pending = undefined;
    });
    return s.pending;
  }

  private async lease(key: string, s: KeyState, now: number): Promise<void> {
    const { spendMs, maxBlock } = this.settings;
    if (s.leasedAt > 0) {
      const lasted = now - s.leasedAt;
      if (lasted < spendMs) s.want = Math.min(maxBlock, s.want * 2);
      else if (lasted >= 2 * spendMs) s.want = Math.max(1, Math.floor(s.want / 2));
    }
    // The deadline counts from before the statement was sent: the store's window ends no earlier than that.
    const sentAt = performance.now();
    const lease = await this.store.take(key, s.want);
    const answeredAt = performance.now();
    // Units still held are kept if they are of the same window; a new window means theirs ended before the statement ran.
    s.held = lease.windowEnd === s.windowEnd && answeredAt < s.deadline ? s.held + lease.granted : lease.granted;
    s.lastGrant = lease.granted;
    s.unleased = lease.unleased;
    s.deadline = sentAt + lease.msLeft;
    s.windowEnd = lease.windowEnd;
    s.leasedAt = answeredAt;
    s.lastUsed = answeredAt;
    s.recheckAt = lease.granted === 0 ? Math.min(s.deadline, answeredAt + this.settings.recheckMs) : 0;
  }

  /** Gives back units idle for `idleMs`, forgets keys whose window is over, and lets the store tidy up. */
  private async sweep(): Promise<void> {
    const now = performance.now();
    const returns: LeaseReturn[] = [];
    for (const [key, s] of this.keys) {
      if (s.pending) continue;
      if (now >= s.deadline) this.keys.delete(key);
      else if (s.held > 0 && now - s.lastUsed >= this.settings.idleMs) {
        returns.push({ key, units: s.held, windowEnd: s.windowEnd });
        s.unleased += s.held;
        s.held = 0;
        s.leasedAt = 0;
      }
    }
    if (returns.length > 0) await this.store.giveBack(returns).catch(() => {});
    if (this.store.sweep && now - this.lastStoreSweep >= 5 * 60_000) {
      this.lastStoreSweep = now;
      await this.store.sweep().catch(() => {});
    }
  }
}

/** The units a lease of `want` gets from a window with `left` units not handed out. */
export function blockOf(want: number, left: number, divisor: number): number {
  return Math.max(0, Math.min(want, left, Math.max(1, Math.floor(left / divisor))));
}

/**
 * Leases from the `rate_limits` table (db/0001, `granted` from db/0009): a row's `points` are the units handed out in
 * the window ending at `expire` (ms, the database's clock). The same rows rate-limiter-flexible kept, so a rolling
 * upgrade shares the budget with processes of the version before.
 *
 * One statement at a time per store, carrying every lease asked for while the last one ran: each statement's commit
 * waits for a WAL flush, and on a loaded machine one flush per lease queued leases behind each other
 * (docs/performance.md, rate-limit leases). Rows are locked in key order, in every statement here, so that two
 * processes' statements cannot deadlock.
 */
export function postgresLeaseStore(sql: postgres.Sql, settings: LeaseSettings): LeaseStore {
  const { limit, windowMs, divisor } = settings;
  // `now` is statement_timestamp(), the same in every expression. A new row's grant comes from the caller (`fresh`,
  // blockOf over the whole limit); a running window's from the row. The inserted `granted` carries the want, read by
  // the conflict branch as excluded.granted; what a row answers is least(granted, points), which is the grant on
  // every path (a new row: fresh ≤ want; an updated one: points ≥ the grant just added).
  const take = `
    insert into rate_limits as r (key, points, expire, granted)
    select u.key, u.fresh, (extract(epoch from statement_timestamp()) * 1000)::bigint + $4::int, u.want
    from unnest($1::text[], $2::int[], $3::int[]) as u(key, want, fresh)
    order by u.key
    on conflict (key) do update set
      points = case when r.expire is null or r.expire <= excluded.expire - $4::int then excluded.points
        else r.points + least(excluded.granted, greatest(0, $5::int - r.points), greatest(1, greatest(0, $5::int - r.points) / $6::int)) end,
      granted = case when r.expire is null or r.expire <= excluded.expire - $4::int then excluded.points
        else least(excluded.granted, greatest(0, $5::int - r.points), greatest(1, greatest(0, $5::int - r.points) / $6::int)) end,
      expire = case when r.expire is null or r.expire <= excluded.expire - $4::int then excluded.expire else r.expire end
    returning key, least(granted, points) as granted, greatest(0, $5::int - points) as unleased,
      (expire - (extract(epoch from statement_timestamp()) * 1000)::bigint)::int as ms_left, expire::text as window_end`;
  // Units back into the window they came from (`expire` matches), as an upsert so that rows lock in key order; a row
  // that is gone comes back with nothing handed out.
  const giveBack = `
    insert into rate_limits as r (key, points, expire, granted)
    select u.key, 0, u.expire, u.units from unnest($1::text[], $2::int[], $3::bigint[]) as u(key, units, expire)
    order by u.key
    on conflict (key) do update set
      points = case when r.expire = excluded.expire then greatest(0, r.points - excluded.granted) else r.points end`;

  type Waiting = { key: string; want: number; resolve(lease: Lease): void; reject(error: unknown): void };
  let queue: Waiting[] = [];
  let running = false;
  function send(): void {
    if (running || queue.length === 0) return;
    // A key once per statement (ON CONFLICT updates a row once); a second lease of it waits for the next one.
    const seen = new Set<string>();
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    for (const w of queue) {
      if (seen.has(w.key)) rest.push(w);
      else {
        seen.add(w.key);
        batch.push(w);
      }
    }
    queue = rest;
    running = true;
    const params = [batch.map((w) => w.key), batch.map((w) => w.want), batch.map((w) => blockOf(w.want, limit, divisor)), windowMs, limit, divisor];
    sql
      .unsafe<{ key: string; granted: number; unleased: number; ms_left: number; window_end: string }[]>(take, params as never[], { prepare: true })
      .then(
        (rows) => {
          const byKey = new Map(rows.map((row) => [row.key, row]));
          for (const w of batch) {
            const row = byKey.get(w.key);
            if (row) w.resolve({ granted: row.granted, unleased: row.unleased, msLeft: row.ms_left, windowEnd: row.window_end });
            else w.reject(new Error(`no lease answered for ${w.key}`));
          }
        },
        (error: unknown) => {
          for (const w of batch) w.reject(error);
        },
      )
      .finally(() => {
        running = false;
        send();
      });
  }

  return {
    take(key, want) {
      return new Promise<Lease>((resolve, reject) => {
        queue.push({ key, want, resolve, reject });
        send();
      });
    },
    async giveBack(returns) {
      const params = [returns.map((r) => r.key), returns.map((r) => r.units), returns.map((r) => r.windowEnd)];
      await sql.unsafe(giveBack, params as never[], { prepare: true });
    },
    async sweep() {
      // Rows of windows that ended an hour ago, as rate-limiter-flexible cleared them.
      await sql.unsafe(`delete from rate_limits where expire < (extract(epoch from statement_timestamp()) * 1000)::bigint - 3600000`);
    },
  };
}

// KEYS[1]: the key (a hash of `taken` and `end`, ms by Redis's clock); ARGV: want, limit, divisor, window ms.
const TAKE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'taken', 'end')
local taken, wend = tonumber(v[1]), tonumber(v[2])
if not wend or wend <= now then
  taken = 0
  wend = now + tonumber(ARGV[4])
end
local left = math.max(0, tonumber(ARGV[2]) - taken)
local grant = math.min(tonumber(ARGV[1]), left, math.max(1, math.floor(left / tonumber(ARGV[3]))))
redis.call('HSET', KEYS[1], 'taken', taken + grant, 'end', string.format('%d', wend))
redis.call('PEXPIREAT', KEYS[1], wend)
return {grant, left - grant, wend - now, string.format('%d', wend)}`;

// KEYS[1]: the key; ARGV: units, the window's end. Only into the window the units came from.
const GIVE_BACK_LUA = `
if redis.call('HGET', KEYS[1], 'end') == ARGV[2] then
  redis.call('HINCRBY', KEYS[1], 'taken', -tonumber(ARGV[1]))
end
return 0`;

type LeaseCommands = {
  rlTake(key: string, want: number, limit: number, divisor: number, windowMs: number): Promise<[number, number, number, string]>;
  rlGiveBack(key: string, units: number, windowEnd: string): Promise<number>;
};

/** Leases from Redis: the same statement as Postgres's, as one Lua script (EVALSHA) per lease. */
export function redisLeaseStore(redis: Redis, settings: LeaseSettings): LeaseStore {
  const { limit, windowMs, divisor } = settings;
  if (!('rlTake' in redis)) {
    redis.defineCommand('rlTake', { numberOfKeys: 1, lua: TAKE_LUA });
    redis.defineCommand('rlGiveBack', { numberOfKeys: 1, lua: GIVE_BACK_LUA });
  }
  const commands = redis as unknown as LeaseCommands;
  return {
    async take(key, want) {
      const [granted, unleased, msLeft, windowEnd] = await commands.rlTake(key, want, limit, divisor, windowMs);
      return { granted, unleased, msLeft, windowEnd };
    },
    async giveBack(returns) {
      await Promise.all(returns.map((r) => commands.rlGiveBack(r.key, r.units, r.windowEnd)));
    },
  };
}
