// The reminder path under load (`npm run bench`, step "reminders"): a Goalpost process with its worker on
// (WORKER=true, the default WORKER_POLL_MS=1000), a webhook per owner pointing at a loopback receiver in the bench
// process, and `action-items.create` requests, each item due 3 s after it was sent. After a warm-up of the same
// requests due a day later (for the JIT), two measured phases of the run's duration each:
//   1. paced: a fixed rate (--reminders-rate, default 200 creates/s) the worker can keep up with, request k scheduled
//      at the phase's start + k/rate s, over the same connections (each takes the next slot from a shared counter and
//      sleeps until it; a slot already past when taken is sent at once and counted as late);
//   2. an idle gap of DUE_IN_MS + 2 s, so that the paced phase's reminders all come due and are delivered;
//   3. saturated: full speed from 32 connections (the worker cannot keep up: the lag grows while the load lasts).
// Every acknowledged item's `action_item.due` must arrive once; the lag is its arrival time minus its `due_at`,
// reported per phase over that phase's own items.
//
// The bench process (run.ts) calls `measureReminders` and `reportReminders`. The same file, run as a script, is the
// load loop: its own process (as bench/load.ts), so that its event loop does not delay the receiver's timestamps.
// autocannon sends prebuilt bodies; here every body's `due_at` is computed when it is sent.
//
//   node --import tsx bench/reminders.ts '{"url":"http://127.0.0.1:8787/v1","fixture":"/tmp/…/fixture.json","owners":100,
//                                         "connections":32,"warmup":15,"duration":10,"pacedRate":200,"gapMs":5000,
//                                         "dueInMs":3000,"warmupDueInMs":86400000}'
// prints `{"measuring":true}` when the warm-up is over, `{"phase":"gap"}` and `{"phase":"saturated"}` when those begin,
// then one JSON line (`LoopResult`).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type postgres from 'postgres';
import type { Fixture } from './requests.ts';

/** When an item is due: this long after its create is sent. */
export const DUE_IN_MS = 3_000;
/**
 * The warm-up's items are due a day later: the same requests and the same trigger work (a reminder row each), but
 * none comes due during the bench, so the measured window starts without a backlog and its reminders are its own.
 */
const WARMUP_DUE_IN_MS = 86_400_000;
/** How long to wait for the last reminders after the last item came due. */
const GRACE_MS = 30_000;
/** The worker's poll interval under test: the default. */
export const POLL_MS = 1_000;
/** The idle time between the paced and the saturated phase: the paced phase's last items come due, and 2 s to deliver. */
export const GAP_MS = DUE_IN_MS + 2_000;
/** The paced phase's rate unless told (creates/s): well under what the worker delivers on 2 busy cores (~260/s). */
export const PACED_RATE = 200;
/** A paced slot taken this long after its time (or more) counts as late (below it is the clock's granularity). */
const LATE_MS = 1;

interface LoopOptions {
  url: string;
  fixture: string;
  owners: number;
  connections: number;
  warmup: number;
  duration: number;
  /** The paced phase's creates/s. */
  pacedRate: number;
  /** The idle time between the paced and the saturated phase, ms. */
  gapMs: number;
  dueInMs: number;
  warmupDueInMs: number;
}

/** One phase of the load loop (warm-up, paced or saturated). */
interface PhaseResult {
  /** Acknowledged (201) creates: the item's id and the `due_at` it was sent with (epoch ms). */
  ids: string[];
  dues: number[];
  /** Acknowledged only after their due time (their reminder may rightly never be scheduled). */
  ackedAfterDue: number;
  errors: number;
  non201: number;
  samples: string[];
  startedAt: number;
  endedAt: number;
}

/** The paced phase: its schedule, and how well the sends kept to it. */
interface PacedResult extends PhaseResult {
  rate: number;
  /** Slots in the phase (duration × rate), all sent. */
  scheduled: number;
  /** Slots already ≥ LATE_MS past when a connection took them (sent at once), and the latest of them, ms. */
  late: number;
  lateMaxMs: number;
}

