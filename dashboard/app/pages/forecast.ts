import { get } from '../api.js';
import { fill, h } from '../dom.js';
import { scaleFor } from '../format.js';
import { embedOptions } from '../vega-options.js';

interface SeriesForecast {
  capacity: number | null;
  insufficientHistory: boolean;
  reason: string | null;
  history: Array<[number, number]>;
  forecast: Array<{ time: number; value: number; lower: number; upper: number }>;
  fullInDays: { low: number; likely: number; high: number | null } | null;
}
interface ResourceForecast extends SeriesForecast {
  resource: 'cpu' | 'memory' | 'storage';
  kind: 'use' | 'allocation';
  unit: string;
}
interface QuotaForecast extends SeriesForecast {
  userId: number | null;
  username: string | null;
  resource: string;
}
interface PoolForecast {
  now: number;
  horizonDays: number;
  resources: ResourceForecast[];
  quotas: QuotaForecast[];
}

const TITLES: Record<string, string> = {
  'cpu use': 'CPU use (busy cores)',
  'memory use': 'Memory use',
  'cpu allocation': 'vCPUs allocated',
  'memory allocation': 'Memory allocated',
  'storage allocation': 'Storage allocated (GiB)',
};
const QUOTA_UNITS: Record<string, string> = { memoryMiB: 'MiB', storageGiB: 'GiB' };
const REFRESH_MS = 300_000;

const days = (n: number) =>
  n < 1 ? 'less than a day' : `${Math.round(n)} day${Math.round(n) === 1 ? '' : 's'}`;

/** "memory use full in ~19 days (between 17 and 21)", or why not. */
export function fullText(name: string, f: SeriesForecast, horizonDays: number): string {
  if (f.insufficientHistory) return `${name}: not enough history to forecast yet`;
  if (f.capacity === null) return `${name}: no capacity to be full against`;
  const full = f.fullInDays;
  if (!full) return `${name}: not full within ${horizonDays} days`;
  if (full.likely === 0) return `${name}: full now`;
  const latest = full.high === null ? `after ${horizonDays} days` : `${Math.round(full.high)}`;
  return `${name} full in ~${days(full.likely)} (between ${Math.round(full.low)} and ${latest})`;
}

/**
 * A pool's capacity forecast (GET /pools/:id/forecast): per resource and quota a sentence saying when it is full,
 * and a graph of its history, the forecast past now with the 95 % interval as a band, and the capacity.
 */
export function forecastPanel(poolId: number): { el: HTMLElement; dispose(): void } {
  const body = h('div', { class: 'forecast-grid' }, h('p', { class: 'muted' }, 'Loading the forecast…'));
  const el = h(
    'section',
    { class: 'card forecast', 'aria-label': 'Capacity forecast' },
    h('h2', null, 'Capacity forecast'),
    body,
  );
  const finalizers: Array<() => void> = [];
  let disposed = false;
  let timer: number | undefined;

  async function load(): Promise<void> {
    window.clearTimeout(timer);
    if (disposed) return;
    let answer: PoolForecast;
    try {
      answer = await get<PoolForecast>(`/api/v1/pools/${poolId}/forecast`);
    } catch (err) {
      fill(body, h('p', { class: 'muted' }, `Could not load the forecast: ${(err as Error).message}`));
      return;
    }
    if (disposed) return;
    for (const f of finalizers.splice(0)) f();
    const items: Array<{ key: string; name: string; unit: string; f: SeriesForecast }> = [
      ...answer.resources.map((r) => ({
        key: `${r.resource}-${r.kind}`,
        name: `${r.resource} ${r.kind}`,
        unit: r.unit === 'MiB' ? 'MiB' : '',
        f: r as SeriesForecast,
      })),
      ...answer.quotas.map((q) => ({
        key: `quota-${q.userId ?? 'total'}-${q.resource}`,
        name: `${q.username ?? 'pool total'} quota ${q.resource}`,
        unit: QUOTA_UNITS[q.resource] === 'MiB' ? 'MiB' : '',
        f: q as SeriesForecast,
      })),
    ];
    if (!items.length) {
      fill(body, h('p', { class: 'muted' }, 'Nothing to forecast: no hosts, storage or quotas here.'));
      return;
    }
    // Series without a forecast are one line each below the graphs.
    const waiting = items.filter((i) => i.f.insufficientHistory || !i.f.history.length);
    const cards = items
      .filter((i) => !waiting.includes(i))
      .map((item) => {
        const view = h('div', { class: 'vega', 'data-forecast': item.key });
        const card = h(
          'figure',
          { class: 'graph card', 'data-forecast': item.key },
          h('figcaption', null, TITLES[item.name] ?? item.name),
          h('p', { class: 'forecast-text' }, fullText(item.name, item.f, answer.horizonDays)),
          view,
        );
        return { item, view, card };
      });
    fill(
      body,
      cards.map((c) => c.card),
      waiting.length > 0 &&
        h(
          'ul',
          { class: 'forecast-waiting muted' },
          waiting.map((i) => h('li', { 'data-forecast': i.key }, fullText(i.name, i.f, answer.horizonDays))),
        ),
    );
    for (const { item, view } of cards) {
      const result = await vegaEmbed(
        view,
        spec(item.f, item.unit, answer.now) as never,
        await embedOptions(),
      );
      if (disposed) result.finalize();
      else finalizers.push(() => result.finalize());
    }
    timer = window.setTimeout(() => void load(), REFRESH_MS);
  }

  void Promise.resolve().then(load);
  return {
    el,
    dispose() {
      disposed = true;
      window.clearTimeout(timer);
      for (const f of finalizers.splice(0)) f();
    },
  };
}

