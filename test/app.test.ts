import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { catalog } from '../src/catalog/index.js';
import { families, testApp } from './helpers/app.js';
import { has, promtoolCheckMetrics } from './helpers/procs.js';
import { snapshotOf } from '../src/http/snapshot.js';

test('--simulate emits every metric of the catalog, and nothing outside it', async () => {
  let now = 1_700_000_000_000;
  const built = await testApp(['--simulate', '--simulate.gpus=4'], { now: () => now });
  await built.scheduler.sampleAll();
  now += 120_000; // two simulated minutes: counters and lags move
  await built.scheduler.sampleAll();
  const res = await built.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] as string, /^text\/plain; version=0.0.4/);
  const fams = families(res.body);
  const names = new Set(catalog.map((m) => m.name));
  for (const m of catalog) {
    const f = fams.get(m.name) ?? fams.get(m.name.replace(/_total$/, ''));
    assert.ok(f && f.samples.length > 0, `${m.name} is not produced by --simulate`);
  }
  for (const name of fams.keys()) assert.ok(names.has(name), `${name} is emitted but not in the catalog`);
  await built.close();
});

test('simulated values are plausible and consistent', async () => {
  let now = 1_700_000_000_000;
  const built = await testApp(['--simulate', '--simulate.gpus=8'], { now: () => now });
  await built.scheduler.sampleAll();
  const busy0 = snapshotOf(built.store).metrics.ds_gpu_busy_seconds_total.map((s) => s.value);
  let utilSum = new Array(8).fill(0);
  for (let i = 0; i < 60; i++) {
    now += 1000;
    await built.scheduler.sampleAll();
    snapshotOf(built.store).metrics.ds_gpu_utilization_ratio.forEach((s) => (utilSum[Number(s.labels.gpu)] += s.value));
  }
  const snap = snapshotOf(built.store).metrics;
  for (const s of snap.ds_gpu_utilization_ratio) assert.ok(s.value >= 0 && s.value <= 1);
  for (const s of snap.ds_gpu_memory_fragmentation_ratio) assert.ok(s.value >= 0 && s.value < 1);
  for (const s of snap.ds_gpu_temperature_celsius) assert.ok(s.value > 20 && s.value < 100);
  for (const s of snap.ds_gpu_power_watts) assert.ok(s.value > 50 && s.value <= 700);
  // Busy seconds are the integral of utilization: the counter's increase over 60 s is
  // within sampling error of the sum of the per-second point readings.
  snap.ds_gpu_busy_seconds_total.forEach((s) => {
    const g = Number(s.labels.gpu);
    const inc = s.value - busy0[g];
    assert.ok(Math.abs(inc - utilSum[g]) < 3, `gpu ${g}: busy increase ${inc} vs summed utilization ${utilSum[g]}`);
  });
  await built.close();
});

test('the same seed gives the same values; another seed does not', async () => {
  const run = async (seed: number) => {
    let now = 1_700_000_000_000;
    const b = await testApp(['--simulate', `--simulate.seed=${seed}`], { now: () => now });
    await b.scheduler.sampleAll();
    now += 30_000;
    await b.scheduler.sampleAll();
    const m = snapshotOf(b.store).metrics;
    await b.close();
    return JSON.stringify([m.ds_gpu_info, m.ds_gpu_utilization_ratio, m.ds_serving_throughput_tokens_per_second]);
  };
  assert.equal(await run(7), await run(7));
  assert.notEqual(await run(7), await run(8));
});