interface LoopResult {
  warmup: PhaseResult;
  paced: PacedResult;
  /** The saturated phase (the name predates the paced phase). */
  measured: PhaseResult;
  /** The loop process's CPU time per create of the saturated phase, µs. */
  clientCpuUs: number;
}

// ---------------------------------------------------------------------------------------------------
// The load loop (this file run as a script).

async function loop(options: LoopOptions): Promise<void> {
  const fixture = JSON.parse(readFileSync(options.fixture, 'utf8')) as Fixture;
  const owners = fixture.owners.slice(0, options.owners).map((o) => ({
    headers: { 'content-type': 'application/json', authorization: `Bearer ${o.key}` },
    goals: o.goals,
  }));
  const newAgent = () => new http.Agent({ keepAlive: true, maxSockets: options.connections });
  let agent = newAgent();
  const url = new URL(options.url);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
  let serial = 0;

  /** One create; answers its status and body. */
  const post = (owner: (typeof owners)[number], body: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = http.request(
        { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...owner.headers, 'content-length': Buffer.byteLength(body) } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('error', reject);
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        },
      );
      request.setTimeout(10_000, () => request.destroy(new Error('timed out after 10 s')));
      request.on('error', reject);
      request.end(body);
    });

  const newPhase = (): PhaseResult => ({ ids: [], dues: [], ackedAfterDue: 0, errors: 0, non201: 0, samples: [], startedAt: Date.now(), endedAt: 0 });

  /** One create, due `dueInMs` after it is sent, recorded in `result`. */
  const create = async (result: PhaseResult, dueInMs: number) => {
    const owner = pick(owners);
    const n = serial++;
    const due = Date.now() + dueInMs;
    const body = JSON.stringify({
      resource: 'action-items',
      action: 'create',
      data: { description: `Remind me of call ${n}`, goal_id: pick(owner.goals), conversation_id: `conv-${n}`, due_at: new Date(due).toISOString() },
    });
    try {
      const answer = await post(owner, body);
      if (answer.status === 201) {
        result.ids.push((JSON.parse(answer.body) as { data: { id: string } }).data.id);
        result.dues.push(due);
        if (Date.now() >= due) result.ackedAfterDue++;
      } else {
        result.non201++;
        if (result.samples.length < 3) result.samples.push(`${answer.status} ${answer.body.slice(0, 500)}`);
      }
    } catch (error) {
      result.errors++;
      if (result.samples.length < 3) result.samples.push(String(error));
    }
  };

  /** Full speed: every connection sends its next create as soon as the last one is answered. */
  const phase = async (seconds: number, dueInMs: number): Promise<PhaseResult> => {
    const result = newPhase();
    const until = result.startedAt + seconds * 1000;
    const connection = async () => {
      while (Date.now() < until) await create(result, dueInMs);
    };
    await Promise.all(Array.from({ length: options.connections }, connection));
    result.endedAt = Date.now();
    return result;
  };

  /**
   * A fixed rate: request k is due to start at the phase's start + k/rate s. Each connection takes the next slot from
   * a shared counter and sleeps until its time; a slot already past is sent at once and counted as late.
   */
  const paced = async (seconds: number, rate: number, dueInMs: number): Promise<PacedResult> => {
    const scheduled = Math.floor(seconds * rate);
    const result: PacedResult = { ...newPhase(), rate, scheduled, late: 0, lateMaxMs: 0 };
    const start = performance.now();
    let next = 0;
    const connection = async () => {
      for (let k = next++; k < scheduled; k = next++) {
        const wait = start + (k * 1000) / rate - performance.now();
        if (-wait >= LATE_MS) {
          result.late++;
          result.lateMaxMs = Math.max(result.lateMaxMs, -wait);
        }
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await create(result, dueInMs);
      }
    };
    await Promise.all(Array.from({ length: options.connections }, connection));
    result.endedAt = Date.now();
    return result;
  };

  const warmup = await phase(options.warmup, options.warmupDueInMs);
  process.stdout.write(`${JSON.stringify({ measuring: true })}\n`);
  const pacedResult = await paced(options.duration, options.pacedRate, options.dueInMs);
  process.stdout.write(`${JSON.stringify({ phase: 'gap' })}\n`);
  await new Promise((resolve) => setTimeout(resolve, options.gapMs));
  // Fresh connections: the idle ones may be closing just now (Node's server keepAliveTimeout is 5 s, the gap as long).
  agent.destroy();
  agent = newAgent();
  process.stdout.write(`${JSON.stringify({ phase: 'saturated' })}\n`);
  const cpuAtStart = process.cpuUsage();
  const measured = await phase(options.duration, options.dueInMs);
  const { user, system } = process.cpuUsage(cpuAtStart);
  agent.destroy();
  const result: LoopResult = { warmup, paced: pacedResult, measured, clientCpuUs: (user + system) / Math.max(1, measured.ids.length) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await loop(JSON.parse(process.argv[2]!) as LoopOptions);
}

