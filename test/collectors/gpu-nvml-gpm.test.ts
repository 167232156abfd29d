import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { gpmDelta, GPM_METRICS, nextProfilingBackoffMs, statusOf } from '../../src/collectors/gpu/nvml-gpm.js';
import { families, valueOf } from '../helpers/app.js';
import { fakeNvmlUnavailable } from '../helpers/fake-nvml.js';
import { fakeNvmlApp } from '../helpers/nvml-app.js';

const skip = fakeNvmlUnavailable();
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});
const MIB = 1024 * 1024;

/** An exporter on the fake NVML with a clock shared by both, and its warnings captured. */
const gpmApp = (config: Record<string, string | number>, omit: string[] = []) => fakeNvmlApp(open, config, omit);

const id = (gpu: number) => `gpu="${gpu}",uuid="GPU-fake0000-0000-0000-0000-00000000000${gpu}"`;
const re = (name: string, gpu: number, extra = '') => new RegExp(`^${name}\\{${id(gpu)}${extra}\\} `);
const close = (a: number | undefined, b: number, what: string) => assert.ok(a !== undefined && Math.abs(a - b) < 1e-6, `${what}: ${a} != ${b}`);

test('GPM on a whole GPU: every activity as seconds, traffic as bytes, from the difference of two samples', { skip }, async () => {
  const { metrics, tick } = await gpmApp({
    gpus: 1, 'gpm.1': 90, 'gpm.2': 40, 'gpm.3': 25, 'gpm.4': 3, 'gpm.5': 20, 'gpm.6': 0, 'gpm.7': 15, 'gpm.9': 5, 'gpm.10': 55,
    'gpm.11': 1, 'gpm.12': 12, 'gpm.13': 8, 'gpm.20': 100, 'gpm.21': 300, 'gpm.30': 50, 'gpm.40': 10, 'gpm.50': 7, 'gpm.61': 1000, nvlink_tx_kib: 2048,
  });
  // The first sample is a baseline: the info metric says available, no counter yet.
  let text = await metrics();
  assert.match(text, new RegExp(`ds_gpu_profiling_info\\{${id(0)},status="available"\\} 1`));
  assert.ok(!families(text).get('ds_gpu_sm_active_seconds_total')?.samples.length, 'no counter from one sample');
  await tick(1000);
  await tick(2000);
  text = await metrics();
  const v = (name: string, extra = '') => valueOf(text, re(name, 0, extra));
  close(v('ds_gpu_graphics_active_seconds_total'), 0.9 * 3, 'graphics');
  close(v('ds_gpu_sm_active_seconds_total'), 0.4 * 3, 'SM active');
  close(v('ds_gpu_sm_occupancy_seconds_total'), 0.25 * 3, 'occupancy');
  close(v('ds_gpu_tensor_active_seconds_total', ',pipe="any"'), 0.2 * 3, 'tensor any');
  close(v('ds_gpu_tensor_active_seconds_total', ',pipe="hmma"'), 0.15 * 3, 'hmma');
  close(v('ds_gpu_tensor_active_seconds_total', ',pipe="imma"'), 0.05 * 3, 'imma');
  close(v('ds_gpu_tensor_active_seconds_total', ',pipe="dfma"'), 0, 'dfma');
  close(v('ds_gpu_pipe_active_seconds_total', ',pipe="fp16"'), 0.08 * 3, 'fp16');
  close(v('ds_gpu_pipe_active_seconds_total', ',pipe="fp32"'), 0.12 * 3, 'fp32');
  close(v('ds_gpu_pipe_active_seconds_total', ',pipe="fp64"'), 0.01 * 3, 'fp64');
  close(v('ds_gpu_pipe_active_seconds_total', ',pipe="integer"'), 0.03 * 3, 'integer');
  close(v('ds_gpu_dram_active_seconds_total'), 0.55 * 3, 'DRAM');
  close(v('ds_gpu_pcie_bytes_total', ',direction="tx"'), 100 * MIB * 3, 'PCIe tx');
  close(v('ds_gpu_pcie_bytes_total', ',direction="rx"'), 300 * MIB * 3, 'PCIe rx');
  // Media engines by kind: the mean over the engines the GPU has (NVDEC 0 at 50 %, NVDEC 1-6 idle; NVDEC 7 absent).
  close(v('ds_gpu_media_active_seconds_total', ',media_engine="nvdec"'), (0.5 / 7) * 3, 'nvdec');
  close(v('ds_gpu_media_active_seconds_total', ',media_engine="nvjpg"'), (0.1 / 7) * 3, 'nvjpg');
  close(v('ds_gpu_media_active_seconds_total', ',media_engine="nvofa"'), 0.07 * 3, 'nvofa: one engine, its own value');
  // NVLink: the driver's field counters win; GPM's estimate does not stand beside them.
  assert.equal(v('ds_gpu_nvlink_bytes_total', ',direction="tx"'), 2048 * 1024);
  assert.equal(families(text).get('ds_gpu_nvlink_bytes_total')?.samples.length, 2);
  // Never more SM-active time than wall time, and tensor time within SM time.
  assert.ok(v('ds_gpu_tensor_active_seconds_total', ',pipe="any"')! <= v('ds_gpu_sm_active_seconds_total')!);
});

