import { sql } from 'kysely';

/**
 * The transaction's `now()` cut to the millisecond, the precision JSON clients see, so a timestamp read back
 * (`expected_updated_at`, a cursor) compares equal to the stored one.
 *
 * @example db.updateTable('goals').set({ status: 'inactive', updated_at: nowMs })
 */
export const nowMs = sql<Date>`date_trunc('milliseconds', now())`;