// ---------------------------------------------------------------------------------------------------
// The step (called by run.ts).

/** What the step needs of a started server (run.ts's `Server`). */
export interface ReminderServer {
  url: string;
  pid: number;
  child: ChildProcess;
  stderr(): string;
}

export interface ReminderOptions {
  /** Starts Goalpost with the worker on and private webhook URLs allowed, on the seeded database. */
  start: () => Promise<ReminderServer>;
  stop: (server: ReminderServer) => Promise<void>;
  /** Registers a child process so that run.ts stops it on any way out (Ctrl-C included). */
  track: (child: ChildProcess) => void;
  /** The seeded database (to read the delivery log, and to remove the step's webhooks and events afterwards). */
  db: postgres.Sql;
  /** The fixture file (owners and their keys, goals). */
  fixture: string;
  owners: number;
  connections: number;
  warmup: number;
  /** Seconds of each measured phase (paced, then saturated). */
  duration: number;
  /** The paced phase's creates/s (PACED_RATE unless told). */
  pacedRate?: number;
  /** Environment of the load-loop process. */
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

interface Lag {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** The paced phase: its creates and their reminders, apart from the saturated phase's. */
export interface PacedPhase {
  /** The rate asked for, creates/s, and the creates scheduled at it (duration × rate). */
  rate: number;
  scheduled: number;
  /** Acknowledged creates, and acknowledged ÷ the phase's elapsed time (first slot to last answer). */
  creates: { acknowledged: number; rps: number; elapsed_s: number; acked_after_due: number };
  /** Sends whose slot was already past (by ≥ 1 ms) when a connection took it, and the latest of them, ms. */
  late: number;
  late_max_ms: number;
  reminders: { expected: number; received: number; missing: number; missing_ids: string[] };
  /** Requests for the phase's items that the receiver got again with an event id it already had. */
  duplicates: number;
  items_with_several_events: number;
  /** Arrival − due_at per reminder of the phase's items (their first arrival). */
  lag_ms: Lag;
  /** Of its reminders, those that had arrived before the saturated phase started (after the idle gap). */
  received_before_saturated: number;
}

export interface RemindersResult {
  owners: number;
  connections: number;
  warmup_s: number;
  /** Seconds of each measured phase. */
  duration_s: number;
  due_in_ms: number;
  poll_ms: number;
  /** The paced phase (before the idle gap and the saturated phase). */
  paced: PacedPhase;
  /** The idle time between the paced and the saturated phase, s. */
  gap_s: number;
  // The keys below are the saturated phase's (32 connections at full speed), as before the paced phase was added.
  /** The saturated phase's creates (the warm-up's, due a day later, are not counted). */
  creates: { acknowledged: number; rps: number; elapsed_s: number; client_cpu_us: number; acked_after_due: number; warmup_acknowledged: number };
  /** Reminders of the items acknowledged in the saturated phase. */
  reminders: { expected: number; received: number; missing: number; missing_ids: string[] };
  /** Requests for the saturated phase's items that the receiver got again with an event id it already had. */
  duplicates: number;
  /**
   * Requests for items acknowledged in neither measured phase (the warm-up's, say; repeats included); requests that
   * were not action_item.due. Both phases.
   */
  unexpected: number;
  malformed: number;
  /** The saturated phase's items that got more than one distinct event. */
  items_with_several_events: number;
  /**
   * Arrival − due_at per reminder (its first arrival): of those that arrived while the creates still ran (their lag is
   * at most the load's duration − DUE_IN_MS), of those due while they ran (wherever they arrived), of those that
   * arrived after, and of all.
   */
  lag_ms: { during_load: Lag; due_during_load: Lag; after_load: Lag; overall: Lag };
  /** Reminders received per second while the creates ran (from the first due time) and after (the backlog drained). */
  reminders_per_s: { during_load: number; after_load: number };
  /** The delivery log afterwards (both phases), by status, and reminders left due but not taken. */
  deliveries: Record<string, number>;
  reminders_left_due: number;
  waited_s: number;
}

/** One `action_item.due` request the receiver got. */
interface Arrival {
  at: number;
  eventId: string;
  itemId: string;
  dueAt: number;
}

/** The loopback receiver: records every request, answers 200. */
async function startReceiver() {
  const arrivals: Arrival[] = [];
  let malformed = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = performance.timeOrigin + performance.now();
      try {
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string; type: string; data: { id: string; due_at: string } };
        if (event.type !== 'action_item.due') throw new Error(event.type);
        arrivals.push({ at, eventId: event.id, itemId: event.data.id, dueAt: Date.parse(event.data.due_at) });
      } catch {
        malformed++;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrivals,
    malformed: () => malformed,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function lagOf(arrivals: Arrival[]): Lag {
  const sorted = Float64Array.from(arrivals, (a) => a.at - a.dueAt).sort();
  const n = sorted.length;
  const at = (q: number) => (n === 0 ? NaN : sorted[Math.min(n - 1, Math.floor(q * n))]!);
  return { count: n, p50: at(0.5), p99: at(0.99), max: n === 0 ? NaN : sorted[n - 1]! };
}

/** Runs the load loop process; answers its result. */
async function runLoop(options: ReminderOptions, url: string, pacedRate: number): Promise<LoopResult> {
  const loopOptions: LoopOptions = {
    url,
    fixture: options.fixture,
    owners: options.owners,
    connections: options.connections,
    warmup: options.warmup,
    duration: options.duration,
    pacedRate,
    gapMs: GAP_MS,
    dueInMs: DUE_IN_MS,
    warmupDueInMs: WARMUP_DUE_IN_MS,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/reminders.ts', JSON.stringify(loopOptions)], {
    cwd: process.cwd(),
    env: options.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  options.track(child);
  let out = '';
  const marks: [string, string][] = [
    ['{"measuring":true}', `reminders: warm-up over, paced phase (${pacedRate} creates/s, ${options.duration} s)`],
    ['{"phase":"gap"}', `reminders: paced phase over, idle ${GAP_MS / 1000} s`],
    ['{"phase":"saturated"}', `reminders: saturated phase (${options.connections} connections, ${options.duration} s)`],
  ];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    for (const [mark, line] of marks) if (!out.includes(mark) && (out + chunk).includes(mark)) options.log(line);
    out += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the reminders load loop failed (${code})`);
  return JSON.parse(out.trim().split('\n').pop()!) as LoopResult;
}

/**
 * The step: server and receiver up, a webhook per owner, the warm-up, paced and saturated creates, then the wait for
 * every reminder (or GRACE_MS past the last due time). Server and receiver are stopped, and the step's webhooks and events
 * deleted, however it ends.
 */
export async function measureReminders(options: ReminderOptions): Promise<RemindersResult> {
  const { log } = options;
  const pacedRate = options.pacedRate ?? PACED_RATE;
  if (!(Number.isFinite(pacedRate) && pacedRate > 0)) throw new Error(`reminders: the paced rate must be a positive number of creates/s (got ${pacedRate})`);
  const receiver = await startReceiver();
  let server: ReminderServer | undefined;
  const fixture = JSON.parse(readFileSync(options.fixture, 'utf8')) as Fixture;
  const owners = fixture.owners.slice(0, options.owners);
  try {
    server = await options.start();
    log(`reminders: Goalpost ${server.url} (pid ${server.pid}, WORKER_POLL_MS=${POLL_MS}), receiver ${receiver.url}`);

    // A webhook per owner (default events: action_item.due), through the API, a few at a time.
    for (let i = 0; i < owners.length; i += 10) {
      await Promise.all(
        owners.slice(i, i + 10).map(async (owner) => {
          const response = await fetch(server!.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.key}` },
            body: JSON.stringify({ resource: 'webhooks', action: 'create', data: { url: receiver.url } }),
          });
          if (response.status !== 201) throw new Error(`webhooks.create answered ${response.status}: ${(await response.text()).slice(0, 500)}`);
        }),
      );
    }
    log(
      `reminders: ${owners.length} webhooks created; ${options.connections} connections, ${options.warmup} s warm-up, then ` +
        `${options.duration} s paced at ${pacedRate}/s, ${GAP_MS / 1000} s idle, ${options.duration} s saturated`,
    );

    const result = await runLoop(options, server.url, pacedRate);
    const { warmup, paced, measured } = result;
    const phases = [warmup, paced, measured];
    const errors = phases.reduce((n, p) => n + p.errors, 0);
    const non201 = phases.reduce((n, p) => n + p.non201, 0);
    if (errors + non201 > 0 || measured.ids.length === 0 || paced.ids.length === 0) {
      throw new Error(
        `reminders: ${errors} errors, ${non201} non-201 of the creates ` +
          `(${phases.reduce((n, p) => n + p.ids.length, 0)} acknowledged) — every request must succeed.\n` +
          `${phases.flatMap((p) => p.samples).join('\n')}\nserver stderr (tail):\n${server.stderr().slice(-3000)}`,
      );
    }
    const pacedElapsed = (paced.endedAt - paced.startedAt) / 1000;
    const pacedRps = paced.ids.length / pacedElapsed;
    const elapsed = (measured.endedAt - measured.startedAt) / 1000;
    const rps = measured.ids.length / elapsed;
    log(
      `reminders: paced ${paced.ids.length} creates acknowledged in ${pacedElapsed.toFixed(1)} s, ${pacedRps.toFixed(0)} req/s ` +
        `(${paced.late} late); saturated ${measured.ids.length} in ${elapsed.toFixed(1)} s, ${rps.toFixed(0)} req/s; waiting for the reminders`,
    );

    // Wait for every acknowledged item's reminder (both phases), or GRACE_MS past the last due time.
    const pacedIds = new Set(paced.ids);
    const saturatedIds = new Set(measured.ids);
    const expectedCount = pacedIds.size + saturatedIds.size;
    const isExpected = (itemId: string) => pacedIds.has(itemId) || saturatedIds.has(itemId);
    const lastDue = [...paced.dues, ...measured.dues].reduce((a, b) => Math.max(a, b), 0);
    const waitStart = Date.now();
    const arrivedItems = new Set<string>();
    let seen = 0;
    const arrived = () => {
      for (; seen < receiver.arrivals.length; seen++) {
        const { itemId } = receiver.arrivals[seen]!;
        if (isExpected(itemId)) arrivedItems.add(itemId);
      }
      return arrivedItems.size;
    };
    while (arrived() < expectedCount && Date.now() < lastDue + GRACE_MS) await new Promise((r) => setTimeout(r, 200));
    const waited = (Date.now() - waitStart) / 1000;

    // Counts: duplicates by event id (per phase, by the item's phase), reminders by item.
    const eventIds = new Set<string>();
    const eventsOfItem = new Map<string, Set<string>>();
    let pacedDuplicates = 0;
    let duplicates = 0;
    let unexpected = 0;
    for (const a of receiver.arrivals) {
      if (!isExpected(a.itemId)) unexpected++;
      else if (eventIds.has(a.eventId)) {
        if (pacedIds.has(a.itemId)) pacedDuplicates++;
        else duplicates++;
      }
      eventIds.add(a.eventId);
      const events = eventsOfItem.get(a.itemId) ?? new Set<string>();
      events.add(a.eventId);
      eventsOfItem.set(a.itemId, events);
    }
    const severalEvents = (ids: Set<string>) => [...ids].filter((id) => (eventsOfItem.get(id)?.size ?? 0) > 1).length;
    const pacedMissingIds = paced.ids.filter((id) => !eventsOfItem.has(id));
    const missingIds = measured.ids.filter((id) => !eventsOfItem.has(id));
    // The lag of each item's first arrival, per phase; the saturated phase's split by when it arrived: while its
    // creates still ran, or after.
    const firstArrival = new Map<string, Arrival>();
    for (const a of receiver.arrivals) if (isExpected(a.itemId) && !firstArrival.has(a.itemId)) firstArrival.set(a.itemId, a);
    const pacedFirsts = [...firstArrival.values()].filter((a) => pacedIds.has(a.itemId));
    const firsts = [...firstArrival.values()].filter((a) => saturatedIds.has(a.itemId));
    const during = firsts.filter((a) => a.at <= measured.endedAt);
    const after = firsts.filter((a) => a.at > measured.endedAt);
    const pacedLag = lagOf(pacedFirsts);
    const lag = {
      during_load: lagOf(during),
      due_during_load: lagOf(firsts.filter((a) => a.dueAt <= measured.endedAt)),
      after_load: lagOf(after),
      overall: lagOf(firsts),
    };
    // The first reminders come due DUE_IN_MS into the window: the rate while the load runs counts from then.
    const lastAt = (arrivals: Arrival[]) => arrivals.reduce((m, a) => Math.max(m, a.at), 0);
    const rate = (n: number, from: number, to: number) => (to <= from ? NaN : n / ((to - from) / 1000));
    const perS = {
      during_load: rate(during.length, measured.startedAt + DUE_IN_MS, measured.endedAt),
      after_load: rate(after.length, measured.endedAt, lastAt(after)),
    };

    // The delivery log, as a cross-check of what the receiver saw.
    const statuses = await options.db<{ status: string; n: number }[]>`
      select status, count(*)::int as n from webhook_deliveries where event_type = 'action_item.due' group by status`;
    const [left] = await options.db<{ n: number }[]>`select count(*)::int as n from action_items where remind_at <= now()`;

    const summary: RemindersResult = {
      owners: owners.length,
      connections: options.connections,
      warmup_s: options.warmup,
      duration_s: options.duration,
      due_in_ms: DUE_IN_MS,
      poll_ms: POLL_MS,
      paced: {
        rate: pacedRate,
        scheduled: paced.scheduled,
        creates: { acknowledged: paced.ids.length, rps: pacedRps, elapsed_s: pacedElapsed, acked_after_due: paced.ackedAfterDue },
        late: paced.late,
        late_max_ms: paced.lateMaxMs,
        reminders: {
          expected: paced.ids.length,
          received: paced.ids.length - pacedMissingIds.length,
          missing: pacedMissingIds.length,
          missing_ids: pacedMissingIds.slice(0, 20),
        },
        duplicates: pacedDuplicates,
        items_with_several_events: severalEvents(pacedIds),
        lag_ms: pacedLag,
        received_before_saturated: pacedFirsts.filter((a) => a.at < measured.startedAt).length,
      },
      gap_s: GAP_MS / 1000,
      creates: {
        acknowledged: measured.ids.length,
        rps,
        elapsed_s: elapsed,
        client_cpu_us: result.clientCpuUs,
        acked_after_due: measured.ackedAfterDue,
        warmup_acknowledged: warmup.ids.length,
      },
      reminders: { expected: measured.ids.length, received: measured.ids.length - missingIds.length, missing: missingIds.length, missing_ids: missingIds.slice(0, 20) },
      duplicates,
      unexpected,
      malformed: receiver.malformed(),
      items_with_several_events: severalEvents(saturatedIds),
      lag_ms: lag,
      reminders_per_s: perS,
      deliveries: Object.fromEntries(statuses.map((r) => [r.status, r.n])),
      reminders_left_due: left!.n,
      waited_s: waited,
    };
    const f = (v: number) => (Number.isNaN(v) ? '–' : v.toFixed(0));
    const p = summary.paced;
    log(
      `reminders: paced ${f(p.creates.rps)}/s: expected ${p.reminders.expected}, received ${p.reminders.received}, missing ${p.reminders.missing}, ` +
        `duplicates ${p.duplicates}; lag ms p50 ${f(pacedLag.p50)} p99 ${f(pacedLag.p99)} max ${f(pacedLag.max)}`,
    );
    log(
      `reminders: saturated: expected ${summary.reminders.expected}, received ${summary.reminders.received}, missing ${summary.reminders.missing}, ` +
        `duplicates ${duplicates}, unexpected ${unexpected}; lag ms during load p50 ${f(lag.during_load.p50)} p99 ${f(lag.during_load.p99)} ` +
        `max ${f(lag.during_load.max)} (${f(perS.during_load)}/s), overall p50 ${f(lag.overall.p50)} p99 ${f(lag.overall.p99)} ` +
        `max ${f(lag.overall.max)}`,
    );
    if (p.reminders.missing + p.duplicates + summary.reminders.missing + duplicates + unexpected + summary.malformed > 0) {
      log(`reminders: WARNING — missing, duplicated or unexpected reminders; server stderr (tail):\n${server.stderr().slice(-3000)}`);
    }
    return summary;
  } finally {
    if (server) await options.stop(server);
    await receiver.close();
    // Leave the seed as it was for the steps after this one: no webhooks, no events (their deliveries cascade).
    try {
      await options.db`delete from webhook_events`;
      await options.db`delete from webhooks`;
    } catch (error) {
      log(`reminders: could not remove the step's webhooks: ${String(error)}`);
    }
  }
}

