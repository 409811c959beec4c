import { sql, type RawBuilder } from 'kysely';

/**
 * A JSON value as a jsonb parameter. postgres.js serialises a parameter it is told is jsonb itself
 * (a pre-stringified value would be stored as a jsonb *string*), so the value goes in as it is.
 * Lone UTF-16 surrogates become U+FFFD first, as they do in text columns: JSON.stringify escapes them
 * as `\ud800`, which jsonb refuses (a 500 for a client's odd label).
 *
 * @example db.insertInto('goals').values({ lead_fields: jsonb(fields), ... })
 */
export function jsonb<T>(value: T): RawBuilder<T> {
  return sql<T>`${wellFormed(value)}::jsonb`;
}

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function wellFormed(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(loneSurrogate, '\ufffd');
  if (Array.isArray(value)) return value.map(wellFormed);
  if (value !== null && typeof value === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(value))) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(loneSurrogate, '\ufffd'), wellFormed(v)]));
  }
  return value;
}
