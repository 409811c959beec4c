import { Hono, type Context } from 'hono';
import { plainJsonSchema } from '../lib/json-schema.ts';
import type { ActionRegistry } from '../rpc/action.ts';
import { adminFields, lookupAction } from '../rpc/dispatch.ts';
import { AppError } from '../rpc/errors.ts';
import { readJson, type Env } from './answer.ts';

/** Runs an invoke envelope and answers it: what every route below ends in (see `createV1`). */
export type Invoke = (c: Context<Env>, envelope: unknown) => Promise<Response>;

/** How a query-string value of a list is read: a number or a boolean; any other key stays a string. */
type Coercion = 'number' | 'boolean';

/**
 * The REST-style routes, derived from the registry; each builds an invoke envelope and hands it to `invoke`:
 * `GET /:resource` → list (query string as `data`), `GET|PATCH|DELETE /:resource/:id` → get, update, delete,
 * `GET /:resource/:id/:action` → a read action of that record (query string as `data`),
 * `POST /:resource` → create (or the action its body names), `POST /:resource/:action` with `{id?, data?}`.
 *
 * @example v1.route('/', restRoutes(registry, invoke));
 */
export function restRoutes(registry: ActionRegistry, invoke: Invoke): Hono<Env> {
  const rest = new Hono<Env>();
  const queries = readQueryCoercions(registry);

  rest.post('/:resource/:action', async (c) => {
    const { id, data } = idAndData(await readJson(c, { optional: true }));
    return invoke(c, { resource: c.req.param('resource'), action: c.req.param('action'), id, data });
  });
  rest.post('/:resource', async (c) => {
    const resource = c.req.param('resource');
    const body = await readJson(c);
    // The body names an action of this resource: it is an envelope without `resource`.
    if (isObject(body) && typeof body.action === 'string' && isActionOf(registry, resource, body.action)) {
      // The path names the resource; a `resource` in the body cannot override it.
      return invoke(c, { ...body, resource });
    }
    return invoke(c, { resource, action: 'create', data: body });
  });
  rest.get('/:resource', async (c) => {
    const resource = c.req.param('resource');
    // INVALID_RESOURCE or INVALID_ACTION, as the dispatcher would say, for a resource with no list.
    lookupAction(registry, resource, 'list');
    return invoke(c, { resource, action: 'list', data: coerceQuery(queries.get(`${resource}.list`)!, c.req.queries()) });
  });
  // A read action that names a record: `GET /goals/:id/history?days=7`. Writes are not reachable by GET.
  rest.get('/:resource/:id/:action', (c) => {
    const { resource, id, action } = c.req.param();
    const coercions = queries.get(`${resource}.${action}`);
    if (!coercions) {
      lookupAction(registry, resource, action);
      throw new AppError({
        code: 'INVALID_ACTION',
        message: `GET /v1/${resource}/{id}/${action}: only a read action is reached by GET; send POST /v1/${resource}/${action} with {"id", "data"}`,
      });
    }
    return invoke(c, { resource, action, id, data: coerceQuery(coercions, c.req.queries()) });
  });
  rest.get('/:resource/:id', (c) => invoke(c, { resource: c.req.param('resource'), action: 'get', id: c.req.param('id') }));
  rest.patch('/:resource/:id', async (c) =>
    invoke(c, { resource: c.req.param('resource'), action: 'update', id: c.req.param('id'), data: await readJson(c) }),
  );
  rest.delete('/:resource/:id', async (c) =>
    invoke(c, {
      resource: c.req.param('resource'),
      action: 'delete',
      id: c.req.param('id'),
      data: await readJson(c, { optional: true }),
    }),
  );
  return rest;
}

/** The body of `POST /:resource/:action`: `{id?, data?}`; anything that is not an object is the `data`. */
function idAndData(body: unknown): { id?: unknown; data?: unknown } {
  if (!isObject(body)) return { id: undefined, data: body };
  const extra = Object.keys(body).filter((k) => k !== 'id' && k !== 'data');
  if (extra.length > 0) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: `The body of POST /v1/{resource}/{action} is {id?, data?}; unexpected: ${extra.join(', ')}`,
      details: extra.map((k) => ({ path: [k], message: 'unexpected field', type: 'unrecognized_keys' })),
    });
  }
  return { id: body.id, data: body.data };
}

/**
 * For each read action (`list`, and the read-only ones that name a record), by `resource.action`, the keys of its
 * query that are numbers or booleans, read once from the JSON Schema of the action's input and of the admin fields
 * (these last, as `prepare` splits them off).
 */
function readQueryCoercions(registry: ActionRegistry): Map<string, Map<string, Coercion>> {
  const admin = propertiesOf(plainJsonSchema(adminFields));
  const tables = new Map<string, Map<string, Coercion>>();
  for (const [resource, actions] of Object.entries(registry)) {
    for (const [name, action] of Object.entries(actions)) {
      if (name !== 'list' && !(action.readOnly && action.id)) continue;
      const properties = { ...propertiesOf(plainJsonSchema(action.input)), ...admin };
      const table = new Map<string, Coercion>();
      for (const [key, property] of Object.entries(properties)) {
        const coercion = coercionOf(property);
        if (coercion) table.set(key, coercion);
      }
      tables.set(`${resource}.${name}`, table);
    }
  }
  return tables;
}

function propertiesOf(schema: Record<string, unknown>): Record<string, unknown> {
  return isObject(schema.properties) ? schema.properties : {};
}

/** `number`/`integer` or `boolean`, alone or beside `null` (a nullable field); anything else is left a string. */
function coercionOf(property: unknown): Coercion | undefined {
  const types = typesOf(property).filter((type) => type !== 'null');
  if (types.length === 0) return undefined;
  if (types.every((type) => type === 'number' || type === 'integer')) return 'number';
  if (types.every((type) => type === 'boolean')) return 'boolean';
  return undefined;
}

function typesOf(node: unknown): string[] {
  if (!isObject(node)) return ['unknown'];
  if (typeof node.type === 'string') return [node.type];
  if (Array.isArray(node.type)) return node.type as string[];
  if (Array.isArray(node.anyOf)) return node.anyOf.flatMap(typesOf);
  return ['unknown'];
}

/**
 * Query strings carry strings; the list's table says which keys are numbers or booleans. Anything that
 * does not convert is passed on as it is, for validation to reject.
 */
function coerceQuery(coercions: Map<string, Coercion>, query: Record<string, string[]>): Record<string, unknown> {
  // No prototype: `?__proto__=…` must be a key like any other (and refused as unknown), not a prototype.
  const data: Record<string, unknown> = Object.create(null);
  for (const [key, values] of Object.entries(query)) {
    const raw = values.length === 1 ? values[0]! : values;
    const kind = typeof raw === 'string' ? coercions.get(key) : undefined;
    if (kind === 'number' && typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) {
      data[key] = Number(raw);
    } else if (kind === 'boolean' && (raw === 'true' || raw === 'false')) {
      data[key] = raw === 'true';
    } else {
      data[key] = raw;
    }
  }
  return data;
}

function isActionOf(registry: ActionRegistry, resource: string, action: string): boolean {
  return Object.hasOwn(registry, resource) && Object.hasOwn(registry[resource]!, action);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
