// The landing page's live part: polls /api/v1/snapshot every second and updates the
// summary, the collector states and the charts. No inline script: the page's CSP
// allows only files served by the exporter itself.
import { CHARTS, PLOT_HEIGHT, createPlot } from './charts.js';
import { ago, bytes, duration, percent, tokens, watts } from './format.js';
import { HistogramMean, History } from './history.js';

const POLL_MS = 1000;
const WINDOW_S = 300;

const $ = (sel, root = document) => root.querySelector(sel);

const charts = CHARTS.map((def) => {
  const card = document.getElementById(`chart-${def.id}`);
  return {
    def,
    card,
    box: $('.plot', card),
    empty: $('.empty', card),
    history: new History(WINDOW_S),
    mean: def.derive === 'mean' ? new HistogramMean() : null,
    plot: null,
    signature: '',
    ceiling: 0,
  };
});

/** [key, value] pairs a chart plots from one snapshot. */
function valuesOf(chart, samples) {
  const { def } = chart;
  if (chart.mean) return chart.mean.next(samples.map((s) => [def.key(s.labels), { count: s.count ?? 0, sum: s.sum ?? 0 }]));
  return new Map(samples.map((s) => [def.key(s.labels), s.value]));
}

function plotWidth(chart) {
  return Math.max(200, Math.floor(chart.box.clientWidth));
}

function destroy(chart) {
  chart.plot?.destroy();
  chart.plot = null;
  chart.signature = '';
}

function render(chart, present) {
  const { card, history } = chart;
  chart.present = present;
  if (!history.hasData()) {
    destroy(chart);
    card.dataset.state = present ? 'waiting' : 'empty';
    chart.empty.textContent = present ? 'Collecting…' : chart.def.empty;
    chart.empty.hidden = false;
    card.dataset.points = '0';
    card.dataset.series = '0';
    return;
  }
  chart.empty.hidden = true;
  const keys = history.keys();
  const signature = keys.join('\u0000');
  const data = history.data();
  if (!chart.plot || chart.signature !== signature) {
    destroy(chart);
    chart.plot = createPlot(chart.def, keys, data, plotWidth(chart), chart.box, () => chart.ceiling);
    chart.signature = signature;
  } else {
    chart.plot.setData(data);
  }
  // Show the latest values in the legend while the pointer is not over the chart.
  if (chart.plot.cursor.left == null || chart.plot.cursor.left < 0) chart.plot.setLegend({ idx: data[0].length - 1 });
  card.dataset.state = 'chart';
  card.dataset.points = String(data[0].length);
  card.dataset.series = String(keys.length);
  card.dataset.last = String(data[0][data[0].length - 1]);
}

function setTile(name, value, detail) {
  const tile = $(`[data-tile="${name}"]`);
  $('.value', tile).textContent = value;
  $('.detail', tile).textContent = detail;
}

const sum = (list) => list.reduce((a, s) => a + s.value, 0);

function updateTiles(m) {
  const info = m.ds_gpu_info ?? [];
  const names = [...new Set(info.map((s) => s.labels.name))];
  setTile('gpus', info.length ? String(info.length) : '—', info.length ? names.join(', ') : 'no GPU source');

  const util = m.ds_gpu_utilization_ratio ?? [];
  if (util.length) {
    const vals = util.map((s) => s.value);
    setTile('util', percent(sum(util) / util.length), `min ${percent(Math.min(...vals))} · max ${percent(Math.max(...vals))}`);
  } else setTile('util', '—', 'no data');

  const used = m.ds_gpu_memory_used_bytes ?? [];
  const total = m.ds_gpu_memory_total_bytes ?? [];
  if (used.length && total.length && sum(total) > 0) setTile('mem', percent(sum(used) / sum(total)), `${bytes(sum(used))} of ${bytes(sum(total))}`);
  else setTile('mem', '—', 'no data');

  const power = m.ds_gpu_power_watts ?? [];
  const temp = m.ds_gpu_temperature_celsius ?? [];
  if (power.length) setTile('power', watts(sum(power)), temp.length ? `hottest ${Math.round(Math.max(...temp.map((s) => s.value)))} °C` : '');
  else setTile('power', '—', 'no data');

  const tput = m.ds_serving_throughput_tokens_per_second ?? [];
  const gen = tput.filter((s) => s.labels.phase === 'generation');
  const prompt = tput.filter((s) => s.labels.phase === 'prompt');
  const kv = m.ds_serving_kv_cache_usage_ratio ?? [];
  if (tput.length) {
    const kvText = kv.length ? ` · KV ${percent(Math.max(...kv.map((s) => s.value)))}` : '';
    setTile('tokens', tokens(sum(gen)), `prompt ${tokens(sum(prompt)).replace(' tok/s', '')}${kvText}`);
  } else setTile('tokens', '—', 'no engine');

  const up = m.ds_comm_peer_up ?? [];
  const rtt = m.ds_comm_peer_last_rtt_seconds ?? [];
  if (up.length) setTile('peers', `${up.filter((s) => s.value === 1).length} / ${up.length} up`, rtt.length ? `slowest ${duration(Math.max(...rtt.map((s) => s.value)))}` : '');
  else setTile('peers', '—', 'no peers');
}

