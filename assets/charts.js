// What each chart of the landing page plots, and how it is drawn with uPlot.
import { bytes, duration, percent, tokens } from './format.js';

/** Axis steps that land on round binary sizes: 1, 2, 5, 10, 20, 50 … of KiB, MiB, GiB, TiB. */
function binaryIncrements() {
  const out = [];
  for (const unit of [1, 2 ** 10, 2 ** 20, 2 ** 30, 2 ** 40]) for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) out.push(m * unit);
  return out;
}

const short = (model) => (model ? model.split('/').pop() : '');

/**
 * One entry per card of the page (ids match the server-rendered cards).
 * `series(list)` turns the snapshot's samples of `metric` into [key, value] pairs;
 * `derive: 'mean'` plots Δsum/Δcount of a histogram instead of its value.
 */
export const CHARTS = [
  {
    id: 'gpu-util',
    metric: 'ds_gpu_utilization_ratio',
    key: (l) => `GPU ${l.gpu}`,
    format: percent,
    range: [0, 1],
    empty: 'No GPU is reporting utilization (no GPU source is running).',
  },
  {
    id: 'gpu-mem',
    metric: 'ds_gpu_memory_used_bytes',
    key: (l) => `GPU ${l.gpu}`,
    format: bytes,
    incrs: binaryIncrements(),
    // The y axis reaches the largest GPU's capacity, so "used" reads against "total".
    ceiling: 'ds_gpu_memory_total_bytes',
    empty: 'No GPU is reporting memory (no GPU source is running).',
  },
  {
    id: 'frag',
    metric: 'ds_gpu_memory_fragmentation_ratio',
    key: (l) => `GPU ${l.gpu} · ${l.job || 'pid'} ${l.pid}`,
    format: percent,
    range: [0, 1],
    empty: 'No allocator statistics: no serving or training process is pushing them (see the Python reporter).',
  },
  {
    id: 'throughput',
    metric: 'ds_serving_throughput_tokens_per_second',
    key: (l) => [l.phase, l.engine, short(l.model)].filter(Boolean).join(' · '),
    format: tokens,
    empty: 'No inference engine is scraped (see --engine.target).',
  },
  {
    id: 'peer-rtt',
    metric: 'ds_comm_peer_last_rtt_seconds',
    key: (l) => l.peer,
    format: duration,
    empty: 'No peers are probed (see --peers or --peers.dns).',
  },
  {
    id: 'collective',
    metric: 'ds_comm_collective_latency_seconds',
    key: (l) => `${l.op} · ${l.job}`,
    format: duration,
    derive: 'mean',
    spanGaps: true,
    empty: 'No collective timings: no training job reports them and no NCCL Inspector textfile is read.',
  },
];

/** Distinct on a light and a dark background. */
export const PALETTE = ['#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16', '#f97316', '#64748b', '#14b8a6', '#a855f7'];

export const PLOT_HEIGHT = 210;

/** Colors of axes and grid, from the page's CSS variables (light or dark). */
export function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { axis: v('--muted'), grid: v('--grid'), font: `11px ${v('--font-sans') || 'system-ui, sans-serif'}` };
}

const pad = (n) => String(n).padStart(2, '0');
const timeOfDay = (t) => {
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

/**
 * A uPlot instance for `def` with one series per key, `width` px wide, in `el`.
 * `ceiling()` gives the current upper bound of the y axis for charts that have one.
 */
export function createPlot(def, keys, data, width, el, ceiling = () => 0) {
  const th = theme();
  const axis = { stroke: th.axis, font: th.font, grid: { stroke: th.grid, width: 1 }, ticks: { stroke: th.grid, width: 1, size: 4 } };
  const y = def.range
    ? { range: () => def.range }
    : { range: (_u, _min, max) => [0, Math.max(ceiling(), max > 0 ? max * 1.15 : 1)] };
  return new uPlot(
    {
      width,
      height: PLOT_HEIGHT,
      padding: [10, 12, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      legend: { live: true },
      scales: { x: { time: true }, y },
      axes: [
        { ...axis, space: 64, values: (_u, splits) => splits.map(timeOfDay) },
        { ...axis, size: 64, space: 28, ...(def.incrs ? { incrs: def.incrs } : {}), values: (_u, splits) => splits.map((s) => def.format(s)) },
      ],
      series: [
        { label: 'time', value: (_u, t) => (t == null ? '—' : timeOfDay(t)) },
        ...keys.map((key, i) => ({
          label: key,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.75,
          spanGaps: !!def.spanGaps,
          points: { show: false },
          value: (_u, v) => (v == null ? '—' : def.format(v)),
        })),
      ],
    },
    data,
    el,
  );
}
