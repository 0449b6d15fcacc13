/**
 * The shapes that flow through ingest: socket → queue → parser (ValueList, Notification) → points
 * (Point) → batcher → MetricsStore. The parser knows nothing of storage; stores know nothing of collectd.
 */

export type DsType = 'counter' | 'gauge' | 'derive' | 'absolute';

/** One collectd value list, with the state carried across parts already applied. */
export interface ValueList {
  host: string;
  plugin: string;
  pluginInstance: string;
  type: string;
  typeInstance: string;
  /** Seconds since the epoch (TIME_HR / 2^30, or TIME). */
  time: number;
  /** Seconds (INTERVAL_HR / 2^30, or INTERVAL). */
  interval: number;
  /** Data source types as the packet gives them, one per value. */
  dsTypes: DsType[];
  /**
   * Values as doubles (64-bit counters/derives/absolutes above 2^53 lose low bits here; the decoder's
   * exact mode gives bigint instead, for `herd decode`).
   */
  values: Array<number | bigint>;
}

export type Severity = 1 | 2 | 4;
export const SEVERITY_NAMES: Record<Severity, 'FAILURE' | 'WARNING' | 'OKAY'> = {
  1: 'FAILURE',
  2: 'WARNING',
  4: 'OKAY',
};

export interface Notification {
  host: string;
  plugin: string;
  pluginInstance: string;
  type: string;
  typeInstance: string;
  time: number;
  severity: Severity;
  message: string;
}

/** One point for the metrics store, as InfluxDB's line protocol sees it. */
export interface Point {
  measurement: string;
  /** Tag values; empty strings are left out when written, as InfluxDB's collectd service does. */
  tags: Record<string, string>;
  fields: Record<string, number>;
  /** Seconds since the epoch, microsecond precision kept. */
  time: number;
}