test('GPM is lossless: changing values over uneven intervals add up exactly', { skip }, async () => {
  const { metrics, tick, ctl } = await gpmApp({ gpus: 1, 'gpm.2': 10 });
  await tick(500); // 0.5 s at 10 %
  ctl.setConfig('gpm.2', 80);
  await tick(3000); // 3 s at 80 %
  ctl.setConfig('gpm.2', 0);
  await tick(250); // 0.25 s idle
  ctl.setConfig('gpm.2', 100);
  await tick(7000); // a slow tick: 7 s at 100 %
  close(valueOf(await metrics(), re('ds_gpu_sm_active_seconds_total', 0)), 0.05 + 2.4 + 0 + 7, 'SM-active seconds');
});

test('NVLink bytes come from GPM where the driver has no NVLink field counters', { skip }, async () => {
  const { metrics, tick } = await gpmApp({ gpus: 1, 'gpm.60': 2000, 'gpm.61': 1000, 'error.field.138': 3, 'error.field.139': 3 });
  await tick(1000);
  await tick(1000);
  const text = await metrics();
  close(valueOf(text, re('ds_gpu_nvlink_bytes_total', 0, ',direction="tx"')), 1000 * MIB * 2, 'tx');
  close(valueOf(text, re('ds_gpu_nvlink_bytes_total', 0, ',direction="rx"')), 2000 * MIB * 2, 'rx');
});

test('a GPU without GPM says unsupported and has no profiling series; the other GPU is unaffected', { skip }, async () => {
  const { metrics, tick } = await gpmApp({ gpus: 2, 'gpm.2': 50, 'gpu.1.gpm': 0 });
  await tick();
  await tick();
  const text = await metrics();
  assert.match(text, new RegExp(`ds_gpu_profiling_info\\{${id(0)},status="available"\\} 1`));
  assert.match(text, new RegExp(`ds_gpu_profiling_info\\{${id(1)},status="unsupported"\\} 1`));
  close(valueOf(text, re('ds_gpu_sm_active_seconds_total', 0)), 1, 'GPU 0');
  assert.equal(valueOf(text, re('ds_gpu_sm_active_seconds_total', 1)), undefined);
  assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
  assert.equal(valueOf(text, re('ds_gpu_up', 1)), 1);
});

test('no_permission: said once with the driver setting to change, retried with backoff, no interval across the gap', { skip }, async () => {
  const { metrics, tick, ctl, logs } = await gpmApp({ gpus: 1, 'gpm.2': 50, 'error.nvmlGpmSampleGet': 4 });
  for (let i = 0; i < 4; i++) await tick();
  let text = await metrics();
  assert.match(text, new RegExp(`ds_gpu_profiling_info\\{${id(0)},status="no_permission"\\} 1`));
  assert.equal(valueOf(text, re('ds_gpu_sm_active_seconds_total', 0)), undefined);
  assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
  const said = logs.filter((l) => l.includes('NVreg_RestrictProfilingToAdminUsers'));
  assert.equal(said.length, 1, logs.join('\n'));
  // The setting changes; nothing is asked again before the backoff (10 s) has passed.
  ctl.setConfig('error.nvmlGpmSampleGet', 0);
  await tick(2000);
  assert.match(await metrics(), /status="no_permission"/);
  await tick(10_000); // retried: this sample is a new baseline
  text = await metrics();
  assert.match(text, new RegExp(`ds_gpu_profiling_info\\{${id(0)},status="available"\\} 1`));
  assert.equal(valueOf(text, re('ds_gpu_sm_active_seconds_total', 0)), undefined, 'no delta across the refused time');
  await tick(1000);
  close(valueOf(await metrics(), re('ds_gpu_sm_active_seconds_total', 0)), 0.5, 'one second at 50 % after the gap');
  assert.ok(logs.some((l) => l.includes('readable again')));
});

