import { get } from '../api.js';
import { fill, h } from '../dom.js';
import { mib, percent } from '../format.js';
import { dataTable } from '../table.js';

interface Size {
  vcpus: number;
  memoryMiB: number;
}
interface QuotaResource {
  used: number;
  after: number;
  limit: number | null;
}
interface VmSizing {
  vmId: number;
  name: string;
  poolName: string;
  owner: string;
  status: 'oversized' | 'insufficient_data';
  holds: Size;
  p95: { cpuPercent: number; memoryMiB: number; memoryPercent: number } | null;
  suggested: Size | null;
  frees: Size | null;
  quota: { vcpus: QuotaResource; memoryMiB: QuotaResource } | null;
}
interface HostSizing {
  hostId: number;
  hostname: string;
  status: 'idle' | 'insufficient_data';
  p95: { cpuPercent: number; loadPerCpu: number } | null;
}
interface Report {
  items: VmSizing[];
  total: number;
  hosts: HostSizing[];
  window: { days: number; percentile: number };
  thresholds: { threshold: number };
}

const size = (s: Size | null) => (s ? `${s.vcpus} vCPU · ${mib(s.memoryMiB)}` : '–');
const limit = (r: QuotaResource, unit: (n: number) => string) =>
  `${unit(r.used)} → ${unit(r.after)}${r.limit === null ? '' : ` of ${unit(r.limit)}`}`;

/** The pool's right-sizing report (GET /api/v1/rightsizing?poolId=): oversized VMs, idle hosts, a CSV link. */
export function rightsizingPanel(poolId: number): { el: HTMLElement } {
  const vms = dataTable<VmSizing>({
    label: 'Right-sizing',
    empty: 'No oversized VM.',
    search: (r) => `${r.name} ${r.poolName} ${r.owner}`,
    columns: [
      { title: 'VM', value: (r) => r.name, render: (r) => h('a', { href: `#/vm/${r.vmId}` }, r.name) },
      { title: 'Pool', value: (r) => r.poolName, secondary: true },
      { title: 'Holds', value: (r) => r.holds.vcpus * 1e6 + r.holds.memoryMiB, render: (r) => size(r.holds) },
      {
        title: 'p95 CPU',
        numeric: true,
        value: (r) => r.p95?.cpuPercent ?? null,
        render: (r) => (r.p95 ? percent(r.p95.cpuPercent) : 'too little data'),
      },
      {
        title: 'p95 memory',
        numeric: true,
        value: (r) => r.p95?.memoryMiB ?? null,
        render: (r) => (r.p95 ? `${mib(r.p95.memoryMiB)} (${percent(r.p95.memoryPercent)})` : '–'),
      },
      { title: 'Suggested', value: (r) => r.suggested?.vcpus ?? null, render: (r) => size(r.suggested) },
      {
        title: 'Frees',
        value: (r) => (r.frees ? r.frees.vcpus * 1e6 + r.frees.memoryMiB : null),
        render: (r) => size(r.frees),
      },
      {
        title: 'Quota effect',
        secondary: true,
        value: (r) => r.quota?.vcpus.after ?? null,
        render: (r) =>
          r.quota ? `vCPUs ${limit(r.quota.vcpus, String)}; memory ${limit(r.quota.memoryMiB, mib)}` : '–',
      },
    ],
  });
  const summary = h('p', { class: 'muted' });
  const hosts = h('div');
  const csv = h(
    'a',
    {
      href: `/api/v1/rightsizing?poolId=${poolId}&format=csv`,
      download: 'rightsizing.csv',
      class: 'csv-link',
    },
    'Download CSV',
  );
  const el = h(
    'section',
    { class: 'card rightsizing' },
    h('h2', null, 'Right-sizing'),
    summary,
    vms.el,
    csv,
    hosts,
  );
  void get<Report>(`/api/v1/rightsizing?poolId=${poolId}&limit=1000`)
    .then((r) => {
      fill(
        summary,
        `VMs whose ${r.window.percentile}th-percentile CPU or memory over ${r.window.days} days is under ${r.thresholds.threshold} % of what they hold.`,
      );
      vms.setRows(r.items);
      const idle = r.hosts.filter((x) => x.status === 'idle');
      fill(
        hosts,
        idle.length > 0 && [
          h('h3', null, 'Idle hosts'),
          h(
            'ul',
            { class: 'idle-hosts' },
            idle.map((x) =>
              h(
                'li',
                null,
                h('a', { href: `#/host/${x.hostId}` }, x.hostname),
                `: p95 CPU ${percent(x.p95?.cpuPercent)}, load per CPU ${x.p95?.loadPerCpu ?? '–'}`,
              ),
            ),
          ),
        ],
      );
    })
    .catch(() => fill(summary, 'Not available.'));
  return { el };
}
