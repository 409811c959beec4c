import { sql, type SelectQueryBuilder } from 'kysely';
import { z } from 'zod';
import type { Db } from '../db/client.ts';
import type { Database } from '../db/schema.ts';
import { AppError } from '../rpc/errors.ts';

// Lists are newest first by (created_at, id), in pages of `limit`, with an opaque cursor and the count of every
// record matching the filter.

/** The largest page a list answers. */
export const PAGE_LIMIT_MAX = 100;

/**
 * What a list query's inner LIMIT reads at most: the largest page and one row more (whether a next page exists).
 *
 * Why a constant inner LIMIT under the requested one: the statements run prepared, and with `limit $n` Postgres
 * cannot tell how many rows a generic plan returns, guesses a tenth of the matches, and for an owner with many
 * records then finds the generic plan dearer than a custom one and re-plans the statement at every call (the
 * scale step of `npm run bench`, docs/performance.md). Under a constant inner LIMIT the generic plan's estimate stays small and Postgres keeps it; the outer `limit $n` still
 * stops the scan after the rows asked for.
 */
export const PAGE_ROWS_MAX = PAGE_LIMIT_MAX + 1;

/** `limit` and `cursor`, shared by every list. */
export const pageFields = {
  limit: z.number().int().min(1).max(PAGE_LIMIT_MAX).default(50).describe('Page size, 1–100 (default 50).'),
  cursor: z.string().max(200).optional().describe('The `next_cursor` of the previous page.'),
};

export interface Page<T> {
  items: T[];
  /** How many records match the filter, across all pages. */
  count: number;
  next_cursor: string | null;
}

export interface CursorPosition {
  createdAt: Date;
  id: string;
}


/** Lists are newest first by (created_at, id); the cursor is that pair, opaque to clients. */
export function encodeCursor(row: { created_at: Date; id: string }): string {
  return Buffer.from(`${row.created_at.toISOString()}|${row.id}`).toString('base64url');
}

/**
 * Where a list's page starts and how long it is, from its input.
 *
 * @example await listGoals(ctx.db, filter, pageRequest(input))
 */
export function pageRequest(input: { cursor?: string; limit: number }): { after: CursorPosition | undefined; limit: number } {
  return { after: decodeCursor(input.cursor), limit: input.limit };
}

export function decodeCursor(cursor: string | undefined): CursorPosition | undefined {
  if (cursor === undefined) return undefined;
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(iso ?? '');
  // Only what encodeCursor writes: anything else (a crafted year 0 or 10000) is refused here, not by Postgres.
  const year = createdAt.getUTCFullYear();
  const issued = !Number.isNaN(createdAt.getTime()) && createdAt.toISOString() === iso && year >= 1000 && year <= 9999;
  if (!id || !issued || !z.uuid().safeParse(id).success) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: 'data.cursor: not a cursor this API issued',
      details: [{ path: ['data', 'cursor'], message: 'invalid cursor', type: 'invalid_format' }],
    });
  }
  return { createdAt, id };
}

/**
 * The `limit + 1` newest rows of `query` (its filters applied) after the cursor `after`, newest first, read under a
 * constant inner limit so that Postgres keeps one plan for the statement (why: PAGE_ROWS_MAX). `created_at` and
 * `id` must name the listed table's columns unqualified.
 *
 * @example await newestPage(ctx.db, filtered.selectAll(), { after: decodeCursor(input.cursor), limit: input.limit })
 */
export function newestPage<O extends { created_at: Date; id: string }>(
  db: Db,
  query: SelectQueryBuilder<Database, any, O>,
  { after, limit }: { after: CursorPosition | undefined; limit: number },
): Promise<O[]> {
  const newest = (after ? query.where(sql<boolean>`(created_at, id) < (${after.createdAt}, ${after.id})`) : query)
    .orderBy(sql`created_at desc, id desc`)
    .limit(sql.lit(PAGE_ROWS_MAX));
  return db
    .selectFrom(newest.as('page'))
    .selectAll()
    .orderBy(sql`created_at desc, id desc`)
    .limit(limit + 1)
    .execute() as Promise<O[]>;
}

/**
 * A list's answer from the `limit + 1` rows its query read and the count of every match: this page, presented
 * (`presentAll`, or any serializer), and the next cursor.
 *
 * @example return pageOf(await listAgents(ctx.db, filter, page), input.limit, (rows) => presentAll(ctx, rows, serializeAgent));
 */
export async function pageOf<R extends { created_at: Date; id: string }, T>(
  listed: { rows: R[]; total: number },
  limit: number,
  present: (rows: R[]) => T[] | Promise<T[]>,
): Promise<Page<T>> {
  const page = splitPage(listed.rows, limit);
  return { items: await present(page.rows), count: listed.total, next_cursor: page.next_cursor };
}

/** Splits the `limit + 1` rows a list query fetched into this page and the next cursor. */
export function splitPage<R extends { created_at: Date; id: string }>(
  rows: R[],
  limit: number,
): { rows: R[]; next_cursor: string | null } {
  if (rows.length <= limit) return { rows, next_cursor: null };
  const page = rows.slice(0, limit);
  return { rows: page, next_cursor: encodeCursor(page[page.length - 1]!) };
}

/** Escapes LIKE wildcards so `search` matches the text as typed. */
export function likePattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
}