test('OpenMetrics when asked, gzip when accepted', async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=2']);
  await built.scheduler.sampleAll();
  const om = await built.app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5' } });
  assert.match(om.headers['content-type'] as string, /application\/openmetrics-text/);
  assert.match(om.body, /# EOF/);
  const gz = await built.app.inject({ url: '/metrics', headers: { 'accept-encoding': 'gzip, deflate' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.match(gunzipSync(gz.rawPayload).toString(), /ds_gpu_up\{/);
  await built.close();
});

test('readyz turns ready after the first full sample; healthz and snapshot answer', async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=2']);
  assert.equal((await built.app.inject({ url: '/readyz' })).statusCode, 503);
  assert.equal((await built.app.inject({ url: '/healthz' })).statusCode, 200);
  built.start();
  await built.scheduler.firstRound;
  assert.equal((await built.app.inject({ url: '/readyz' })).statusCode, 200);
  const snap = (await built.app.inject({ url: '/api/v1/snapshot' })).json();
  assert.equal(snap.metrics.ds_gpu_up.length, 2);
  assert.equal(snap.metrics.ds_exporter_gpu_source_info[0].labels.source, 'simulated');
  await built.close();
});

test('without a GPU, auto falls back to the simulator and says so', async () => {
  const lines: string[] = [];
  const { buildApp } = await import('../src/app.js');
  const { loadConfig } = await import('../src/config/config.js');
  const { createLogger } = await import('../src/core/logger.js');
  const built = await buildApp(loadConfig(['--nvml.library=/nonexistent/libnvidia-ml.so.1', '--nvidia-smi.path=/nonexistent/nvidia-smi'], {}), { logger: createLogger('info', (l) => lines.push(l)), processMetrics: false });
  await built.scheduler.sampleAll();
  const text = (await built.app.inject({ url: '/metrics' })).body;
  assert.match(text, /ds_exporter_gpu_source_info\{source="simulated"\} 1/);
  assert.ok(lines.some((l) => /level=warn.*SIMULATED/.test(l)), lines.join('\n'));
  // The whole host is simulated, not only the GPUs.
  assert.match(text, /ds_serving_throughput_tokens_per_second\{/);
  assert.match(text, /ds_exporter_collector_success\{collector="sim"\} 1/);
  assert.match(text, /ds_serving_tokens_total\{engine="vllm",model="[^"]*\(simulated\)",phase="prompt"\}/, 'simulated serving series are marked');
  await built.close();
});

test('with a real engine configured and no GPU, nothing but the missing GPUs is simulated', async () => {
  const { createServer } = await import('node:http');
  const engine = createServer((_req, res) => res.end('vllm:prompt_tokens_total{model_name="real"} 7\nvllm:num_requests_running{model_name="real"} 1\n'));
  await new Promise<void>((r) => engine.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(engine.address() as import('node:net').AddressInfo).port}/metrics`;
  const { buildApp } = await import('../src/app.js');
  const { loadConfig } = await import('../src/config/config.js');
  const { createLogger } = await import('../src/core/logger.js');
  const nogpu = ['--nvml.library=/nonexistent/libnvidia-ml.so.1', '--nvidia-smi.path=/nonexistent/nvidia-smi'];
  try {
    const built = await buildApp(loadConfig([...nogpu, `--engine.target=${url}`], {}), { logger: createLogger('error'), processMetrics: false });
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    assert.match(text, /ds_exporter_gpu_source_info\{source="simulated"\} 1/, 'the missing GPUs are simulated, and marked');
    assert.match(text, /ds_serving_tokens_total\{engine="vllm",model="real",phase="prompt"\} 7/);
    assert.doesNotMatch(text, /sim:\/\/|\(simulated\)",phase|collector="sim"/, 'no simulated engine beside the real one');
    for (const fam of ['ds_comm_peer_up', 'ds_training_steps_total', 'ds_allocator_reserved_bytes', 'ds_nccl_collectives_total']) assert.doesNotMatch(text, new RegExp(`^${fam}\\{`, 'm'), `${fam} simulated beside a real source`);
    await built.close();
    // --simulate asked for explicitly still leaves the configured engine to the real one.
    const sim = await buildApp(loadConfig(['--simulate', '--simulate.gpus=1', `--engine.target=${url}`], {}), { logger: createLogger('error'), processMetrics: false });
    await sim.scheduler.sampleAll();
    const simText = (await sim.app.inject({ url: '/metrics' })).body;
    assert.match(simText, /ds_serving_tokens_total\{engine="vllm",model="real",phase="prompt"\} 7/);
    assert.doesNotMatch(simText, /sim:\/\/vllm|\(simulated\)",phase/);
    assert.match(simText, /^ds_training_steps_total\{/m, 'the parts not configured are simulated with --simulate');
    await sim.close();
  } finally {
    await new Promise((r) => engine.close(r));
  }
});

test('promtool check metrics accepts the ds_ families', { skip: !has('promtool') && 'promtool not installed (scripts/setup-test-tools.sh installs it)' }, async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=2']);
  await built.scheduler.sampleAll();
  const text = (await built.app.inject({ url: '/metrics' })).body;
  // promtool exits non-zero on errors; lint findings are printed and must be empty.
  const out = promtoolCheckMetrics(text);
  assert.equal(out.trim(), '', out);
  await built.close();
});