function spec(f: SeriesForecast, unit: string, now: number): object {
  const max = Math.max(f.capacity ?? 0, ...f.history.map(([, v]) => v), ...f.forecast.map((p) => p.upper));
  const scale = scaleFor(unit, max);
  const d = scale.divisor;
  const rows = [
    ...f.history.map(([t, v]) => ({ t: t * 1000, value: v / d, line: 'history' })),
    ...f.forecast.map((p) => ({
      t: p.time * 1000,
      value: p.value / d,
      lower: p.lower / d,
      upper: p.upper / d,
      line: 'forecast',
    })),
  ];
  const x = {
    field: 't',
    type: 'temporal',
    title: null,
    axis: { labelOverlap: true, tickCount: 6, grid: false, format: '%b %d' },
  };
  const layers: object[] = [
    {
      transform: [{ filter: "datum.line === 'forecast'" }],
      mark: { type: 'area', opacity: 0.2, color: '#e08a00', clip: true },
      encoding: { x, y: { field: 'lower', type: 'quantitative' }, y2: { field: 'upper' } },
    },
    {
      mark: { type: 'line', strokeWidth: 1.6, clip: true },
      encoding: {
        x,
        y: {
          field: 'value',
          type: 'quantitative',
          title: scale.label || null,
          scale: { zero: true, nice: true, domainMax: (max / d) * 1.05 },
        },
        color: {
          field: 'line',
          type: 'nominal',
          title: null,
          scale: { domain: ['history', 'forecast'], range: ['#3366cc', '#e08a00'] },
          legend: { orient: 'bottom', direction: 'horizontal' },
        },
        strokeDash: {
          field: 'line',
          type: 'nominal',
          scale: {
            domain: ['history', 'forecast'],
            range: [
              [1, 0],
              [5, 3],
            ],
          },
          legend: null,
        },
      },
    },
    {
      data: { values: [{ t: now * 1000 }] },
      mark: { type: 'rule', color: '#888', strokeDash: [2, 2] },
      encoding: { x: { field: 't', type: 'temporal' } },
    },
  ];
  if (f.capacity !== null) {
    layers.push({
      data: { values: [{ capacity: f.capacity / d }] },
      mark: { type: 'rule', color: '#c0392b' },
      encoding: { y: { field: 'capacity', type: 'quantitative' } },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: 'history, forecast with its interval, and capacity',
    width: 'container',
    height: 150,
    autosize: { type: 'fit-x', contains: 'padding' },
    data: { values: rows },
    layer: layers,
    config: { view: { stroke: null }, font: 'system-ui, sans-serif' },
  };
}
