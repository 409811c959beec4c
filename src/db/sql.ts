import { sql, type RawBuilder } from 'kysely';

/**
 * The transaction's `now()` cut to the millisecond, the precision JSON clients see, so a timestamp read back
 * (`expected_updated_at`, a cursor) compares equal to the stored one.
 *
 * @example db.updateTable('goals').set({ status: 'inactive', updated_at: nowMs })
 */
export const nowMs = sql<Date>`date_trunc('milliseconds', now())`;

/**
 * `where a and b …` of the conditions given, or nothing when there are none: for the few statements written as
 * `sql` templates rather than built (hot paths, where Kysely's builder costs more than the query's own work).
 *
 * @example sql`select count(*) from goals ${whereAll([sql`owner_id = ${ownerId}`])}`
 */
export function whereAll(conditions: RawBuilder<unknown>[]): RawBuilder<unknown> {
  return conditions.length === 0 ? sql`` : sql`where ${sql.join(conditions, sql` and `)}`;
}

interface Filterable {
  where(column: any, operator: '=', value: string): any;
}

/**
 * The owner-scope condition of every statement on owned records: `where <column> = ownerId`, or nothing in admin
 * mode across accounts (`ownerId` null). Ownership is part of the query, never a check after the fetch.
 *
 * @example db.selectFrom('agents').selectAll().where('id', '=', id).$call(ownedBy(ownerId))
 */
export function ownedBy(ownerId: string | null, column = 'owner_id') {
  return <QB extends Filterable>(qb: QB): QB => (ownerId === null ? qb : (qb.where(column, '=', ownerId) as QB));
}
