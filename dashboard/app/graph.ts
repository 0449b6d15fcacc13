import { get, query } from './api.js';
import { fill, h } from './dom.js';
import { graphRows, ROLLING, type Row, timeTicks } from './graph-data.js';
import { onLive } from './live.js';
import type { Graph } from './types.js';
import { embedOptions } from './vega-options.js';

type RangeKind = '1h' | '24h' | '7d' | '30d' | 'custom';
const SPANS: Record<Exclude<RangeKind, 'custom'>, number> = {
  '1h': 3600,
  '24h': 86_400,
  '7d': 7 * 86_400,
  '30d': 30 * 86_400,
};
/** How often a graph of the last hour, day… is fetched again, so it moves. */
const REFRESH_MS: Record<Exclude<RangeKind, 'custom'>, number> = {
  '1h': 15_000,
  '24h': 60_000,
  '7d': 300_000,
  '30d': 300_000,
};

export interface MetricChoice {
  name: string;
  title: string;
}

/**
 * Graphs of one host, VM or pool: a range picker (last hour, 24 hours, 7 days, 30 days, custom), then one
 * vega-lite graph per metric with average (solid) and peak (dashed) lines, optional rolling average and peak,
 * values in readable units, and a hover rule listing every line at that time. Each graph asks for as many
 * buckets as it is wide in pixels.
 */
export function graphPanel(entity: string, metrics: MetricChoice[]): { el: HTMLElement; dispose(): void } {
  let range: RangeKind = '1h';
  let custom = { from: 0, to: 0 };
  let rolling = false;
  let timer: number | undefined;
  let disposed = false;
  const finalizers = new Map<string, () => void>();

  const buttons = (Object.keys(SPANS) as RangeKind[]).concat('custom').map((kind) =>
    h(
      'button',
      {
        type: 'button',
        class: 'small range',
        'aria-pressed': String(kind === range),
        'data-range': kind,
        onclick: () => {
          range = kind;
          step = 10;
          for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.range === kind));
          customBox.hidden = kind !== 'custom';
          if (kind !== 'custom') void load();
        },
      },
      kind === 'custom' ? 'Custom…' : `Last ${kind}`,
    ),
  );
  const local = (s: number) =>
    new Date(s * 1000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  const fromInput = h('input', {
    type: 'datetime-local',
    'aria-label': 'From',
    value: local(Date.now() / 1000 - 86_400),
  });
  const toInput = h('input', { type: 'datetime-local', 'aria-label': 'To', value: local(Date.now() / 1000) });
  const customBox = h(
    'form',
    {
      class: 'custom-range',
      hidden: true,
      onsubmit: (e: Event) => {
        e.preventDefault();
        const from = Date.parse(fromInput.value) / 1000;
        const to = Date.parse(toInput.value) / 1000;
        if (!(to > from)) return;
        custom = { from, to };
        void load();
      },
    },
    h('label', null, 'From ', fromInput),
    h('label', null, 'to ', toInput),
    h('button', { type: 'submit', class: 'small' }, 'Show'),
  );
  const rollingBox = h('input', {
    type: 'checkbox',
    onchange: (e: Event) => {
      rolling = (e.target as HTMLInputElement).checked;
      void load();
    },
  });
  const cards = metrics.map((m) => {
    const view = h('div', { class: 'vega', 'data-metric': m.name });
    const note = h('p', { class: 'graph-note' });
    return {
      metric: m,
      view,
      note,
      el: h(
        'figure',
        { class: 'graph card', 'data-metric': m.name },
        h('figcaption', null, m.title),
        view,
        note,
      ),
    };
  });
  const el = h(
    'section',
    { class: 'graphs', 'aria-label': 'Graphs' },
    h(
      'div',
      { class: 'graph-toolbar', role: 'group', 'aria-label': 'Time range' },
      buttons,
      h('label', { class: 'rolling' }, rollingBox, ` Rolling (${ROLLING} buckets)`),
    ),
    customBox,
    h(
      'div',
      { class: 'graph-grid' },
      cards.map((c) => c.el),
    ),
  );

  /** When the graphs were last asked for (ms), their widest bucket (s), and whether a load is under way. */
  let loadedAt = 0;
  let step = 10;
  let loading = false;

  async function load(why: 'range' | 'timer' | 'push' = 'range'): Promise<void> {
    window.clearTimeout(timer);
    if (disposed) return;
    loading = true;
    loadedAt = Date.now();
    el.dataset.loadedBy = why;
    const now = Date.now() / 1000;
    const [from, to] = range === 'custom' ? [custom.from, custom.to] : [now - SPANS[range], now];
    await Promise.all(
      cards.map(async (card) => {
        const width = Math.max(100, Math.floor(card.view.clientWidth || 600));
        try {
          const graph = await get<Graph>(
            `/api/v1/metrics${query({ entity, metric: card.metric.name, from: from.toFixed(0), to: to.toFixed(0), width })}`,
          );
          step = Math.max(step, graph.step);
          if (!disposed) await draw(card, graph);
        } catch (err) {
          card.note.textContent = `Could not load: ${(err as Error).message}`;
        }
      }),
    );
    loading = false;
    if (range !== 'custom' && !disposed)
      timer = window.setTimeout(() => void load('timer'), REFRESH_MS[range]);
  }

  // The graphs extend with the live figures: a push about what they show, once a bucket has passed since they
  // were last asked for, loads them again (so the newest complete bucket is drawn within a push of completing).
  const [entityKind, entityId] = entity.split(':');
  const offLive = onLive('metrics', (m: { hosts: Record<string, unknown>; vms: Record<string, unknown> }) => {
    if (disposed || loading || range === 'custom') return;
    const about = entityKind === 'pool' || (entityKind === 'host' ? entityId in m.hosts : entityId in m.vms);
    if (about && Date.now() - loadedAt >= step * 1000) void load('push');
  });

  async function draw(card: (typeof cards)[number], graph: Graph): Promise<void> {
    const { rows, unit, partial } = graphRows(graph, rolling);
    finalizers.get(card.metric.name)?.();
    finalizers.delete(card.metric.name);
    const bucket =
      graph.step >= 3600
        ? `${graph.step / 3600} h`
        : graph.step >= 60
          ? `${graph.step / 60} min`
          : `${graph.step} s`;
    card.note.textContent = `${graph.source === 'rollup' ? 'Rollups' : 'Raw data'}, ${bucket} buckets${unit ? ` · ${unit}` : ''}${partial ? ' · the newest bucket is still filling: not drawn yet' : ''}`;
    if (!rows.some((r) => r.value !== null)) {
      fill(card.view, h('p', { class: 'no-data' }, 'No data for this time range.'));
      return;
    }
    card.view.replaceChildren();
    const width = Math.max(100, Math.floor(card.view.clientWidth || 600));
    const result = await vegaEmbed(card.view, spec(graph, rows, unit, width) as never, await embedOptions());
    // The drawn view, for scripts and tests that read what a graph shows (`view.data('source_0')`: its rows).
    (card.view as HTMLElement & { vegaView?: unknown }).vegaView = result.view;
    finalizers.set(card.metric.name, () => result.finalize());
  }

  void Promise.resolve().then(() => load());
  return {
    el,
    dispose() {
      disposed = true;
      offLive();
      window.clearTimeout(timer);
      for (const finalize of finalizers.values()) finalize();
    },
  };
}

