// The load generator, run as its own process (so it does not share an event loop with either server):
// autocannon at a fixed concurrency, a warm-up that is not counted, then the measured run. Latencies are
// recorded here from every response (autocannon's own histogram has 1 ms resolution), and the first
// non-2xx answers are kept so that a failing run says why.
//
//   node --import tsx bench/load.ts '{"url":"http://127.0.0.1:8787/v1","op":"goals.get","fixture":"/tmp/…/fixture.json",
//                                    "connections":32,"duration":10,"warmup":3[,"rate":2000]}'
// prints `{"measuring":true}` when the warm-up is over and the measured run starts (the caller reads the servers'
// CPU time there), then one JSON line: { rps, p50, p99, mean, requests, errors, timeouts, non2xx, samples, loadCpuUs }.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import autocannon, { type Instance } from 'autocannon';
import { buildPool, type Fixture, type Operation } from './requests.ts';

interface LoadOptions {
  url: string;
  op: Operation;
  fixture: string;
  connections: number;
  duration: number;
  warmup: number;
  /**
   * Requests per second, sent at an even pace (open loop) instead of as fast as answers come; see `runPaced`.
   */
  rate?: number;
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  mean: number;
  requests: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** The first few non-2xx answers, `status body`. */
  samples: string[];
  /** This process's CPU time per request over the measured run, µs (the client's share of the machine). */
  loadCpuUs: number;
}

const options = JSON.parse(process.argv[2]!) as LoadOptions;
const fixture = JSON.parse(readFileSync(options.fixture, 'utf8')) as Fixture;
// Reads rotate over (nearly) every goal; writes need fewer distinct bodies, and batches are large.
const pool = buildPool(options.op, fixture, options.op === 'action-items.batch-create' ? 2_000 : 20_000);

// A keyed operation sends a key never sent before, in every run: a repeated one would measure replays.
const keyPrefix = `bench-${process.pid}-${Date.now()}`;
let keysSent = 0;
const headersOf = (chosen: { headers: Record<string, string> }): Record<string, string> =>
  options.op === 'goals.create-keyed' ? { ...chosen.headers, 'idempotency-key': `${keyPrefix}-${keysSent++}` } : chosen.headers;

async function run(seconds: number) {
  let next = 0;
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let non2xx = 0;
  const samples: string[] = [];
  const instance: Instance = autocannon({
    url: options.url,
    connections: options.connections,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const chosen = pool[next++ % pool.length]!;
          request.headers = headersOf(chosen);
          request.body = chosen.body;
          return request;
        },
        onResponse: (status, body) => {
          if ((status < 200 || status > 299) && samples.length < 3) samples.push(`${status} ${body.slice(0, 500)}`);
        },
      },
    ],
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status < 200 || status > 299) non2xx++;
    if (count === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[count++] = ms;
  });
  const started = performance.now();
  const result = await instance;
  const elapsed = (performance.now() - started) / 1000;
  const sorted = latencies.subarray(0, count).sort();
  const at = (q: number) => (count === 0 ? NaN : sorted[Math.min(count - 1, Math.floor(q * count))]!);
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    rps: count / Math.min(elapsed, result.duration || elapsed),
    p50: at(0.5),
    p99: at(0.99),
    mean: count === 0 ? NaN : sum / count,
    requests: count,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: Math.max(non2xx, result.non2xx),
    samples,
    loadCpuUs: NaN,
  } satisfies LoadResult;
}

/**
 * `rate` requests a second for `seconds`, each sent when it is due (every millisecond, the ones due by then) over at
 * most `connections` keep-alive sockets; one that finds them all busy waits for one, and its latency counts from
 * when it was due, so a slow answer is not hidden by the requests it held back (no coordinated omission).
 * Not autocannon's `overallRate`: that sends each connection's quota of a second as fast as it can at the start of
 * the second and then waits, bursts that queue like saturation.
 */
async function runPaced(seconds: number, rate: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const url = new URL(options.url);
  const total = Math.max(1, Math.round(seconds * rate));
  const latencies = new Float64Array(total);
  let next = 0;
  let sent = 0;
  let count = 0;
  let settled = 0;
  let errors = 0;
  let timeouts = 0;
  let non2xx = 0;
  const samples: string[] = [];
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const settle = () => {
      if (++settled === total) resolve();
    };
    const send = (dueAt: number) => {
      const chosen = pool[next++ % pool.length]!;
      const request = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { ...headersOf(chosen), 'content-length': Buffer.byteLength(chosen.body) },
        },
        (response) => {
          const status = response.statusCode ?? 0;
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            if (status < 200 || status > 299) body += chunk;
          });
          response.on('error', () => {
            errors++;
            settle();
          });
          response.on('end', () => {
            latencies[count++] = performance.now() - dueAt;
            if (status < 200 || status > 299) {
              non2xx++;
              if (samples.length < 3) samples.push(`${status} ${body.slice(0, 500)}`);
            }
            settle();
          });
        },
      );
      request.setTimeout(10_000, () => {
        timeouts++;
        request.destroy();
      });
      request.on('error', () => {
        errors++;
        settle();
      });
      request.end(chosen.body);
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
      for (; sent < due; sent++) send(started + (sent * 1000) / rate);
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  const sorted = latencies.subarray(0, count).sort();
  const at = (q: number) => (count === 0 ? NaN : sorted[Math.min(count - 1, Math.floor(q * count))]!);
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    rps: count / elapsed,
    p50: at(0.5),
    p99: at(0.99),
    mean: count === 0 ? NaN : sum / count,
    requests: count,
    errors,
    timeouts,
    non2xx,
    samples,
    loadCpuUs: NaN,
  } satisfies LoadResult;
}

const measureFor = (seconds: number) => (options.rate === undefined ? run(seconds) : runPaced(seconds, options.rate));

if (options.warmup > 0) {
  const warm = await measureFor(options.warmup);
  // A warm-up that already fails is reported as the run: no need to wait for the measured part.
  if (warm.errors > 0 || warm.non2xx > 0 || warm.requests === 0) {
    process.stdout.write(`${JSON.stringify({ ...warm, warmup: true })}\n`);
    process.exit(0);
  }
}
process.stdout.write(`${JSON.stringify({ measuring: true })}\n`);
const cpuAtStart = process.cpuUsage();
const measured = await measureFor(options.duration);
const { user, system } = process.cpuUsage(cpuAtStart);
process.stdout.write(`${JSON.stringify({ ...measured, loadCpuUs: (user + system) / Math.max(1, measured.requests) })}\n`);
