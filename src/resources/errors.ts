import { AppError } from '../rpc/errors.ts';

// One builder per error the resources answer, so each reads the same wherever it is thrown.

/**
 * NOT_FOUND for the record an action names by `id`: the same whether it does not exist or is someone else's.
 *
 * @example if (!row) throw notFound('Goal');
 */
export const notFound = (what: 'Goal' | 'Agent' | 'Action item' | 'API key' | 'Webhook' | 'Delivery') =>
  new AppError({ code: 'NOT_FOUND', message: `${what} not found or you have no access to it` });

/**
 * The record a query found, or NOT_FOUND for `what` when it found none.
 *
 * @example const row = found(await findGoal(ctx.db, { ownerId, id }), 'Goal');
 */
export function found<T>(row: T | undefined, what: Parameters<typeof notFound>[0]): T {
  if (row === undefined) throw notFound(what);
  return row;
}

/** AGENT_NOT_FOUND for an agent named in `data`. */
export const agentNotFound = () => new AppError({ code: 'AGENT_NOT_FOUND' });

/** NOT_FOUND for a goal named in `data` (at `path`), the same whether it does not exist or is someone else's. */
export const goalIdNotFound = (path: (string | number)[]) =>
  new AppError({ code: 'NOT_FOUND', message: `${path.join('.')}: goal not found or you have no access to it` });

/**
 * VALIDATION_ERROR for node ids that the goal's roadmap does not have, each at its path.
 *
 * @example throw notNodes([['data', 'node_id']], { hasRoadmap: nodes.length > 0 });
 */
export function notNodes(paths: (string | number)[][], options: { hasRoadmap: boolean }): AppError {
  const message = options.hasRoadmap ? "not a node of the goal's roadmap" : 'the goal has no roadmap';
  return new AppError({
    code: 'VALIDATION_ERROR',
    message: `${paths[0]!.join('.')}: ${message}`,
    details: paths.map((path) => ({ path, message, type: 'custom' })),
  });
}
