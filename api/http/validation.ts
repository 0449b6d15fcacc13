/**
 * Request validation: JSON bodies are taken as they are (no coercion: `"2"`, `true`, `[1]` and `null` are not
 * numbers), while path parameters and query strings, which are text by nature, are converted. Every integer
 * of a request schema that names no bound of its own is bounded to PostgreSQL's `integer` column, so an id or
 * count past it is a 400 and never reaches the database; fields held in `bigint` columns say so with
 * `maximum: MAX_BIGINT_SAFE`. No number anywhere in a request may be infinite: ajv coerces `Infinity` and
 * `1e999` in a query string to Infinity and lets it pass `maximum` (and JSON's `1e999` parses as Infinity),
 * so every validated part is checked for them after ajv (`refusingNonFinite`).
 */
import ajvCompiler from '@fastify/ajv-compiler';
import { MAX_INT4, MIN_INT4 } from './schemas.js';

type Schema = Record<string, unknown>;

/** A copy of `schema` in which every integer without `maximum` / `minimum` gets PostgreSQL integer's. */
export function boundIntegers<T>(schema: T): T {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const out: Schema = {};
    for (const [key, value] of Object.entries(node)) out[key] = walk(value);
    const types = Array.isArray(out.type) ? out.type : [out.type];
    if (types.includes('integer')) {
      out.maximum ??= MAX_INT4;
      out.minimum ??= MIN_INT4;
    }
    return out;
  };
  return walk(schema) as T;
}

interface RouteDefinition {
  schema: unknown;
  method: string;
  url: string;
  httpPart: string;
}
type AjvError = {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  params: object;
  message: string;
};
type Validate = ((data: unknown, ...context: unknown[]) => boolean) & { errors?: AjvError[] | null };
// @fastify/ajv-compiler's types describe its compiler as taking a schema; Fastify calls it with the route.
type Compile = (route: RouteDefinition) => Validate;
const factory = ajvCompiler() as unknown as (externalSchemas: object, options: AjvCompilerOptions) => Compile;
interface AjvCompilerOptions {
  customOptions?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Fastify's validator factory: two ajv instances, coercing for params/querystring/headers, strict for bodies. */
export function buildValidator(externalSchemas: object, options: AjvCompilerOptions = {}): Compile {
  const custom = options.customOptions ?? {};
  const coercing = factory(externalSchemas, {
    ...options,
    customOptions: { ...custom, coerceTypes: 'array' },
  });
  const strict = factory(externalSchemas, { ...options, customOptions: { ...custom, coerceTypes: false } });
  return (route) =>
    refusingNonFinite(
      (route.httpPart === 'body' ? strict : coercing)({ ...route, schema: boundIntegers(route.schema) }),
    );
}

/** The ajv instance path (`/a/0/b`) of the first number in `data` that is not finite, or null. */
function nonFinitePath(data: unknown): string | null {
  const stack: Array<[unknown, string]> = [[data, '']];
  while (stack.length) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return path;
    } else if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
      for (const [key, child] of Object.entries(value)) stack.push([child, `${path}/${key}`]);
    }
  }
  return null;
}

/** `validate`, failing as ajv does (a 400 naming the field) when the data it passed holds Infinity or NaN. */
function refusingNonFinite(validate: Validate): Validate {
  const wrapped: Validate = Object.assign(
    (data: unknown, ...context: unknown[]) => {
      const ok = validate(data, ...context);
      wrapped.errors = validate.errors;
      if (ok !== true) return ok; // false, or an async schema's promise
      const at = nonFinitePath(data);
      if (at === null) return true;
      wrapped.errors = [
        {
          instancePath: at,
          schemaPath: '#',
          keyword: 'finite',
          params: {},
          message: 'must be a finite number',
        },
      ];
      return false;
    },
    // Fastify passes the parent object (so that ajv may replace a coerced root) only to validators that have it.
    { schemaEnv: (validate as { schemaEnv?: unknown }).schemaEnv },
  );
  return wrapped;
}

/** ajv's type messages in words: `must be integer,null` → `must be a number (an integer) or null`. */
export function typeMessage(types: string): string {
  const words: Record<string, string> = {
    integer: 'a number (an integer)',
    number: 'a number',
    string: 'a string',
    boolean: 'true or false',
    object: 'an object',
    array: 'an array',
  };
  return `must be ${types
    .split(',')
    .map((t) => words[t] ?? t)
    .join(' or ')}`;
}
