import type { Context } from '../rpc/context.ts';

export interface Owner {
  id: string;
  email: string;
  name: string | null;
}

/**
 * Records as an action answers them: serialized, and in admin mode each with its `owner` (one query for all the
 * owners of a page).
 *
 * @example return { items: await presentAll(ctx, page.rows, serializeAgent), … };
 */
export async function presentAll<R extends { owner_id: string }, T extends object>(
  ctx: Context,
  rows: R[],
  serialize: (row: R) => T,
): Promise<(T & { owner?: Owner })[]> {
  // Outside admin mode (every ordinary call) there is nothing to look up.
  if (!ctx.scope.admin) return rows.map((row) => serialize(row));
  const owners = await ownersOf(ctx, rows.map((r) => r.owner_id));
  return rows.map((row) => {
    const object = serialize(row);
    const owner = owners.get(row.owner_id);
    return owner ? { ...object, owner } : object;
  });
}

/**
 * One record as an action answers it (see `presentAll`).
 *
 * @example return present(ctx, row, serializeGoalWithRoadmap);
 */
export async function present<R extends { owner_id: string }, T extends object>(
  ctx: Context,
  row: R,
  serialize: (row: R) => T,
): Promise<T & { owner?: Owner }> {
  const [object] = await presentAll(ctx, [row], serialize);
  return object!;
}

async function ownersOf(ctx: Context, ownerIds: string[]): Promise<Map<string, Owner>> {
  if (ownerIds.length === 0) return new Map();
  const owners = await ctx.db
    .selectFrom('users')
    .select(['id', 'email', 'name'])
    .where('id', 'in', [...new Set(ownerIds)])
    .execute();
  return new Map(owners.map((o) => [o.id, o]));
}

/** A timestamp as the API writes it, or null. */
export const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
