import type { Logger } from '../lib/log.js';
import { Counter, type Registry } from '../lib/metrics.js';
import type { LiveView } from './live-view.js';
import { MeasurementNames, type MultiValueMode, valueListToPoints } from './points.js';
import type { UserLookup } from './protocol/auth-file.js';
import { DecodeError } from './protocol/decode-error.js';
import { PacketDecoder } from './protocol/decoder.js';
import type { SecurityLevel } from './protocol/parts.js';
import type { TypesDb } from './protocol/types-db.js';
import type { Notification, Point, ValueList } from './types.js';

export interface PipelineOptions {
  typesDb: TypesDb;
  liveView: LiveView;
  /** Receives the points of each packet (a batcher: it must not block). */
  writePoints: (points: Point[]) => void;
  onNotification: (n: Notification) => void;
  multiValue: MultiValueMode;
  securityLevel: SecurityLevel;
  users?: UserLookup;
  registry: Registry;
  log: Logger;
}

/** Log lines about the same bad sender at most this often, so a misconfigured host cannot flood the log. */
const LOG_EVERY_MS = 60_000;

/** What the pipeline has counted since it started (also on `GET /metrics`). */
export interface PipelineStats {
  packets: number;
  valueLists: number;
  values: number;
  notifications: number;
  parseErrors: number;
  authFailures: number;
  refused: number;
  unknownTypes: number;
  nonFinite: number;
  points: number;
}

/**
 * The packet path: pure parser → types.db → live view and points. Every drop is counted by kind; bad
 * input never throws out of `handle`. Counting is plain arithmetic on the hot path; Prometheus reads the
 * figures when it is scraped.
 */
export class IngestPipeline {
  private readonly decoder: PacketDecoder;
  private readonly counts: PipelineStats = {
    packets: 0,
    valueLists: 0,
    values: 0,
    notifications: 0,
    parseErrors: 0,
    authFailures: 0,
    refused: 0,
    unknownTypes: 0,
    nonFinite: 0,
    points: 0,
  };
  private readonly lastLogged = new Map<string, number>();
  /** Log lines left out since the last one of the same key, told with the next. */
  private readonly suppressed = new Map<string, number>();
  private batch: Point[] = [];
  private readonly names = new WeakMap<object, string[]>();
  private readonly measurements: MeasurementNames;
  /** When the packet being handled arrived (ms): one clock read per packet, not per value list. */
  private arrival = 0;

  constructor(private readonly o: PipelineOptions) {
    const counter = (name: string, help: string, key: keyof PipelineStats) =>
      new Counter({
        name,
        help,
        registers: [o.registry],
        collect() {
          this.reset();
          this.inc(counts[key]);
        },
      });
    const counts = this.counts;
    counter('herd_collectd_value_lists_total', 'value lists decoded and accepted', 'valueLists');
    counter('herd_collectd_values_total', 'values decoded and accepted', 'values');
    counter('herd_collectd_notifications_total', 'notifications received', 'notifications');
    counter('herd_collectd_parse_errors_total', 'packets that could not be decoded', 'parseErrors');
    counter(
      'herd_collectd_auth_failures_total',
      'packets with a wrong user, password or signature',
      'authFailures',
    );
    counter(
      'herd_collectd_refused_parts_total',
      'parts dropped because the security level requires signing/encryption',
      'refused',
    );
    counter(
      'herd_collectd_unknown_types_total',
      'value lists dropped: type unknown or value count disagrees with types.db',
      'unknownTypes',
    );
    counter(
      'herd_collectd_non_finite_values_total',
      'NaN/infinite gauges skipped (InfluxDB cannot store them)',
      'nonFinite',
    );
    counter('herd_collectd_points_total', 'points produced for the metrics store', 'points');
    this.measurements = new MeasurementNames(o.multiValue);
    this.decoder = new PacketDecoder({
      onValues: (vl) => this.onValues(vl),
      onNotification: (n) => {
        this.counts.notifications++;
        o.onNotification({ ...n });
      },
      securityLevel: o.securityLevel,
      users: o.users,
    });
  }

  /** `source`: the sender's address, named in the log lines about bad packets (at most one a minute each). */
  handle(packet: Buffer, source = ''): void {
    this.counts.packets++;
    this.arrival = this.o.liveView.now();
    try {
      const summary = this.decoder.decode(packet);
      if (summary.refused > 0) {
        this.counts.refused += summary.refused;
        this.logOnce(
          `refused:${source}`,
          { source, parts: summary.refused },
          `packet parts dropped: security level is ${this.o.securityLevel}`,
        );
      }
    } catch (err) {
      if (err instanceof DecodeError && err.kind === 'auth') {
        this.counts.authFailures++;
        this.logOnce(
          `auth:${source}:${err.message}`,
          { source, reason: err.message },
          'collectd packet rejected: authentication failed',
        );
      } else {
        this.counts.parseErrors++;
        this.logOnce(
          `parse:${source}`,
          { source, reason: (err as Error).message, bytes: packet.length },
          'collectd packet could not be decoded',
        );
      }
    } finally {
      // Whatever was decoded before an error is kept, as collectd dispatches parts as it parses them.
      if (this.batch.length > 0) {
        const points = this.batch;
        this.batch = [];
        this.o.writePoints(points);
      }
    }
  }

  private readonly now = () => this.arrival;

  stats(): PipelineStats {
    return { ...this.counts };
  }

  private onValues(vl: ValueList): void {
    const sources = this.o.typesDb.get(vl.type);
    if (sources === undefined || sources.length !== vl.values.length) {
      this.counts.unknownTypes++;
      this.logOnce(
        `types:${vl.host}/${vl.plugin}/${vl.type}`,
        {
          host: vl.host,
          plugin: vl.plugin,
          type: vl.type,
          values: vl.values.length,
          expected: sources?.length ?? null,
        },
        sources === undefined
          ? 'value list dropped: type not in types.db'
          : 'value list dropped: value count disagrees with types.db',
      );
      return;
    }
    let names = this.names.get(sources);
    if (names === undefined) {
      names = sources.map((s) => s.name);
      this.names.set(sources, names);
    }
    this.counts.valueLists++;
    this.counts.values += vl.values.length;
    this.o.liveView.update(vl, names, this.arrival);
    const measurements = this.measurements.of(vl.plugin, names);
    const r = valueListToPoints(vl, names, this.o.multiValue, this.batch, this.now, measurements);
    this.counts.points += r.points;
    this.counts.nonFinite += r.nonFinite;
  }

  private logOnce(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < LOG_EVERY_MS) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    if (this.lastLogged.size > 10_000) {
      this.lastLogged.clear();
      this.suppressed.clear();
    }
    this.lastLogged.set(key, now);
    const folded = this.suppressed.get(key);
    this.suppressed.delete(key);
    this.o.log.warn(folded ? { ...fields, suppressedSinceLast: folded } : fields, message);
  }
}
