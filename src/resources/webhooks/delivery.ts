import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Webhook as Signer } from 'standardwebhooks';
import type { Db } from '../../db/client.ts';
import type { DeliveryRow } from '../../db/schema.ts';
import { hostOf, nonPublicReason, publicOnlyLookup } from '../../lib/public-address.ts';
import type { WebhookSettings } from '../../rpc/context.ts';
import { eventBody } from './model.ts';
import { disableWebhook, recordOutcome, type ClaimedDelivery, type Outcome } from './queries.ts';

// One attempt of one delivery: signed as Standard Webhooks says, sent once (no redirect followed, only to a public
// address unless WEBHOOK_ALLOW_PRIVATE_URLS), and its outcome recorded by the holder of the claim. The worker
// (src/jobs/worker.ts) and the `test` and `redeliver` actions all attempt through `attemptDelivery`.

/** How long a claim lasts past the attempt's own timeout, before another process may take the delivery over. */
export const LEASE_MARGIN_MS = 30_000;

/** The lease a claim takes for an attempt under `settings`. */
export const leaseMs = (settings: WebhookSettings) => settings.timeoutMs + LEASE_MARGIN_MS;

/** The longest wait between two attempts, whatever the doubling reaches. */
export const BACKOFF_MAX_MS = 24 * 60 * 60 * 1000;

/** The wait before attempt `n + 1` after attempt `n` failed: WEBHOOK_BACKOFF_MS, doubling, at most a day. */
export const backoffMs = (settings: WebhookSettings, attempts: number) =>
  Math.min(settings.backoffMs * 2 ** (attempts - 1), BACKOFF_MAX_MS);

/** What came back from the receiver: a status code, or why there was none. */
type Answer = { statusCode: number } | { error: string };

/**
 * Sends the delivery (when its webhook is still enabled) and records how it went: 2xx is `delivered`; 410 Gone is
 * `failed` and disables the webhook; anything else is retried after the backoff while attempts remain and `retry`
 * allows, else `failed`. Answers the delivery as recorded (nothing when the claim was lost meanwhile).
 *
 * @example await attemptDelivery(db, claimed, settings, { retry: true });
 */
export async function attemptDelivery(
  db: Db,
  delivery: ClaimedDelivery,
  settings: WebhookSettings,
  options: { retry: boolean },
): Promise<DeliveryRow | undefined> {
  const answer: Answer = delivery.enabled ? await send(delivery, settings) : { error: 'the webhook is disabled' };
  const outcome = outcomeOf(answer, delivery, settings, options);
  if ('statusCode' in answer && answer.statusCode === 410) await disableWebhook(db, delivery.webhook_id);
  return recordOutcome(db, delivery, outcome);
}

function outcomeOf(answer: Answer, delivery: ClaimedDelivery, settings: WebhookSettings, options: { retry: boolean }): Outcome {
  if ('statusCode' in answer && answer.statusCode >= 200 && answer.statusCode < 300) {
    return { status: 'delivered', statusCode: answer.statusCode, error: null };
  }
  const statusCode = 'statusCode' in answer ? answer.statusCode : null;
  const error = 'error' in answer ? answer.error : describeStatus(answer.statusCode);
  const retry = options.retry && delivery.enabled && statusCode !== 410 && delivery.attempts < settings.maxAttempts;
  return retry
    ? { status: 'pending', statusCode, error, retryInMs: backoffMs(settings, delivery.attempts) }
    : { status: 'failed', statusCode, error };
}

function describeStatus(statusCode: number): string {
  if (statusCode === 410) return 'answered 410 Gone: the webhook is disabled';
  if (statusCode >= 300 && statusCode < 400) return `answered ${statusCode}: redirects are not followed`;
  return `answered ${statusCode}`;
}

/** The headers of one attempt: Standard Webhooks' three, signed over `id.timestamp.body` with the webhook's secret. */
export function signedHeaders(delivery: ClaimedDelivery, body: string, at = new Date()): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'Goalpost-Webhooks/1',
    'webhook-id': delivery.event.id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Signer(delivery.secret).sign(delivery.event.id, at, body),
  };
}

/** One POST; never throws: a refused address, a timeout or a broken connection is an `error`. */
async function send(delivery: ClaimedDelivery, settings: WebhookSettings): Promise<Answer> {
  let url: URL;
  try {
    url = new URL(delivery.url);
  } catch {
    return { error: 'the URL is not valid' };
  }
  // A name is checked when it resolves, by the lookup below; an address has no lookup, so it is checked here.
  const literal = isIP(hostOf(url)) ? nonPublicReason(hostOf(url)) : null;
  if (literal && !settings.allowPrivateUrls) return { error: `refused: ${literal}` };
  const body = eventBody(delivery.event);
  try {
    const statusCode = await post(url, body, signedHeaders(delivery, body), settings);
    return { statusCode };
  } catch (error) {
    return { error: describeFailure(error, settings) };
  }
}

function describeFailure(error: unknown, settings: WebhookSettings): string {
  const e = error as NodeJS.ErrnoException;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${settings.timeoutMs} ms`;
  if (e.code === 'ENOTPUBLIC') return `refused: ${e.message}`;
  return e.code ? `${e.code}: ${e.message}` : e.message || String(error);
}

/**
 * Connections to receivers are kept alive and reused, as webhook senders do (a new TLS handshake per event is most of
 * a small delivery's cost). Safe with the guard: a connection's address was checked when it was made, and connections
 * made without the guard (WEBHOOK_ALLOW_PRIVATE_URLS) are pooled apart from those made with it.
 */
const agents = {
  guarded: { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) },
  open: { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) },
};

/** POSTs `body` and answers the status once the answer is read in full, all within the timeout. */
function post(url: URL, body: string, headers: Record<string, string>, settings: WebhookSettings): Promise<number> {
  const https = url.protocol === 'https:';
  const request = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      signal: AbortSignal.timeout(settings.timeoutMs),
      lookup: settings.allowPrivateUrls ? undefined : (publicOnlyLookup as never),
      agent: agents[settings.allowPrivateUrls ? 'open' : 'guarded'][https ? 'https' : 'http'],
    });
    req.on('error', reject);
    req.on('response', (res: IncomingMessage) => {
      res.on('error', reject);
      // The answer's body is read and dropped: a 2xx counts once the receiver has finished answering.
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      // Whatever cut the answer short (the timeout, the receiver), the attempt ends: never a promise left waiting.
      res.on('close', () => {
        if (!res.complete) reject(new Error('the connection closed before the answer was complete'));
      });
    });
    req.end(body);
  });
}
