import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AiProvider } from '../../src/ai/provider.ts';

/** One request the fake server received, and what became of it. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: any;
  /** Resolves when the connection closed: `true` if it closed before the answer was complete (the client aborted). */
  closed: Promise<boolean>;
}

export type Reply = (res: ServerResponse, request: ReceivedRequest) => void | Promise<void>;

/**
 * A fake OpenAI-compatible server on 127.0.0.1 (node:http, a real loopback port): it records every
 * request and answers each with the next queued reply (the last one again once the queue is empty).
 *
 * @example const fake = await startFakeOpenAi(); fake.queue(status(500), completion('{"name":"x","lead_fields":[]}'));
 */
export async function startFakeOpenAi() {
  const requests: ReceivedRequest[] = [];
  let queue: Reply[] = [];
  let last: Reply = completion('{}');
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      let resolveClosed!: (aborted: boolean) => void;
      const closed = new Promise<boolean>((resolve) => (resolveClosed = resolve));
      res.on('close', () => resolveClosed(!res.writableFinished));
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // keep the text
      }
      const request: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, closed };
      requests.push(request);
      const reply = queue.shift() ?? last;
      void reply(res, request);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    /** The base URL to configure: the API root, as for OpenAI's https://api.openai.com/v1. */
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    /** Replaces the queue of replies; the last one keeps answering after the others are used. */
    queue(...replies: Reply[]) {
      queue = [...replies];
      last = replies[replies.length - 1] ?? last;
      requests.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type FakeOpenAi = Awaited<ReturnType<typeof startFakeOpenAi>>;

/** A non-streamed chat completion whose message content is `content`. */
export function completion(content: string): Reply {
  return (res, request) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'chatcmpl-fake',
        object: 'chat.completion',
        created: 1_700_000_000,
        model: request.body?.model ?? 'fake',
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }),
    );
  };
}

/** An error answer of the given status (retried by the client for 5xx). */
export function status(code: number, message = 'fake failure'): Reply {
  return (res) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type: 'server_error', code: null } }));
  };
}

/** Never answers: the client's timeout (or its abort) ends the request. */
export function hang(): Reply {
  return () => {};
}

/**
 * A streamed completion (Server-Sent Events of `chat.completion.chunk`), one chunk per delta,
 * `delayMs` apart. With `hold`, the stream stays open after the deltas instead of ending.
 */
export function stream(deltas: string[], options: { delayMs?: number; hold?: boolean } = {}): Reply {
  return async (res, request) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({
        id: 'chatcmpl-fake',
        object: 'chat.completion.chunk',
        created: 1_700_000_000,
        model: request.body?.model ?? 'fake',
        choices: [{ index: 0, delta, finish_reason: finish }],
      })}\n\n`;
    res.write(chunk({ role: 'assistant', content: '' }, null));
    for (const delta of deltas) {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      if (res.destroyed) return;
      res.write(chunk({ content: delta }, null));
    }
    if (options.hold) return;
    res.write(chunk({}, 'stop'));
    res.end('data: [DONE]\n\n');
  };
}

/** Splits `text` into `parts` pieces of about equal length, to stream. */
export function pieces(text: string, parts: number): string[] {
  const size = Math.ceil(text.length / parts);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** An AiProvider that forwards every call to `current()`: a harness keeps this one, and a test swaps what it returns. */
export function delegatingProvider(current: () => AiProvider): AiProvider {
  return {
    get name() {
      return current().name;
    },
    get model() {
      return current().model;
    },
    get temperature() {
      return current().temperature;
    },
    suggestGoal: (request, options) => current().suggestGoal(request, options),
    suggestRoadmap: (request, options) => current().suggestRoadmap(request, options),
  };
}