function updateCollectors(m, now) {
  const success = new Map((m.ds_exporter_collector_success ?? []).map((s) => [s.labels.collector, s.value]));
  const dur = new Map((m.ds_exporter_collector_duration_seconds ?? []).map((s) => [s.labels.collector, s.value]));
  const last = new Map((m.ds_exporter_collector_last_success_timestamp_seconds ?? []).map((s) => [s.labels.collector, s.value]));
  for (const li of document.querySelectorAll('#collectors li')) {
    const name = li.dataset.collector;
    const state = $('.state', li);
    if (!success.has(name)) {
      li.dataset.state = 'waiting';
      state.textContent = 'waiting';
    } else if (success.get(name) === 1) {
      li.dataset.state = 'ok';
      state.textContent = dur.has(name) ? `ok · ${duration(dur.get(name))}` : 'ok';
    } else {
      li.dataset.state = 'failing';
      state.textContent = last.has(name) ? `failing · last ok ${ago(now - last.get(name))}` : 'failing · never succeeded';
    }
  }
}

function updateSource(m) {
  const src = (m.ds_exporter_gpu_source_info ?? [])[0]?.labels.source;
  if (!src) return;
  const pill = document.getElementById('gpu-source');
  pill.textContent = src;
  pill.classList.toggle('warn', src === 'simulated');
  document.getElementById('sim-banner').hidden = src !== 'simulated';
}

function setLive(ok, text) {
  const el = document.getElementById('live');
  el.dataset.state = ok ? 'live' : 'down';
  el.textContent = text;
}

let failures = 0;

async function poll() {
  try {
    const res = await fetch('api/v1/snapshot', { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const snap = await res.json();
    const m = snap.metrics ?? {};
    updateSource(m);
    updateCollectors(m, snap.timestamp);
    updateTiles(m);
    for (const chart of charts) {
      const samples = m[chart.def.metric] ?? [];
      if (chart.def.ceiling) chart.ceiling = Math.max(0, ...(m[chart.def.ceiling] ?? []).map((s) => s.value));
      chart.history.push(snap.timestamp, valuesOf(chart, samples));
      render(chart, samples.length > 0);
    }
    failures = 0;
    setLive(true, `live · ${new Date(snap.timestamp * 1000).toLocaleTimeString()}`);
  } catch (err) {
    failures++;
    setLive(false, `no answer from the exporter (${err instanceof Error ? err.message : err}); retrying`);
  } finally {
    setTimeout(poll, failures > 0 ? Math.min(10_000, POLL_MS * 2 ** failures) : POLL_MS);
  }
}

// Follow the card width (responsive grid) and the color scheme (axes and grid colors).
const resize = new ResizeObserver(() => {
  for (const chart of charts) if (chart.plot) chart.plot.setSize({ width: plotWidth(chart), height: PLOT_HEIGHT });
});
for (const chart of charts) resize.observe(chart.box);
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  for (const chart of charts) {
    destroy(chart);
    render(chart, chart.present ?? false);
  }
});

poll();
