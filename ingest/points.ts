import type { Point, ValueList } from './types.js';

/**
 * How a value list becomes points, exactly as InfluxDB's own collectd service writes them, so dashboards
 * built on InfluxDB's listener keep working:
 * - `split` (InfluxDB's default): one point per value, measurement `<plugin>_<value name>`, field `value`;
 * - `join` (`parse-multivalue-plugin = "join"`): one point per value list, measurement `<plugin>`, one field
 *   per value name.
 * Tags `host`, `instance` (plugin instance), `type`, `type_instance`; empty ones are left out.
 */
export type MultiValueMode = 'split' | 'join';

export interface ConversionResult {
  points: number;
  /** Non-finite gauges (collectd's "unknown"): InfluxDB cannot store them, so they are skipped and counted. */
  nonFinite: number;
}

export function valueListToPoints(
  vl: ValueList,
  names: readonly string[],
  mode: MultiValueMode,
  out: Point[],
  now: () => number = Date.now,
): ConversionResult {
  const tags: Record<string, string> = {};
  if (vl.host) tags.host = vl.host;
  if (vl.pluginInstance) tags.instance = vl.pluginInstance;
  if (vl.type) tags.type = vl.type;
  if (vl.typeInstance) tags.type_instance = vl.typeInstance;
  const time = vl.time > 0 ? vl.time : now() / 1000;
  let nonFinite = 0;
  let points = 0;
  if (mode === 'join') {
    const fields: Record<string, number> = {};
    let any = false;
    for (let i = 0; i < vl.values.length; i++) {
      const value = Number(vl.values[i]);
      if (!Number.isFinite(value)) {
        nonFinite++;
        continue;
      }
      fields[names[i]] = value;
      any = true;
    }
    if (any) {
      out.push({ measurement: vl.plugin, tags, fields, time });
      points++;
    }
    return { points, nonFinite };
  }
  for (let i = 0; i < vl.values.length; i++) {
    const value = Number(vl.values[i]);
    if (!Number.isFinite(value)) {
      nonFinite++;
      continue;
    }
    out.push({ measurement: `${vl.plugin}_${names[i]}`, tags, fields: { value }, time });
    points++;
  }
  return { points, nonFinite };
}
