import { z } from 'zod';

// The pieces every resource's answers share. Answers are strict objects: a field the handler adds without
// declaring it fails the test suite, which validates every answer it sees against its action's output.

/** A timestamp as the API writes it: ISO 8601 in UTC (`toISOString`). */
export const timestamp = () => z.iso.datetime();

/** A record's id as the API writes it. */
export const recordId = () => z.uuid();

/** The owner an admin-mode answer adds to each record (SPEC §3). */
export const ownerOutput = z
  .strictObject({ id: recordId(), email: z.string(), name: z.string().nullable() })
  .describe('Only in admin mode (`data.adminMode` or `data.userId`, internal_admin only): who owns the record.')
  .meta({ id: 'Owner' });

/** A record as a standard user sees it, plus the `owner` admin mode adds. */
export const withOwner = <S extends z.core.$ZodLooseShape>(record: z.ZodObject<S>) => record.extend({ owner: ownerOutput.optional() });

/** The answer of a list: one page, the count of every match and the next page's cursor. */
export const pageOutput = <T extends z.ZodType>(item: T) =>
  z.strictObject({
    items: z.array(item),
    count: z.number().int().min(0).describe('How many records match the filter, across all pages.'),
    next_cursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one.'),
  });

/** The answer of a delete. */
export const deletedOutput = z.strictObject({ id: recordId(), deleted: z.literal(true) });
