import net from 'node:net';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { databaseUrl } from './support/harness.ts';
// The queue postgres.js keeps its connections in (open, busy, …), by file: the package exports only its index.
// @ts-expect-error: the module has no types
import Queue from '../node_modules/postgres/src/queue.js';

/**
 * postgres.js 3.4.9's `Queue.shift()` leaves a hole at the head of its array instead of removing the entry, and
 * only drops the holes once a shift empties the queue. The busy queue never empties while every connection is
 * busy (which is how a pool serves sustained load: it pipelines onto busy connections with `busy.shift()`), and
 * `remove()` — called each time a connection changes queue — scanned every hole from the start: one more per
 * query, for ever (porsager/postgres#747; measured: a pool of 10 at 32 concurrent queries fell from 33k to 8.5k
 * queries/s in 32 s). patches/postgres+3.4.9.patch makes `remove()` start at the head and drops the holes once
 * they are most of the array. This checks the patch is installed, by counting what `remove()` scans.
 */
class Counting<T> extends Array<T> {
  static scanned = 0;
  override indexOf(item: T, from = 0): number {
    Counting.scanned += this.length - from;
    return super.indexOf(item, from);
  }
}

describe('postgres.js connection queue (patched)', () => {
  it('a queue that never empties: remove() scans the live entries, not every hole shift() left', () => {
    const connections = Array.from({ length: 10 }, (_, i) => ({ id: i }));
    const busy = Queue(Counting.from(connections));
    // What the pool does under load with every connection busy: go(busy.shift(), query) → move(c, busy).
    for (let i = 0; i < 20_000; i++) {
      const c = busy.shift();
      busy.remove(c);
      busy.push(c);
    }
    Counting.scanned = 0;
    for (let i = 0; i < 1_000; i++) {
      const c = busy.shift();
      busy.remove(c);
      busy.push(c);
    }
    // Unpatched: ~20,000 holes scanned per remove. Patched: the 9–10 live entries.
    expect(Counting.scanned / 1_000).toBeLessThanOrEqual(10);
    expect(busy.length).toBe(10);
  });

  it('is still first in, first out, across the compaction', () => {
    const queue = Queue([]);
    for (let i = 0; i < 5_000; i++) queue.push(i);
    const out: number[] = [];
    for (let i = 0; i < 3_000; i++) out.push(queue.shift());
    queue.remove(3_001);
    for (let i = 0; i < 1_999; i++) out.push(queue.shift());
    expect(out).toEqual([...Array.from({ length: 3_001 }, (_, i) => i), ...Array.from({ length: 1_998 }, (_, i) => 3_002 + i)]);
    expect(queue.length).toBe(0);
  });
});

/**
 * postgres.js 3.4.9 fetches the array types on every new connection and does not await that query: a connection lost
 * during it (a database going away, a proxy dropping connections) left an unhandled rejection, which ends a Node
 * process. The patch drops that rejection (the connection's own error handling reconnects). This proxy lets the
 * handshake through, then cuts the connection at the client's first query — the types fetch — and refuses connections
 * for a moment, as a database that went away does.
 */
describe('postgres.js connection lost during its type fetch (patched)', () => {
  it('leaves no unhandled rejection, and the next connection works', async () => {
    const target = new URL(databaseUrl());
    let cut = 1;
    let port = 0;
    const proxy: net.Server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname);
      let ready = false;
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop);
      upstream.on('error', drop);
      upstream.on('data', (chunk: Buffer) => {
        // ReadyForQuery ('Z', length 5) ends the handshake.
        if (chunk.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) ready = true;
        client.write(chunk);
      });
      client.on('data', (chunk: Buffer) => {
        if (ready && cut > 0) {
          cut--;
          // Away for a moment: the reconnect is refused, then the database is back on the same port.
          proxy.close();
          setTimeout(() => proxy.listen(port, '127.0.0.1'), 500);
          return drop();
        }
        upstream.write(chunk);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    port = (proxy.address() as net.AddressInfo).port;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const url = new URL(databaseUrl());
    url.port = String(port);
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {}, connect_timeout: 5 });
    try {
      // The first connection is cut during the type fetch; the query waits for the next one.
      const rows = await Promise.race([
        sql`select 1 as one`.catch((error: Error) => [{ one: error.message }]),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer in 10 s')), 10_000)),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(unhandled).toEqual([]);
      expect(rows[0]).toBeDefined();
      expect((await sql`select 2 as two`)[0]).toEqual({ two: 2 });
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await sql.end({ timeout: 1 });
      proxy.close();
    }
  });
});