test('in_use (another profiler holds the counters) is reported and backs off, doubling', { skip }, async () => {
  const { metrics, tick, ctl, logs } = await gpmApp({ gpus: 1, 'gpm.2': 50, 'error.nvmlGpmSampleGet': 19 });
  await tick();
  assert.match(await metrics(), /ds_gpu_profiling_info\{[^}]*status="in_use"\} 1/);
  assert.equal(logs.filter((l) => l.includes('another profiler')).length, 1);
  const calls = () => logs.length;
  const before = calls();
  for (let i = 0; i < 8; i++) await tick(1000);
  assert.equal(calls(), before, 'nothing more is logged while it stays in use');
  ctl.setConfig('error.nvmlGpmSampleGet', 0);
  await tick(30_000);
  await tick(1000);
  close(valueOf(await metrics(), re('ds_gpu_sm_active_seconds_total', 0)), 0.5, 'available again');
  assert.deepEqual([undefined, 10_000, 20_000, 160_000, 300_000].map((p) => (p === undefined ? nextProfilingBackoffMs(undefined) : nextProfilingBackoffMs(p))), [10_000, 20_000, 40_000, 300_000, 300_000]);
});

test('a sample that fails mid-way drops the interval and the baseline: no spike when it comes back', { skip }, async () => {
  const { metrics, tick, ctl } = await gpmApp({ gpus: 1, 'gpm.2': 50 });
  await tick();
  close(valueOf(await metrics(), re('ds_gpu_sm_active_seconds_total', 0)), 0.5, 'before');
  ctl.setConfig('error.nvmlGpmSampleGet', 999);
  await tick();
  let text = await metrics();
  assert.match(text, /status="error"/);
  assert.equal(valueOf(text, re('ds_gpu_sm_active_seconds_total', 0)), undefined, 'not served while failing');
  ctl.setConfig('error.nvmlGpmSampleGet', 0);
  await tick(10_000); // backoff over: a new baseline
  await tick(1000);
  text = await metrics();
  close(valueOf(text, re('ds_gpu_sm_active_seconds_total', 0)), 1, 'the counter continues: 0.5 before + 0.5 after, nothing for the failed 11 s');
  // nvmlGpmMetricsGet failing loses that interval only.
  ctl.setConfig('error.nvmlGpmMetricsGet', 999);
  await tick();
  ctl.setConfig('error.nvmlGpmMetricsGet', 0);
  await tick();
  close(valueOf(await metrics(), re('ds_gpu_sm_active_seconds_total', 0)), 1.5, 'one interval lost, the next counted');
});

test('NaN, negative and absurd values from the library are refused, said once, and never reach a counter', { skip }, async () => {
  const { metrics, tick, ctl, logs } = await gpmApp({ gpus: 1, 'gpm.2': 'nan', 'gpm.3': -5, 'gpm.10': 250, 'gpm.13': 100.3, 'gpm.20': 1e9, 'gpm.5': 20 });
  await tick();
  await tick();
  const text = await metrics();
  for (const [name, extra] of [['ds_gpu_sm_active_seconds_total', ''], ['ds_gpu_sm_occupancy_seconds_total', ''], ['ds_gpu_dram_active_seconds_total', ''], ['ds_gpu_pcie_bytes_total', ',direction="tx"']]) {
    assert.equal(valueOf(text, re(name, 0, extra)), undefined, name);
  }
  close(valueOf(text, re('ds_gpu_pipe_active_seconds_total', 0, ',pipe="fp16"')), 2, 'a rounding step above 100 % counts as 100 %');
  close(valueOf(text, re('ds_gpu_tensor_active_seconds_total', 0, ',pipe="any"')), 0.4, 'the good values still count');
  assert.equal(logs.filter((l) => l.includes('outside their range')).length, 1);
  assert.doesNotMatch(text, /NaN|Inf/);
  // A NaN that clears counts again from the next interval.
  ctl.setConfig('gpm.2', 30);
  await tick();
  close(valueOf(await metrics(), re('ds_gpu_sm_active_seconds_total', 0)), 0.3, 'after the NaN');
});

