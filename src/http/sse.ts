import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Logger } from '../logger.ts';
import type { PreparedCall } from '../rpc/dispatch.ts';
import { errorEnvelope, logFailure, toAppError } from '../rpc/errors.ts';
import { requestFields, type Env } from './answer.ts';

/** The client asked for Server-Sent Events (`Accept: text/event-stream`). */
export function wantsEventStream(c: Context<Env>): boolean {
  return (c.req.header('accept') ?? '').toLowerCase().includes('text/event-stream');
}

/**
 * Runs a validated streaming call as Server-Sent Events: `progress` events while it works, then one
 * `result` event (the success envelope) or one `error` event (the error envelope). A client that goes
 * away aborts the call's signal, which cancels upstream work.
 *
 * @example if (call.action.streams && wantsEventStream(c)) return streamCall(c, call, logger);
 */
export function streamCall(c: Context<Env>, call: PreparedCall, logger: Logger): Response {
  const requestId = c.get('requestId');
  return streamSSE(c, async (stream) => {
    const controller = new AbortController();
    stream.onAbort(() => controller.abort(new Error('client disconnected')));
    let sequence = 0;
    const send = (event: string, data: unknown) =>
      stream.writeSSE({ event, data: JSON.stringify(data), id: String(sequence++) }).catch(() => {});
    try {
      const result = await call.run({
        signal: controller.signal,
        onProgress: (progress) => void send('progress', progress),
      });
      // A replay (Idempotency-Key) has no progress to show; its result says it is one, as the header would.
      await send('result', result.replayed ? { success: true, data: result.data, replayed: true } : { success: true, data: result.data });
    } catch (error) {
      if (controller.signal.aborted) return;
      const appError = toAppError(error);
      logFailure(logger, { message: 'request failed', appError, thrown: error, fields: requestFields(c) });
      await send('error', errorEnvelope(appError, requestId));
    }
  });
}
