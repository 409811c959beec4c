import { sql, type RawBuilder } from 'kysely';

/**
 * A JSON value as a jsonb parameter. postgres.js serialises a parameter it is told is jsonb itself
 * (a pre-stringified value would be stored as a jsonb *string*), so the value goes in as it is.
 *
 * @example db.insertInto('goals').values({ lead_fields: jsonb(fields), ... })
 */
export function jsonb<T>(value: T): RawBuilder<T> {
  return sql<T>`${value}::jsonb`;
}
