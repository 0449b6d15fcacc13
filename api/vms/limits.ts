import type { IoLimits } from '../hosts/driver/host-driver.js';
import { badRequest } from '../http/errors.js';

/**
 * Resource limits of a VM and of a VM pool for its VMs: a VM's effective limit of each kind is the lower of its
 * own and its pool's (null: neither has one). The CPU limit is libvirt's `<cputune>`; NIC limits its
 * `<bandwidth>` on every interface (KiB/s, burst in KiB; inbound and outbound as the guest sees them); disk
 * limits its `<iotune>` on every disk. Each applies live to a running VM and stays in its definition
 * (limits.service.ts). This module is the table of them and what follows from it (answers, schemas, columns).
 */
const NET_MAX_KiBps = 100 * 1024 * 1024; // 100 GiB/s: above any NIC; tc and libvirt take 32-bit KiB/s
const DISK_MAX_BYTES = 1e15; // qemu's throttle ceiling (THROTTLE_VALUE_MAX)
const IOPS_MAX = 100_000_000;

export const LIMITS = [
  {
    field: 'cpuLimitPercent',
    column: 'cpu_limit_percent',
    max: 100,
    what: 'CPU hard limit: the share of one host CPU each vCPU may use, % (libvirt cputune quota/period)',
  },
  {
    field: 'netInboundKiBps',
    column: 'net_inbound_kibps',
    max: NET_MAX_KiBps,
    what: 'average rate each NIC receives at most, KiB/s (libvirt bandwidth inbound average)',
  },
  {
    field: 'netInboundPeakKiBps',
    column: 'net_inbound_peak_kibps',
    max: NET_MAX_KiBps,
    what: 'rate each NIC receives at most while it bursts, KiB/s (inbound peak; needs an inbound average)',
  },
  {
    field: 'netInboundBurstKiB',
    column: 'net_inbound_burst_kib',
    max: NET_MAX_KiBps,
    what: 'KiB each NIC may receive at the peak rate (inbound burst; needs an inbound average)',
  },
  {
    field: 'netOutboundKiBps',
    column: 'net_outbound_kibps',
    max: NET_MAX_KiBps,
    what: 'average rate each NIC sends at most, KiB/s (libvirt bandwidth outbound average)',
  },
  {
    field: 'netOutboundPeakKiBps',
    column: 'net_outbound_peak_kibps',
    max: NET_MAX_KiBps,
    what: 'rate each NIC sends at most while it bursts, KiB/s (outbound peak; needs an outbound average)',
  },
  {
    field: 'netOutboundBurstKiB',
    column: 'net_outbound_burst_kib',
    max: NET_MAX_KiBps,
    what: 'KiB each NIC may send at the peak rate (outbound burst; needs an outbound average)',
  },
  {
    field: 'diskReadBytesPerSec',
    column: 'disk_read_bytes_sec',
    max: DISK_MAX_BYTES,
    what: 'bytes/s each disk reads at most (libvirt iotune read_bytes_sec)',
  },
  {
    field: 'diskWriteBytesPerSec',
    column: 'disk_write_bytes_sec',
    max: DISK_MAX_BYTES,
    what: 'bytes/s each disk writes at most (libvirt iotune write_bytes_sec)',
  },
  {
    field: 'diskReadIops',
    column: 'disk_read_iops',
    max: IOPS_MAX,
    what: 'read operations/s each disk does at most (libvirt iotune read_iops_sec)',
  },
  {
    field: 'diskWriteIops',
    column: 'disk_write_iops',
    max: IOPS_MAX,
    what: 'write operations/s each disk does at most (libvirt iotune write_iops_sec)',
  },
] as const;

type Limit = (typeof LIMITS)[number];
export type LimitField = Limit['field'];
export type LimitColumn = Limit['column'];
export type EffectiveField = `effective${Capitalize<LimitField>}`;
/** A limit of each kind (null: none). */
export type Limits = Record<LimitField, number | null>;
/** The limit columns of a VM or pool row. */
export type LimitRow = Record<LimitColumn, number | null>;
export type LimitInput = Partial<Limits>;

