import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { SampleStore } from '../../src/core/store.js';
import { EVENT_LOOP_RESOLUTION_MS } from '../../src/core/runtime-metrics.js';
import { Scheduler } from '../../src/core/scheduler.js';
import { silentLogger } from '../../src/core/logger.js';
import { snapshotOf } from '../../src/http/snapshot.js';

const id = { gpu: '0', uuid: 'GPU-0' };

test('a committed batch is served; an uncommitted one is not', async () => {
  const s = new SampleStore();
  const b = s.batch('gpu').gauge('ds_gpu_power_watts', id, 123.5);
  assert.doesNotMatch((await s.render()).body.toString(), /ds_gpu_power_watts\{/);
  s.commit(b);
  assert.match((await s.render()).body.toString(), /ds_gpu_power_watts\{gpu="0",uuid="GPU-0"\} 123.5/);
});

test('series a collector stops reporting disappear at its next commit', async () => {
  const s = new SampleStore();
  s.commit(s.batch('gpu').gauge('ds_gpu_up', id, 1).gauge('ds_gpu_up', { gpu: '1', uuid: 'GPU-1' }, 1));
  s.commit(s.batch('gpu').gauge('ds_gpu_up', id, 1));
  const text = (await s.render()).body.toString();
  assert.match(text, /uuid="GPU-0"/);
  assert.doesNotMatch(text, /uuid="GPU-1"/);
});

test('series of a collector that stops committing go stale after its bound, others stay', async () => {
  let now = 1_000_000;
  const s = new SampleStore({ now: () => now });
  s.setStaleAfter('gpu', 5000);
  s.setStaleAfter('sim', 5000);
  s.commit(s.batch('gpu').gauge('ds_gpu_up', id, 1));
  s.commit(s.batch('sim').gauge('ds_engine_up', { target: 't', engine: 'vllm' }, 1));
  now += 4000;
  s.commit(s.batch('sim').gauge('ds_engine_up', { target: 't', engine: 'vllm' }, 1));
  assert.equal(s.expire(), 0);
  now += 2000;
  assert.equal(s.expire(), 1);
  const text = (await s.render()).body.toString();
  assert.doesNotMatch(text, /ds_gpu_up\{/);
  assert.match(text, /ds_engine_up\{/);
});

test('counters follow the collector total; a drop counts as a reset and never goes backwards', async () => {
  const s = new SampleStore();
  const l = { engine: 'vllm', model: 'm', outcome: 'success' };
  s.commit(s.batch('e').counter('ds_serving_requests_total', l, 10));
  s.commit(s.batch('e').counter('ds_serving_requests_total', l, 15));
  assert.match((await s.render()).body.toString(), /ds_serving_requests_total\{[^}]*\} 15\n/);
  s.commit(s.batch('e').counter('ds_serving_requests_total', l, 3));
  assert.match((await s.render()).body.toString(), /ds_serving_requests_total\{[^}]*\} 18\n/);
});

test('a counter removed and reported again continues where it was', async () => {
  const s = new SampleStore();
  s.commit(s.batch('gpu').counter('ds_gpu_busy_seconds_total', id, 40));
  s.commit(s.batch('gpu'));
  assert.doesNotMatch((await s.render()).body.toString(), /ds_gpu_busy_seconds_total\{/);
  s.commit(s.batch('gpu').counter('ds_gpu_busy_seconds_total', id, 42));
  assert.match((await s.render()).body.toString(), /ds_gpu_busy_seconds_total\{[^}]*\} 42\n/);
});

test('a metric or label outside the catalog is refused and nothing of the batch is stored', async () => {
  const s = new SampleStore();
  assert.throws(() => s.commit(s.batch('x').gauge('ds_gpu_up', id, 1).gauge('not_in_catalog', {}, 1)), /not in the catalog/);
  assert.throws(() => s.commit(s.batch('x').gauge('ds_gpu_up', { gpu: '0' }, 1)), /do not match the catalog/);
  assert.throws(() => s.commit(s.batch('x').gauge('ds_gpu_up', { gpu: '0', pod: 'p' }, 1)), /missing/);
  assert.throws(() => s.commit(s.batch('x').counter('ds_gpu_up', id, 1)), /is a gauge/);
  assert.doesNotMatch((await s.render()).body.toString(), /ds_gpu_up\{/);
});

test('label values are escaped by the exposition library', async () => {
  const s = new SampleStore();
  s.commit(s.batch('x').gauge('ds_gpu_up', { gpu: '0', uuid: 'a"b\\c\nd' }, 1));
  assert.match((await s.render()).body.toString(), /uuid="a\\"b\\\\c\\nd"/);
});

test('rendering is cached per commit, shared by concurrent scrapes, and gzip matches the body', async () => {
  const s = new SampleStore({ maxCacheAgeMs: 60_000 });
  s.commit(s.batch('x').gauge('ds_gpu_up', id, 1));
  const [a, b] = await Promise.all([s.render(), s.render()]);
  assert.equal(a, b);
  assert.deepEqual(gunzipSync(await a.gzip()), a.body);
  assert.equal(a.gzip(), a.gzip());
  assert.equal(await a.gzip(), await a.gzip());
  s.commit(s.batch('x').gauge('ds_gpu_up', id, 0));
  const c = await s.render();
  assert.notEqual(c, a);
  assert.match(c.body.toString(), /ds_gpu_up\{[^}]*\} 0/);
});

test('OpenMetrics rendering ends with # EOF and names counters without _total in TYPE', async () => {
  const s = new SampleStore();
  s.commit(s.batch('e').counter('ds_serving_requests_total', { engine: 'vllm', model: 'm', outcome: 'success' }, 2));
  const r = await s.render('openmetrics');
  assert.match(r.contentType, /application\/openmetrics-text/);
  assert.match(r.body.toString(), /# TYPE ds_serving_requests counter/);
  assert.match(r.body.toString(), /# EOF\n?$/);
});

test('the snapshot holds current values and histogram counts', () => {
  const s = new SampleStore();
  s.commit(s.batch('p').gauge('ds_comm_peer_up', { peer: 'a:1' }, 1).observe('ds_comm_peer_latency_seconds', { peer: 'a:1' }, 0.002).observe('ds_comm_peer_latency_seconds', { peer: 'a:1' }, 0.004));
  const snap = snapshotOf(s);
  assert.deepEqual(snap.metrics.ds_comm_peer_up, [{ labels: { peer: 'a:1' }, value: 1 }]);
  assert.equal(snap.metrics.ds_comm_peer_latency_seconds[0].count, 2);
  assert.ok(Math.abs(snap.metrics.ds_comm_peer_latency_seconds[0].value - 0.003) < 1e-12);
});

test('a histogram series that disappears and comes back keeps only its new observations', async () => {
  const s = new SampleStore();
  const l = { peer: 'a:1' };
  s.commit(s.batch('p').observe('ds_comm_peer_latency_seconds', l, 0.001));
  await s.render();
  s.commit(s.batch('p'));
  s.commit(s.batch('p').observe('ds_comm_peer_latency_seconds', l, 0.002));
  assert.match((await s.render()).body.toString(), /ds_comm_peer_latency_seconds_count\{peer="a:1"\} 1\n/);
});

test('with a minimum render interval, a burst of scrapes renders once and then catches up', async () => {
  let now = 0;
  const s = new SampleStore({ now: () => now, minRenderIntervalMs: 500 });
  const id = { gpu: '0', uuid: 'U' };
  s.commit(s.batch('g').gauge('ds_gpu_up', id, 1));
  const first = await s.render();
  s.commit(s.batch('g').gauge('ds_gpu_up', id, 0));
  now += 100;
  assert.equal(await s.render(), first, 'a render younger than the interval is served');
  now += 500;
  assert.match((await s.render()).body.toString(), /ds_gpu_up\{gpu="0",uuid="U"\} 0/);
});

test('with stale-while-render, a scrape that finds the rendering behind is served it while the next renders', async () => {
  let now = 0;
  const s = new SampleStore({ now: () => now, maxCacheAgeMs: 1000, minRenderIntervalMs: 1000, staleWhileRenderMs: 1000 });
  const id = { gpu: '0', uuid: 'U' };
  s.commit(s.batch('g').gauge('ds_gpu_up', id, 1));
  const first = await s.render();
  await first.gzip();
  s.commit(s.batch('g').gauge('ds_gpu_up', id, 0));
  now += 1500;
  assert.equal(await s.render(), first, 'served at once, behind by one commit');
  assert.equal(await s.render(), first, 'one background rendering at a time; the old one is served meanwhile');
  // The successor replaces it once rendered (and gzipped, since scrapes asked for gzip).
  let next = first;
  for (let i = 0; i < 50 && next === first; i++) {
    await new Promise((r) => setTimeout(r, 5));
    next = await s.render();
  }
  assert.notEqual(next, first, 'the background rendering was swapped in');
  assert.match(next.body.toString(), /ds_gpu_up\{gpu="0",uuid="U"\} 0/);
  // Too old to serve stale: the scrape waits for a fresh rendering.
  s.commit(s.batch('g').gauge('ds_gpu_up', id, 1));
  now += 2500;
  assert.match((await s.render()).body.toString(), /ds_gpu_up\{gpu="0",uuid="U"\} 1/);
});

test('a batch in the same order as the last one, with one label changed, updates the right series', async () => {
  const s = new SampleStore();
  const l = (gpu: string) => ({ gpu, uuid: `U${gpu}` });
  s.commit(s.batch('g').gauge('ds_gpu_up', l('0'), 1).gauge('ds_gpu_up', l('1'), 1));
  s.commit(s.batch('g').gauge('ds_gpu_up', l('0'), 0).gauge('ds_gpu_up', l('2'), 1));
  const text = (await s.render()).body.toString();
  assert.match(text, /ds_gpu_up\{gpu="0",uuid="U0"\} 0/);
  assert.match(text, /ds_gpu_up\{gpu="2",uuid="U2"\} 1/);
  assert.doesNotMatch(text, /uuid="U1"/);
  // A bad entry at a known position still fails the whole batch.
  assert.throws(() => s.commit(s.batch('g').gauge('ds_gpu_up', l('0'), 1).counter('ds_gpu_up', l('2'), 1)), /is a gauge/);
  assert.match((await s.render()).body.toString(), /ds_gpu_up\{gpu="0",uuid="U0"\} 0/);
});

test('a batch cleared and written again commits only its new writes, whatever the old ones were', async () => {
  const s = new SampleStore();
  const b = s.batch('gpu');
  b.gauge('ds_gpu_up', { gpu: '0', uuid: 'A' }, 1).gauge('ds_gpu_up', { gpu: '1', uuid: 'B' }, 1).counter('ds_gpu_energy_joules_total', { gpu: '0', uuid: 'A' }, 5);
  s.commit(b);
  b.clear();
  // Fewer writes, a different kind at the first position: nothing of the longer earlier sample remains.
  b.counter('ds_gpu_energy_joules_total', { gpu: '0', uuid: 'A' }, 7);
  s.commit(b);
  const text = (await s.render('text')).body.toString();
  assert.match(text, /^ds_gpu_energy_joules_total\{gpu="0",uuid="A"\} 7$/m);
  assert.doesNotMatch(text, /^ds_gpu_up/m);
  assert.equal(b.entries.length, 1);
  assert.equal(s.seriesCount, 1);
});

test('series that went stale come back as new series', async () => {
  let now = 0;
  const s = new SampleStore({ now: () => now });
  s.setStaleAfter('g', 1000);
  const id = { gpu: '0', uuid: 'U' };
  s.commit(s.batch('g').counter('ds_gpu_busy_seconds_total', id, 5));
  now += 5000;
  s.expire();
  assert.doesNotMatch((await s.render()).body.toString(), /ds_gpu_busy_seconds_total\{/);
  s.commit(s.batch('g').counter('ds_gpu_busy_seconds_total', id, 6));
  assert.match((await s.render()).body.toString(), /ds_gpu_busy_seconds_total\{gpu="0",uuid="U"\} 6/);
});

test('the runtime metrics are one set, served in both formats', async () => {
  const s = new SampleStore({ processMetrics: true });
  // OpenMetrics first: its rendering must not rename the counters of the text format.
  const om = (await s.render('openmetrics')).body.toString();
  const text = (await s.render('text')).body.toString();
  for (const body of [text, om]) {
    assert.match(body, /^process_cpu_seconds_total \d/m);
    assert.match(body, /^nodejs_eventloop_lag_p99_seconds \d/m);
    assert.match(body, /^nodejs_active_handles\{type=/m);
    assert.doesNotMatch(body, /^nodejs_active_(handles|requests|resources)_total/m, 'no gauge ends in _total');
  }
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m, 'the text format keeps _total on the counter family');
  assert.match(om, /^# TYPE process_cpu_seconds counter$/m, 'OpenMetrics names the counter family without _total');
  assert.match(om, /# EOF\n?$/);
  // The OpenMetrics registry serves the text one's metrics (a counter through a view of it): one
  // event-loop monitor, one GC observer, one CPU reading.
  const base = (n: string) => n.replace(/_total$/, '');
  assert.deepEqual(s.omRegistry.getMetricsAsArray().map((m) => base(m.name)).sort(), s.textRegistry.getMetricsAsArray().map((m) => base(m.name)).sort());
  assert.equal(s.omRegistry.getSingleMetric('nodejs_eventloop_lag_p99_seconds'), s.textRegistry.getSingleMetric('nodejs_eventloop_lag_p99_seconds'));
  assert.equal(Object.getPrototypeOf(s.omRegistry.getSingleMetric('process_cpu_seconds_total')), s.textRegistry.getSingleMetric('process_cpu_seconds_total'));
});

test('event-loop delay is how late the scheduler\'s wake-ups come, and a stall shows', async () => {
  const s = new SampleStore({ processMetrics: true });
  // No collector: the scheduler still wakes once a second for its staleness check, and each wake-up is a sample.
  const scheduler = new Scheduler({ store: s, logger: silentLogger, intervalMs: 1000, staleAfterMs: 10_000 });
  scheduler.start();
  const read = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec((await s.render('text')).body.toString())![1]);
  await s.render('text');
  await new Promise((r) => setTimeout(r, 2 * EVENT_LOOP_RESOLUTION_MS + 200));
  // An idle loop: the delay beyond the schedule, not the interval between samples.
  assert.ok((await read('nodejs_eventloop_lag_p99_seconds')) < 0.1, 'idle p99 is not the sampling interval');
  assert.ok((await read('nodejs_eventloop_lag_min_seconds')) >= 0);
  // Reading starts a new window, whose first sample only sets its start.
  await new Promise((r) => setTimeout(r, EVENT_LOOP_RESOLUTION_MS + 200));
  const until = Date.now() + EVENT_LOOP_RESOLUTION_MS + 600;
  while (Date.now() < until) {
    // a stall longer than the sampling interval: it holds up at least one sample by 600 ms
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.ok((await read('nodejs_eventloop_lag_max_seconds')) > 0.5, 'the stall is in the window');
  await scheduler.stop();
});

test('GC durations are counted by kind in both formats', async () => {
  const s = new SampleStore({ processMetrics: true });
  const count = (body: string, kind: string) => Number(new RegExp(`^nodejs_gc_duration_seconds_count\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(body)?.[1] ?? 0);
  // Every kind is served from the start, before it has happened (at zero until then). Another
  // store: a second rendering of `s` this soon would be served from its render cache.
  const first = (await new SampleStore({ processMetrics: true }).render('text')).body.toString();
  for (const kind of ['minor', 'major', 'incremental', 'weakcb']) assert.match(first, new RegExp(`^nodejs_gc_duration_seconds_count\\{kind="${kind}"\\} \\d+$`, 'm'), kind);
  // Garbage enough for several young-generation collections.
  let keep: object[] = [];
  for (let i = 0; i < 2_000_000; i++) {
    keep.push({ i });
    if (keep.length > 100_000) keep = [];
  }
  const text = (await s.render('text')).body.toString();
  assert.match(text, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
  assert.match(text, /^nodejs_gc_duration_seconds_bucket\{le="0.001",kind="minor"\} \d/m, 'prom-client\'s buckets and label');
  assert.ok(count(text, 'minor') > 0, 'minor collections counted');
  const om = (await s.render('openmetrics')).body.toString();
  assert.ok(count(om, 'minor') >= count(text, 'minor'), 'the OpenMetrics registry serves the same histogram');
});
