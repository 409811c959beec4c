import { serve } from '@hono/node-server';
import type { Server } from 'node:http';

export interface SseEvent {
  event: string;
  data: any;
  id?: string;
}

/**
 * The app on a real port of 127.0.0.1 through @hono/node-server, for clients that need a socket
 * (fetch streaming, disconnects).
 */
export async function serveOnLoopback(app: { fetch: (request: Request) => Response | Promise<Response> }) {
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Reads a Server-Sent Events body as it arrives, calling `onEvent` for each event; resolves with all
 * of them when the stream ends. `onEvent` may return `'stop'` to stop reading (the caller then aborts).
 */
export async function readEvents(body: ReadableStream<Uint8Array>, onEvent?: (event: SseEvent) => 'stop' | void): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let boundary = buffer.indexOf('\n\n');
    while (boundary >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      boundary = buffer.indexOf('\n\n');
      const event: SseEvent = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event.event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        else if (line.startsWith('id:')) event.id = line.slice(3).trim();
      }
      const text = data.join('\n');
      try {
        event.data = JSON.parse(text);
      } catch {
        event.data = text;
      }
      events.push(event);
      if (onEvent?.(event) === 'stop') {
        await reader.cancel().catch(() => {});
        return events;
      }
    }
  }
  return events;
}