export const LIMIT_COLUMNS = LIMITS.map((l) => l.column);
const IO_FIELDS = LIMITS.map((l) => l.field).filter((f) => f !== 'cpuLimitPercent');

const effectiveName = (field: LimitField) =>
  `effective${field[0].toUpperCase()}${field.slice(1)}` as EffectiveField;

/** The lower of a VM's own limit and its pool's (null: neither has one). */
export function effectiveLimit(
  own: number | null | undefined,
  pool: number | null | undefined,
): number | null {
  const set = [own, pool].filter((v): v is number => typeof v === 'number');
  return set.length ? Math.min(...set) : null;
}

export function limitsOf(row: Partial<LimitRow> | undefined): Limits {
  return Object.fromEntries(LIMITS.map((l) => [l.field, row?.[l.column] ?? null])) as Limits;
}

export function effectiveLimits(own: Partial<LimitRow>, pool: Partial<LimitRow> | undefined): Limits {
  return Object.fromEntries(
    LIMITS.map((l) => [l.field, effectiveLimit(own[l.column], pool?.[l.column])]),
  ) as Limits;
}

/** A VM's answer: each own limit and its `effective…` twin. */
export function vmLimitsAnswer(
  own: Partial<LimitRow>,
  pool: Partial<LimitRow> | undefined,
): Limits & Record<EffectiveField, number | null> {
  const effective = effectiveLimits(own, pool);
  const out: Record<string, number | null> = {};
  for (const l of LIMITS) {
    out[l.field] = own[l.column] ?? null;
    out[effectiveName(l.field)] = effective[l.field];
  }
  return out as Limits & Record<EffectiveField, number | null>;
}

/** The columns a request sets (a field left out stays as it is). */
export function limitColumns(input: LimitInput): Partial<LimitRow> {
  const out: Partial<LimitRow> = {};
  for (const l of LIMITS) if (input[l.field] !== undefined) out[l.column] = input[l.field]!;
  return out;
}

/** The limit fields a request names. */
export function limitFieldsIn(input: LimitInput): LimitField[] {
  return LIMITS.map((l) => l.field).filter((f) => input[f] !== undefined);
}

/** Only VM pools have limits (for their VMs): a hardware pool's request naming one is a 400. */
export function assertPoolMayLimit(kind: 'hardware' | 'vm', input: LimitInput): void {
  if (kind !== 'hardware') return;
  const named = LIMITS.find((l) => input[l.field] != null);
  if (named)
    throw badRequest(`${named.field}: only VM pools have limits (for their VMs)`, { field: named.field });
}

/** JSON schemas: the request fields (integers from 1, null: none) and the VM answer's fields. */
export function limitBodySchema(
  scope: 'vm' | 'pool',
): Record<
  LimitField,
  { type: readonly ['integer', 'null']; minimum: 1; maximum: number; description: string }
> {
  const whose =
    scope === 'vm'
      ? "; null: none. Applied live to a running VM; its VM pool's, when lower, wins"
      : ' of its VMs: the default of a VM with none, the ceiling of one with its own; applied live to running VMs; null: none';
  return Object.fromEntries(
    LIMITS.map((l) => [
      l.field,
      {
        type: ['integer', 'null'] as const,
        minimum: 1 as const,
        maximum: l.max,
        description: `${l.what}${whose}`,
      },
    ]),
  ) as ReturnType<typeof limitBodySchema>;
}

export function vmLimitsAnswerSchema() {
  return Object.fromEntries(
    LIMITS.flatMap((l) => [
      [l.field, { type: ['integer', 'null'], description: `the VM's own ${l.what}` }],
      [
        effectiveName(l.field),
        {
          type: ['integer', 'null'],
          description: "what the host applies: the lower of the VM's and its VM pool's",
        },
      ],
    ]),
  );
}

/** The network and disk part of effective limits, as a host driver takes it (a limit left out: none). */
export function ioLimits(limits: Limits): IoLimits {
  const out: IoLimits = {};
  for (const f of IO_FIELDS) if (limits[f] !== null) out[f as keyof IoLimits] = limits[f]!;
  return out;
}
