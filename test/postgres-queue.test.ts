import { describe, expect, it } from 'vitest';
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