/**
 * The report's section (markdown lines through `out`); answers the JSON. `mainCreateRps`: Goalpost's
 * action-items.create req/s in the comparison with the floor, when that ran.
 */
export function reportReminders(r: RemindersResult, out: (line?: string) => void, mainCreateRps?: number): Record<string, unknown> {
  const f = (v: number | undefined, digits = 0) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits));
  const p = r.paced;
  const pacedOk = p.reminders.missing === 0 && p.duplicates === 0;
  const saturatedOk = r.reminders.missing === 0 && r.duplicates === 0;
  const ok = pacedOk && saturatedOk && r.unexpected === 0 && r.malformed === 0;
  const pacedName = `paced ${f(p.rate)}/s`;
  const saturatedName = `saturated (${r.connections} connections)`;
  out(
    `### Reminders under load (action_item.due; WORKER=true, WORKER_POLL_MS=${r.poll_ms}; ${r.owners} owners with a webhook each, ` +
      `${r.duration_s} s paced at ${f(p.rate)} creates/s, then ${r.duration_s} s saturated with ${r.connections} connections, after ${r.warmup_s} s warm-up)`,
  );
  out();
  out(
    `Every measured \`action-items.create\` carries \`due_at\` = ${r.due_in_ms / 1000} s after it is sent; the worker inside the ` +
      'server turns each due reminder into an event and POSTs it to a loopback receiver in the bench process, which answers 200. ' +
      "Lag: arrival at the receiver − the item's `due_at`, per item (its first arrival), each phase over its own items. " +
      `Two phases: first ${pacedName} (request k scheduled at the phase's start + k/${f(p.rate)} s, over the same ` +
      `${r.connections} connections), a rate the worker can keep up with; then, after ${f(r.gap_s)} s idle (the paced items come ` +
      `due and are delivered), the creates at full speed, which the worker cannot keep up with.`,
  );
  out();
  out('| phase | creates/s | acknowledged | reminders expected | received | missing | duplicates | correct |');
  out('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  out(
    `| ${pacedName} | ${f(p.creates.rps)} | ${p.creates.acknowledged} | ${p.reminders.expected} | ${p.reminders.received} | ` +
      `${p.reminders.missing} | ${p.duplicates} | ${pacedOk ? 'yes' : '**no**'} |`,
  );
  out(
    `| ${saturatedName} | ${f(r.creates.rps)} | ${r.creates.acknowledged} | ${r.reminders.expected} | ${r.reminders.received} | ` +
      `${r.reminders.missing} | ${r.duplicates} | ${saturatedOk ? 'yes' : '**no**'} |`,
  );
  out();
  out(
    `Unexpected requests at the receiver (for items of neither phase, or not action_item.due): ${r.unexpected + r.malformed}. ` +
      `Correct overall: ${ok ? 'yes' : '**no**'}.`,
  );
  out();
  out('| phase | lag (arrival − due_at) | reminders | p50 ms | p99 ms | max ms |');
  out('| --- | --- | ---: | ---: | ---: | ---: |');
  const rows = [
    [pacedName, 'all', p.lag_ms],
    [saturatedName, 'arrived during the load', r.lag_ms.during_load],
    [saturatedName, 'due during the load', r.lag_ms.due_during_load],
    [saturatedName, 'overall', r.lag_ms.overall],
  ] as const;
  for (const [phase, name, lag] of rows) out(`| ${phase} | ${name} | ${lag.count} | ${f(lag.p50)} | ${f(lag.p99)} | ${f(lag.max)} |`);
  out();
  out(
    `Paced phase: ${p.scheduled} creates scheduled at ${f(p.rate)}/s, ${f(p.creates.rps, 1)}/s achieved (acknowledged ÷ ` +
      `${f(p.creates.elapsed_s, 1)} s from the first slot to the last answer); late sends (slot already past when a connection ` +
      `took it, sent at once): ${p.late}${p.late > 0 ? ` (at most ${f(p.late_max_ms)} ms late)` : ''}. ${p.reminders.received > 0 ? `${p.received_before_saturated} of its ${p.reminders.received} reminders` : 'None of its reminders'} ` +
      'arrived before the saturated phase started.',
  );
  out();
  out(
    `Saturated phase: reminders received while the creates ran: ${f(r.reminders_per_s.during_load)}/s (from the first due time, ${r.due_in_ms / 1000} s ` +
      `into the load, to its end), against ${f(r.creates.rps)} creates/s; after the load, the backlog drained at ` +
      `${f(r.reminders_per_s.after_load)}/s. While fewer arrive than are created, the lag grows as long as the load lasts, so the ` +
      `lag of those that *arrived* during the load is capped by the load's length (${r.duration_s} s − ${r.due_in_ms / 1000} s); ` +
      'those *due* during the load include the ones that waited for it to end.',
  );
  out();
  const deliveries = Object.entries(r.deliveries).map(([status, n]) => `${n} ${status}`).join(', ') || 'none';
  out(
    `Delivery log afterwards (action_item.due, both phases): ${deliveries}; reminders left due: ${r.reminders_left_due}; waited ` +
      `${f(r.waited_s, 1)} s after the load. The warm-up's ${r.creates.warmup_acknowledged} creates (the same requests, due a day ` +
      'later, so that none fires during the bench) are not counted. Creates acknowledged only after their due time: ' +
      `${p.creates.acked_after_due} paced, ${r.creates.acked_after_due} saturated.`,
  );
  out();
  out(
    `Saturated creates here: ${f(r.creates.rps)} req/s` +
      (mainCreateRps === undefined
        ? ' (action-items.create did not run against the floor in this bench).'
        : `; Goalpost's action-items.create against the floor above: ${f(mainCreateRps)} req/s (no webhooks there, items due in 2027).`) +
      ` The load loop is its own process on node:http (${f(r.creates.client_cpu_us)} µs of its CPU per saturated create); on a machine ` +
      'with few cores it competes for CPU with the server, its worker, Postgres and the receiver, so these req/s and lags ' +
      "are the machine's under all of that, not the server's alone.",
  );
  out();
  return { ...r, main_action_items_create_rps: mainCreateRps, correct: ok };
}
