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

/**
 * Measurement names, built once per plugin and type and shared by every series of them: a point then
 * carries a string the store has seen (and cached its checks and escaping for) rather than a fresh one.
 */
export class MeasurementNames {
  private readonly byPlugin = new Map<string, Map<readonly string[], readonly string[]>>();

  constructor(private readonly mode: MultiValueMode) {}

  /** split: `<plugin>_<value name>` per value; join: `[plugin]`. `names` is types.db's (one array per type). */
  of(plugin: string, names: readonly string[]): readonly string[] {
    let byNames = this.byPlugin.get(plugin);
    if (byNames === undefined) {
      // Plugin names come from the network: a flood of made-up ones must not grow this without end.
      if (this.byPlugin.size >= 10_000) this.byPlugin.clear();
      byNames = new Map();
      this.byPlugin.set(plugin, byNames);
    }
    let out = byNames.get(names);
    if (out === undefined) {
      out = this.mode === 'join' ? [plugin] : names.map((name) => `${plugin}_${name}`);
      byNames.set(names, out);
    }
    return out;
  }
}

export function valueListToPoints(
  vl: ValueList,
  names: readonly string[],
  mode: MultiValueMode,
  out: Point[],
  now: () => number = Date.now,
  measurements: readonly string[] = new MeasurementNames(mode).of(vl.plugin, names),
): ConversionResult {
  const time = vl.time > 0 ? vl.time : now() / 1000;
  // One tags object for all points of the value list (stores do not change it).
  const tags: Record<string, string> = {};
  if (vl.host) tags.host = vl.host;
  if (vl.pluginInstance) tags.instance = vl.pluginInstance;
  if (vl.type) tags.type = vl.type;
  if (vl.typeInstance) tags.type_instance = vl.typeInstance;
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
      out.push({ measurement: measurements[0], tags, fields, time });
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
    out.push({ measurement: measurements[i], tags, fields: { value }, time });
    points++;
  }
  return { points, nonFinite };
}
