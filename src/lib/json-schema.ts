import { z } from 'zod';

type Json = Record<string, unknown>;

// Keywords OpenAI's strict structured output refuses; zod still checks them on the answer.
const UNSUPPORTED = new Set(['$schema', 'minLength', 'maxLength', 'default', 'minProperties', 'maxProperties', 'propertyNames', 'patternProperties']);

/**
 * A schema's JSON Schema as zod writes it (the input side, JSON Schema 2020-12), without `$schema`: the
 * request bodies of the OpenAPI 3.1 document, and what `withoutAddedNulls` reads a model's answer against.
 *
 * @example plainJsonSchema(z.object({ name: z.string() })) // { type: 'object', properties: { name: { type: 'string' } }, … }
 */
export function plainJsonSchema(schema: z.ZodType): Json {
  const { $schema: _drop, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
  return json;
}

/**
 * The JSON Schema for `response_format: {type: 'json_schema', json_schema: {strict: true, schema}}`,
 * derived from a zod schema. Strict mode wants every property of every object listed as required and
 * no others allowed, so a property the zod schema lets be absent may be `null` instead (and
 * `withoutAddedNulls` removes those nulls from the answer before zod validates it). Keywords strict
 * mode does not support are dropped from the document, not from validation.
 *
 * @example strictJsonSchema(goalSuggestion).required // ['name', 'description', 'lead_fields', …]
 */
export function strictJsonSchema(schema: z.ZodType): Json {
  return toStrict(plainJsonSchema(schema));
}

function toStrict(node: unknown): Json {
  if (!isObject(node)) return node as Json;
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (UNSUPPORTED.has(key)) continue;
    if (key === 'properties' && isObject(value)) {
      const required = new Set(Array.isArray(node.required) ? (node.required as string[]) : []);
      const properties: Json = {};
      for (const [name, property] of Object.entries(value)) {
        const strict = toStrict(property);
        if (required.has(name) || acceptsNull(property)) {
          properties[name] = strict;
        } else {
          const { description, ...rest } = strict;
          properties[name] = { ...(description !== undefined && { description }), anyOf: [rest, { type: 'null' }] };
        }
      }
      out.properties = properties;
      out.required = Object.keys(value);
      out.additionalProperties = false;
    } else if (key === 'required' || key === 'additionalProperties') {
      // Set with `properties`.
    } else if (key === 'items') {
      out.items = toStrict(value);
    } else if ((key === 'anyOf' || key === 'oneOf' || key === 'allOf') && Array.isArray(value)) {
      out[key] = value.map(toStrict);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function acceptsNull(node: unknown): boolean {
  if (!isObject(node)) return false;
  if (node.type === 'null' || (Array.isArray(node.type) && node.type.includes('null'))) return true;
  return Array.isArray(node.anyOf) && node.anyOf.some(acceptsNull);
}

/**
 * Removes the nulls `strictJsonSchema` allowed where the zod schema has an optional property, so
 * `{"options": null}` reads as no options. Nulls the zod schema itself accepts stay.
 */
export function withoutAddedNulls(value: unknown, schema: Json): unknown {
  if (Array.isArray(value)) {
    const items = isObject(schema.items) ? schema.items : undefined;
    return items ? value.map((v) => withoutAddedNulls(v, items)) : value;
  }
  if (!isObject(value)) return value;
  const shape = objectBranch(schema);
  if (!shape) return value;
  const properties = shape.properties as Record<string, Json>;
  const required = new Set(Array.isArray(shape.required) ? (shape.required as string[]) : []);
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    const property = properties[key];
    if (v === null && property && !required.has(key) && !acceptsNull(property)) continue;
    out[key] = property ? withoutAddedNulls(v, property) : v;
  }
  return out;
}

function objectBranch(schema: Json): Json | undefined {
  if (isObject(schema.properties)) return schema;
  if (Array.isArray(schema.anyOf)) return schema.anyOf.find((b): b is Json => isObject(b) && isObject(b.properties));
  return undefined;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The answer side of a zod schema as JSON Schema: the root itself (zod writes a root with an `id` as a `$ref` to its
 * own definition; here it is unwrapped, `id` naming it) and the named shapes it holds, by name.
 *
 * @example outputJsonSchema(goalOutput) // { schema: { type: 'object', … }, defs: { Roadmap: …, Owner: … }, id: 'Goal' }
 */
export function outputJsonSchema(schema: z.ZodType): { schema: Json; defs: Record<string, Json>; id?: string } {
  const { $schema: _drop, $defs, $ref, ...rest } = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Json;
  const defs = { ...($defs as Record<string, Json> | undefined) };
  if (typeof $ref === 'string' && $ref.startsWith('#/$defs/')) {
    const id = $ref.slice('#/$defs/'.length);
    const root = defs[id]!;
    delete defs[id];
    return { schema: { ...root, ...rest }, defs, id };
  }
  return { schema: rest, defs };
}
