import { z } from 'zod';

/**
 * A UUID, canonical (lower case) once validated: Postgres answers ids in lower case, and code that matches ids it
 * was sent against ids it read (lock maps, `replaced_goal_id`, owners) must compare like with like.
 *
 * @example z.strictObject({ goalId: uuid() })
 */
export const uuid = (params?: Parameters<typeof z.uuid>[0]) => z.uuid(params).toLowerCase();

/**
 * An ISO 8601 datetime with an offset, in years 1000–9999. Postgres refuses year 0, and JavaScript reads years
 * below 100 back as 19xx, so such dates could not round-trip.
 *
 * @example due_at: isoDateTime().nullable()
 */
export const isoDateTime = () =>
  z.iso.datetime({ offset: true }).refine(
    (value) => {
      const year = new Date(value).getUTCFullYear();
      return year >= 1000 && year <= 9999;
    },
    { message: 'must be a date between the years 1000 and 9999' },
  );

/**
 * For a refinement that only makes sense once the object itself is valid (no spurious second issue).
 *
 * @example schema.refine(check, { message: '…', when: onlyIfValid })
 */
export const onlyIfValid = (payload: { issues: unknown[] }) => payload.issues.length === 0;

/**
 * A partial-update schema: every field optional, no unknown key, and at least one field named (`ignored` keys,
 * such as a precondition, do not count).
 *
 * @example input: patchOf(agentFields)
 */
export function patchOf<S extends z.core.$ZodLooseShape>(fields: z.ZodObject<S>, options: { ignored?: string[] } = {}) {
  const ignored = new Set(options.ignored ?? []);
  return fields
    .partial()
    .strict()
    .refine((data) => Object.keys(data).some((key) => !ignored.has(key)), {
      message: 'name at least one field to change',
      when: onlyIfValid,
    });
}