/** Line kinds and their dashes: solid average, dashed peak. */
const KINDS: Array<[string, number[]]> = [
  ['average', [1, 0]],
  ['peak', [4, 3]],
  ['rolling average', [9, 3]],
  ['rolling peak', [1, 3]],
];

function spec(graph: Graph, rows: Row[], unitLabel: string, width: number): object {
  const keys = [...new Set(rows.map((r) => r.key))];
  const kinds = KINDS.filter(([kind]) => rows.some((r) => r.kind === kind));
  const ticks = timeTicks(graph.from * 1000, graph.to * 1000, width);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: `${graph.title} (${unitLabel || 'no unit'})`,
    width: 'container',
    height: 170,
    autosize: { type: 'fit-x', contains: 'padding' },
    data: { values: rows },
    encoding: {
      x: {
        field: 't',
        type: 'temporal',
        title: null,
        // The whole range asked for: buckets left out at the right (still filling) show as room, not as a drop.
        // Both as expressions: vega-lite turns literal times into datetime() calls that vega's interpreter (no
        // 'unsafe-eval', see vega-options.ts) does not draw.
        scale: { domain: { expr: `[${graph.from * 1000}, ${graph.to * 1000}]` } },
        axis: {
          labelOverlap: true,
          grid: false,
          values: { expr: `[${ticks.values.join(', ')}]` },
          format: ticks.format,
        },
      },
    },
    layer: [
      {
        // A null value (a host down, a counter reset) breaks the line: a gap, not a line across it.
        mark: { type: 'line', strokeWidth: 1.6, clip: true, invalid: 'break-paths-filter-domains' },
        encoding: {
          y: {
            field: 'value',
            type: 'quantitative',
            title: unitLabel || null,
            scale: graph.unit === '%' ? { domain: [0, 100] } : { zero: true, nice: true },
          },
          color: {
            field: 'line',
            type: 'nominal',
            title: null,
            legend: { orient: 'bottom', direction: 'horizontal' },
          },
          strokeDash: {
            field: 'kind',
            type: 'nominal',
            title: null,
            scale: { domain: kinds.map(([kind]) => kind), range: kinds.map(([, dash]) => dash) },
            legend: { orient: 'bottom', direction: 'horizontal' },
          },
          detail: { field: 'key' },
        },
      },
      {
        transform: [{ pivot: 'key', value: 'value', groupby: ['t'] }],
        mark: { type: 'rule', color: '#888' },
        params: [
          {
            name: 'hover',
            select: { type: 'point', fields: ['t'], nearest: true, on: 'pointerover', clear: 'pointerout' },
          },
        ],
        encoding: {
          opacity: { condition: { param: 'hover', empty: false, value: 0.5 }, value: 0 },
          tooltip: [
            { field: 't', type: 'temporal', title: 'time', format: '%Y-%m-%d %H:%M:%S' },
            ...keys.map((k) => ({
              field: k,
              type: 'quantitative',
              title: `${k}${unitLabel ? ` (${unitLabel})` : ''}`,
              format: '.2f',
            })),
          ],
        },
      },
    ],
    config: { view: { stroke: null }, font: 'system-ui, sans-serif' },
  };
}