test('a driver that wants another struct version: status error, said once, the rest of the GPU unaffected', { skip }, async () => {
  const { metrics, tick, logs } = await gpmApp({ gpus: 1, 'gpm.2': 50, gpm_metrics_version: 2, power_mw: 123_000 });
  await tick();
  await tick();
  const text = await metrics();
  assert.match(text, /ds_gpu_profiling_info\{[^}]*status="error"\} 1/);
  assert.equal(valueOf(text, re('ds_gpu_power_watts', 0)), 123);
  assert.equal(logs.filter((l) => l.includes('nvmlGpmMetricsGet failed')).length, 1);
  // A support struct of another version: the GPU is not asked for samples at all.
  const b = await gpmApp({ gpus: 1, gpm_support_version: 7 });
  await b.tick();
  assert.match(await b.metrics(), /status="error"/);
});

test('MIG: one series set per GPU instance; a re-created or removed instance never yields a delta across it', { skip }, async () => {
  const { metrics, tick, ctl } = await gpmApp({
    gpus: 1, mig_mode: 1, mig_instances: '1:0:42949672960:0,2:0:21474836480:0', 'gi1.gpm.2': 30, 'gi2.gpm.2': 70, 'gpm.5': 10,
  });
  await tick();
  await tick();
  let text = await metrics();
  const mig = (gi: number, name = 'ds_gpu_mig_sm_active_seconds_total', extra = '') => valueOf(text, re(name, 0, `,gpu_instance="${gi}"${extra}`));
  assert.match(text, /ds_gpu_profiling_info\{[^}]*status="available"\} 1/);
  close(mig(1), 0.6, 'GI 1');
  close(mig(2), 1.4, 'GI 2');
  close(mig(1, 'ds_gpu_mig_tensor_active_seconds_total', ',pipe="any"'), 0.2, 'GI 1 tensor');
  // In MIG mode the whole GPU is not profiled: no whole-GPU series.
  assert.equal(valueOf(text, re('ds_gpu_sm_active_seconds_total', 0)), undefined);
  assert.equal(ctl.gpmSamplesOutstanding(), 4, 'two samples per GPU instance');
  // The layout changes: GI 2 is destroyed, GI 5 created.
  ctl.setConfig('mig_instances', '1:0:42949672960:0,5:0:21474836480:0');
  ctl.setConfig('gi5.gpm.2', 20);
  await tick();
  text = await metrics();
  close(mig(1), 0.9, 'GI 1 continues');
  assert.equal(mig(5), undefined, 'GI 5 starts with a baseline');
  assert.equal(ctl.gpmSamplesOutstanding(), 4, "GI 2's samples were freed");
  await tick();
  text = await metrics();
  close(mig(5), 0.2, 'GI 5');
  // A GPU instance that refuses (its own error) leaves the others counting.
  ctl.setConfig('gi5.error.nvmlGpmMigSampleGet', 19);
  await tick();
  text = await metrics();
  close(mig(1), 1.5, 'GI 1 still counts');
  assert.match(text, /ds_gpu_profiling_info\{[^}]*status="available"\} 1/);
});

test('closing the exporter frees every GPM sample', { skip }, async () => {
  const { built, tick, ctl } = await gpmApp({ gpus: 3, 'gpm.2': 50 });
  await tick();
  assert.equal(ctl.gpmSamplesOutstanding(), 6);
  await built.close();
  assert.equal(ctl.gpmSamplesOutstanding(), 0);
});

test('gpmDelta: percent to seconds and MiB/s to bytes; bad values and unknown ids are left out', () => {
  const sm = GPM_METRICS.find((m) => m.key === 'sm')!.id;
  const pcie = GPM_METRICS.find((m) => m.key === 'pcie_tx')!.id;
  const { delta, refused } = gpmDelta(new Map([[sm, 50], [pcie, 2], [999, 42], [GPM_METRICS.find((m) => m.key === 'dram')!.id, -0.1]]), 2);
  assert.deepEqual(delta, { sm: 1, pcie_tx: 2 * MIB * 2 });
  assert.deepEqual(refused, ['NVML_GPM_METRIC_DRAM_BW_UTIL=-0.1']);
  assert.deepEqual(gpmDelta(new Map([[sm, 50]]), 0).delta, {}, 'no time, no activity');
  assert.deepEqual(gpmDelta(new Map([[sm, 50]]), Number.NaN).delta, {});
  assert.equal(statusOf(0), 'available');
  assert.equal(statusOf(3), 'unsupported');
  assert.equal(statusOf(4), 'no_permission');
  assert.equal(statusOf(19), 'in_use');
  assert.equal(statusOf(999), 'error');
});
