import { type RawBuilder, sql } from 'kysely';
import type { TagFilter } from './metrics-store.js';

/**
 * SQL shared by the PostgreSQL store and its rollups, so that rollups select exactly the series raw
 * queries do and reduce them the same way.
 */

/** `tags @> {...}` for single values (GIN-indexed), `->> = ANY` for lists, `NOT ?` for "no such tag". */
export function tagWhere(tags: TagFilter): RawBuilder<unknown> {
  const exact: Record<string, string> = {};
  const conditions: RawBuilder<unknown>[] = [];
  for (const [key, wanted] of Object.entries(tags)) {
    const values = typeof wanted === 'string' ? [wanted] : [...wanted];
    if (values.length === 0) {
      conditions.push(sql`false`);
    } else if (values.length === 1 && values[0] !== '') {
      exact[key] = values[0];
    } else {
      const some = values.filter((v) => v !== '');
      const alternatives: RawBuilder<unknown>[] = [];
      if (some.length) alternatives.push(sql`tags ->> ${key} = ANY(${some}::text[])`);
      if (some.length < values.length) alternatives.push(sql`NOT (tags ? ${key})`);
      conditions.push(sql`(${sql.join(alternatives, sql` OR `)})`);
    }
  }
  if (Object.keys(exact).length) conditions.unshift(sql`tags @> ${JSON.stringify(exact)}::jsonb`);
  return conditions.length ? sql`(${sql.join(conditions, sql` AND `)})` : sql`true`;
}

export const AGGREGATE_SQL = {
  mean: sql`avg(value)`,
  max: sql`max(value)`,
  min: sql`min(value)`,
  sum: sql`sum(value)`,
  last: sql`(array_agg(value ORDER BY time DESC))[1]`,
};
export const COMBINE_SQL = {
  mean: sql`avg(b.v)`,
  max: sql`max(b.v)`,
  min: sql`min(b.v)`,
  sum: sql`sum(b.v)`,
};
