/**
 * Request validation: JSON bodies are taken as they are (no coercion: `"2"`, `true`, `[1]` and `null` are not
 * numbers), while path parameters and query strings, which are text by nature, are converted. Every integer
 * of a request schema that names no bound of its own is bounded to PostgreSQL's `integer` column, so an id or
 * count past it is a 400 and never reaches the database; fields held in `bigint` columns say so with
 * `maximum: MAX_BIGINT_SAFE`.
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
type Validate = (data: unknown) => boolean;
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
    (route.httpPart === 'body' ? strict : coercing)({ ...route, schema: boundIntegers(route.schema) });
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
