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

/** The value itself when every string and key in it is well-formed (the common case: no copy), else a copy with U+FFFD. */
function wellFormed(value: unknown): unknown {
  return isWellFormed(value) ? value : toWellFormed(value);
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(value));

function isWellFormed(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed();
  if (Array.isArray(value)) return value.every(isWellFormed);
  if (isPlainObject(value)) return Object.keys(value).every((k) => k.isWellFormed() && isWellFormed(value[k]));
  return true;
}

function toWellFormed(value: unknown): unknown {
  if (typeof value === 'string') return value.toWellFormed();
  if (Array.isArray(value)) return value.map(toWellFormed);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toWellFormed(), toWellFormed(v)]));
  return value;
}
