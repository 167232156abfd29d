import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { families, testApp, valueOf } from '../helpers/app.js';
import { buildFakeNvml, fakeNvmlUnavailable, writeFakeNvmlConfig } from '../helpers/fake-nvml.js';
import { fakeNvmlApp } from '../helpers/nvml-app.js';
import { waitFor } from '../helpers/procs.js';

const skip = fakeNvmlUnavailable();
// Close every exporter even when an assertion failed: the NVML event thread would keep the process alive.
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

/** An exporter on the fake NVML with a fake clock shared by the exporter and the library. */
const nvmlApp = (config: Record<string, string | number>, omit: string[] = [], extraArgs: string[] = []) => fakeNvmlApp(open, config, omit, extraArgs);

const id = (gpu: number) => `gpu="${gpu}",uuid="GPU-fake0000-0000-0000-0000-00000000000${gpu}"`;
const re = (name: string, gpu: number, extra = '') => new RegExp(`^${name}\\{${id(gpu)}${extra}\\} `);

test('values from the fake NVML are exported exactly, in base units', { skip }, async () => {
  const { built, metrics, tick } = await nvmlApp({
    gpus: 2, driver_version: '595.12.34', 'gpu.1.name': 'NVIDIA H200', 'gpu.1.pci_bus_id': '00000000:9A:00.0', 'gpu.1.mig_mode': 1,
    util_gpu: 37, util_mem: 12, memory_total: 85_520_809_984, memory_used: 42_949_672_960,
    power_mw: 312_500, power_limit_mw: 700_000, energy_mj: 5_000_000, energy_step_mj: 250_000,
    temp_gpu: 61, temp_mem: 72, clock_sm_mhz: 1755, clock_mem_mhz: 2619, throttle_reasons: '0x24',
    pcie_tx_kbps: 1000, pcie_rx_kbps: 3000, nvlink_tx_kib: 2048, nvlink_rx_kib: 4096, ecc_corrected: 3, ecc_uncorrected: 1,
    violation_power_ns: 2_500_000_000, violation_thermal_ns: 750_000_000,
  });
  await tick();
  const text = await metrics();
  const v = (name: string, gpu = 0, extra = '') => valueOf(text, re(name, gpu, extra));
  assert.match(text, /ds_exporter_gpu_source_info\{source="nvml"\} 1/);
  assert.match(text, new RegExp(`ds_gpu_info\\{${id(0)},name="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:18:00.0",driver_version="595.12.34",mig_mode="Disabled"\\} 1`));
  assert.match(text, new RegExp(`ds_gpu_info\\{${id(1)},name="NVIDIA H200",pci_bus_id="00000000:9A:00.0",driver_version="595.12.34",mig_mode="Enabled"\\} 1`));
  assert.equal(v('ds_gpu_up'), 1);
  assert.equal(v('ds_gpu_utilization_ratio'), 0.37);
  assert.equal(v('ds_gpu_memory_controller_utilization_ratio'), 0.12);
  assert.equal(v('ds_gpu_memory_total_bytes'), 85_520_809_984);
  assert.equal(v('ds_gpu_memory_used_bytes'), 42_949_672_960);
  assert.equal(v('ds_gpu_memory_free_bytes'), 85_520_809_984 - 42_949_672_960);
  assert.equal(v('ds_gpu_power_watts'), 312.5);
  assert.equal(v('ds_gpu_power_limit_watts'), 700);
  assert.equal(v('ds_gpu_temperature_celsius'), 61);
  assert.equal(v('ds_gpu_memory_temperature_celsius'), 72);
  assert.equal(v('ds_gpu_sm_clock_hertz'), 1_755_000_000);
  assert.equal(v('ds_gpu_memory_clock_hertz'), 2_619_000_000);
  assert.equal(v('ds_gpu_clock_throttle_active', 0, ',reason="sw_power_cap"'), 1);
  assert.equal(v('ds_gpu_clock_throttle_active', 0, ',reason="sw_thermal_slowdown"'), 1);
  assert.equal(v('ds_gpu_clock_throttle_active', 0, ',reason="gpu_idle"'), 0);
  assert.equal(v('ds_gpu_clock_throttle_active', 0, ',reason="display_clock_setting"'), 0);
  assert.equal(v('ds_gpu_throttle_seconds_total', 0, ',reason="sw_power_cap"'), 2.5);
  assert.equal(v('ds_gpu_throttle_seconds_total', 0, ',reason="sw_thermal_slowdown"'), 0.75);
  assert.equal(v('ds_gpu_pcie_throughput_bytes_per_second', 0, ',direction="tx"'), 1000 * 1024);
  assert.equal(v('ds_gpu_pcie_throughput_bytes_per_second', 0, ',direction="rx"'), 3000 * 1024);
  assert.equal(v('ds_gpu_nvlink_bytes_total', 0, ',direction="tx"'), 2048 * 1024);
  assert.equal(v('ds_gpu_nvlink_bytes_total', 0, ',direction="rx"'), 4096 * 1024);
  assert.equal(v('ds_gpu_ecc_errors_total', 0, ',type="corrected"'), 3);
  assert.equal(v('ds_gpu_ecc_errors_total', 0, ',type="uncorrected"'), 1);
  // The energy counter moves by the device's own counter delta (mJ -> J), not by power x time.
  const perRead = v('ds_gpu_energy_joules_total');
  assert.ok(perRead !== undefined && perRead > 0 && Number.isInteger(perRead / 250), `energy ${perRead} J is a multiple of the 250 J step`);
  // A constant 37% for one second of samples: busy time from the sample buffer.
  assert.match(text, new RegExp(`ds_gpu_utilization_method\\{${id(0)},method="samples"\\} 1`));
  assert.ok(Math.abs(v('ds_gpu_busy_seconds_total')! - 0.37) < 1e-9, `busy ${v('ds_gpu_busy_seconds_total')}`);
  assert.ok(Math.abs(v('ds_gpu_memory_busy_seconds_total')! - 0.12) < 1e-9, `memory busy ${v('ds_gpu_memory_busy_seconds_total')}`);
  assert.equal(v('ds_gpu_utilization_samples_lost_seconds_total'), 0);
  await built.close();
});

const OLD_DRIVER = ['nvmlInit_v2', 'nvmlDeviceGetCount_v2', 'nvmlDeviceGetHandleByIndex_v2', 'nvmlDeviceGetPciInfo_v3', 'nvmlDeviceGetMemoryInfo_v2', 'nvmlDeviceGetCurrentClocksEventReasons', 'nvmlEventSetWait_v2', 'GPM'];
const NO_EXTRAS = ['nvmlDeviceGetTotalEnergyConsumption', 'nvmlDeviceGetFieldValues', 'nvmlDeviceGetSamples', 'nvmlDeviceGetViolationStatus'];

test('missing versioned symbols fall back to the older ones; missing functions leave their metrics absent', { skip }, async () => {
  const { built, metrics, tick, ctl } = await nvmlApp({ gpus: 1, util_gpu: 50, memory_total: 1000, memory_used: 250, throttle_reasons: 4, power_mw: 100_000 }, [...OLD_DRIVER, ...NO_EXTRAS]);
  ctl.injectXid(0, 48);
  await tick();
  await tick();
  const text = await metrics();
  const fams = families(text);
  // Fallbacks: identity, memory (v1 struct), reasons (old name) all still there.
  assert.match(text, /ds_gpu_info\{gpu="0",uuid="GPU-fake0000-0000-0000-0000-000000000000",name="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:18:00.0"/);
  assert.equal(valueOf(text, re('ds_gpu_memory_used_bytes', 0)), 250);
  assert.equal(valueOf(text, re('ds_gpu_memory_utilization_ratio', 0)), 0.25);
  assert.equal(valueOf(text, re('ds_gpu_clock_throttle_active', 0, ',reason="sw_power_cap"')), 1);
  // No sample buffer: busy time integrates the point readings, and says so.
  assert.match(text, /ds_gpu_utilization_method\{gpu="0",[^}]*method="point"\} 1/);
  const busy = valueOf(text, re('ds_gpu_busy_seconds_total', 0))!;
  assert.ok(Math.abs(busy - 1) < 1e-9, `busy ${busy}: 50% over two 1 s intervals is 1 s`);
  // Missing functions: their metrics are absent, never zero.
  for (const name of ['ds_gpu_memory_temperature_celsius', 'ds_gpu_nvlink_bytes_total', 'ds_gpu_utilization_samples_lost_seconds_total']) {
    assert.ok(!fams.get(name)?.samples.length, `${name} should be absent`);
  }
  // A driver without GPM: profiling says so, and no profiling series exists.
  assert.match(text, /ds_gpu_profiling_info\{gpu="0",uuid="[^"]+",status="unsupported"\} 1/);
  assert.ok(!fams.get('ds_gpu_sm_active_seconds_total')?.samples.length);
  // Energy without the device counter: integrated from power (100 W over two 1 s intervals).
  assert.equal(valueOf(text, re('ds_gpu_energy_joules_total', 0)), 200);
  // The old nvmlEventSetWait still delivers XIDs.
  await tickUntil(async () => valueOf(await metrics(), re('ds_gpu_xid_errors_total', 0, ',xid="48",action="workflow_xid_48"')) === 1, tick);
  await built.close();
});

test('NOT_SUPPORTED and NO_PERMISSION leave that metric absent on that GPU only', { skip }, async () => {
  const { built, metrics, tick } = await nvmlApp({
    gpus: 2, power_mw: 200_000,
    'gpu.1.error.nvmlDeviceGetPowerUsage': 3, 'gpu.1.error.nvmlDeviceGetTotalEnergyConsumption': 3,
    'error.nvmlDeviceGetTotalEccErrors': 4, 'gpu.0.error.field.82': 3, 'gpu.1.error.nvmlDeviceGetSamples': 3,
  });
  await tick();
  const text = await metrics();
  assert.equal(valueOf(text, re('ds_gpu_power_watts', 0)), 200);
  assert.equal(valueOf(text, re('ds_gpu_power_watts', 1)), undefined);
  assert.equal(valueOf(text, re('ds_gpu_energy_joules_total', 1)), undefined);
  assert.ok(valueOf(text, re('ds_gpu_energy_joules_total', 0)) !== undefined, 'energy present on GPU 0');
  assert.equal(valueOf(text, re('ds_gpu_memory_temperature_celsius', 0)), undefined);
  assert.equal(valueOf(text, re('ds_gpu_memory_temperature_celsius', 1)), 45);
  assert.ok(!families(text).get('ds_gpu_ecc_errors_total')?.samples.length, 'ECC absent without permission');
  assert.match(text, new RegExp(`ds_gpu_utilization_method\\{${id(0)},method="samples"\\} 1`));
  assert.match(text, new RegExp(`ds_gpu_utilization_method\\{${id(1)},method="point"\\} 1`));
  assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
  await built.close();
});

test('a GPU lost mid-run reads ds_gpu_up 0 alone; it comes back with its counters continuing', { skip }, async () => {
  const { built, metrics, tick, ctl } = await nvmlApp({ gpus: 2, util_gpu: 80, energy_step_mj: 1000, nvlink_tx_kib: 100, nvlink_step_kib: 10 });
  await tick();
  const counters = ['ds_gpu_busy_seconds_total', 'ds_gpu_energy_joules_total'];
  const before = await metrics();
  const nvBefore = valueOf(before, re('ds_gpu_nvlink_bytes_total', 1, ',direction="tx"'))!;
  ctl.setLost(1, true);
  await tick();
  let text = await metrics();
  assert.equal(valueOf(text, re('ds_gpu_up', 1)), 0);
  assert.equal(valueOf(text, re('ds_gpu_up', 0)), 1);
  assert.equal(valueOf(text, re('ds_gpu_power_watts', 1)), undefined, 'a lost GPU serves no values');
  assert.equal(valueOf(text, re('ds_gpu_power_watts', 0)), 70);
  assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
  for (let i = 0; i < 3; i++) await tick();
  ctl.setLost(1, false);
  // Re-checked with backoff (1 s, 2 s, 4 s, ...): back within a few ticks.
  let back = false;
  for (let i = 0; i < 10 && !back; i++) {
    await tick();
    back = valueOf(await metrics(), re('ds_gpu_up', 1)) === 1;
  }
  assert.ok(back, 'GPU 1 did not come back');
  text = await metrics();
  for (const c of counters) {
    const a = valueOf(before, re(c, 1))!;
    const b = valueOf(text, re(c, 1))!;
    assert.ok(b >= a, `${c} went backwards: ${a} -> ${b}`);
  }
  assert.ok(valueOf(text, re('ds_gpu_nvlink_bytes_total', 1, ',direction="tx"'))! >= nvBefore, 'NVLink counter went backwards');
  await built.close();
});

test('a GPU lost after N driver calls (from the config) goes down and comes back', { skip }, async () => {
  const { built, metrics, tick } = await nvmlApp({ gpus: 2, 'gpu.0.lost_after': 60, 'gpu.0.lost_for': 2 });
  const ups: number[] = [];
  for (let i = 0; i < 12; i++) {
    await tick();
    const t = await metrics();
    ups.push(valueOf(t, re('ds_gpu_up', 0))!);
    assert.equal(valueOf(t, re('ds_gpu_up', 1)), 1);
  }
  assert.ok(ups.includes(0), `GPU 0 never went down: ${ups}`);
  assert.equal(ups[ups.length - 1], 1, `GPU 0 did not come back: ${ups}`);
  await built.close();
});

/** Advances the clock and samples until `cond` holds. */
async function tickUntil(cond: () => Promise<boolean>, tick: () => Promise<void>, ms = 5000): Promise<void> {
  await waitFor(async () => (await tick(), cond()), ms, 'the condition', { everyMs: 50, retryErrors: false });
}

test('XID events are counted per code, and repeats keep counting', { skip }, async () => {
  const { built, metrics, tick, ctl } = await nvmlApp({ gpus: 2, 'gpu.1.xids': '79,79,13' });
  const xid = async (gpu: number, code: number) => valueOf(await metrics(), re('ds_gpu_xid_errors_total', gpu, `,xid="${code}",action="[a-z0-9_]+"`));
  await tickUntil(async () => (await xid(1, 79)) === 2 && (await xid(1, 13)) === 1, tick);
  ctl.injectXid(1, 79);
  ctl.injectXid(0, 94);
  await tickUntil(async () => (await xid(1, 79)) === 3 && (await xid(0, 94)) === 1, tick);
  assert.equal(await xid(0, 79), undefined);
  // The event thread never blocks the event loop: a timer fires while waits are pending.
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(Date.now() - t0 < 200, 'event loop blocked');
  await built.close();
});

test('library missing: auto falls back; --gpu.source=nvml fails visibly while /metrics answers', { skip }, async () => {
  const auto = await testApp(['--gpu.source=auto', '--nvml.library=/nonexistent/libnvidia-ml.so.1', '--nvidia-smi.path=/nonexistent/nvidia-smi', '--no-collector.sim']);
  await auto.scheduler.sampleAll();
  const a = (await auto.app.inject({ url: '/metrics' })).body;
  assert.doesNotMatch(a, /ds_exporter_gpu_source_info\{source="nvml"\}/);
  assert.match(a, /ds_exporter_gpu_source_info\{source="[a-z-]+"\} 1/);
  await auto.close();

  const strict = await testApp(['--gpu.source=nvml', '--nvml.library=/nonexistent/libnvidia-ml.so.1', '--no-collector.sim']);
  await strict.scheduler.sampleAll();
  const res = await strict.app.inject({ url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.equal(valueOf(res.body, /^ds_exporter_collector_success\{collector="gpu"\} /), 0);
  assert.doesNotMatch(res.body, /^ds_gpu_up/m);
  await strict.close();

  // A library that loads but sees no GPU is no NVML source either.
  const lib = buildFakeNvml();
  writeFakeNvmlConfig({ gpus: 0 });
  const none = await testApp(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim']);
  await none.scheduler.sampleAll();
  assert.equal(valueOf((await none.app.inject({ url: '/metrics' })).body, /^ds_exporter_collector_success\{collector="gpu"\} /), 0);
  await none.close();
});

test('per-process GPU memory only with --nvml.process-memory; the old process call is a fallback', { skip }, async () => {
  const config = { gpus: 2, 'gpu.0.procs': '4242:21474836480,777:1048576', 'gpu.1.procs': '' };
  const off = await nvmlApp(config);
  await off.tick();
  assert.doesNotMatch(await off.metrics(), /ds_gpu_process_memory_used_bytes/);
  await off.built.close();
  for (const omit of [[], ['nvmlDeviceGetComputeRunningProcesses_v3']]) {
    const on = await nvmlApp(config, omit, ['--nvml.process-memory']);
    await on.tick();
    const text = await on.metrics();
    assert.equal(valueOf(text, re('ds_gpu_process_memory_used_bytes', 0, ',pid="4242"')), 21474836480, `omit ${omit}`);
    assert.equal(valueOf(text, re('ds_gpu_process_memory_used_bytes', 0, ',pid="777"')), 1048576);
    assert.equal(valueOf(text, new RegExp(`^ds_gpu_process_memory_used_bytes\\{${id(1)}`)), undefined, 'no process on GPU 1');
    await on.built.close();
  }
});

test('a GPU in MIG mode exports each MIG device with its gpu_instance', { skip }, async () => {
  const { metrics, tick } = await nvmlApp({ gpus: 2, 'gpu.1.mig_mode': 1, 'gpu.1.mig_instances': '1:0:42949672960:1073741824,2:0:21474836480:0' });
  await tick();
  const text = await metrics();
  assert.match(text, new RegExp(`ds_gpu_info\\{${id(1)},[^}]*mig_mode="Enabled"\\} 1`));
  assert.match(text, new RegExp(`ds_gpu_mig_info\\{${id(1)},gpu_instance="1",compute_instance="0",mig_uuid="MIG-fake0001-0000-0000-0000-000000000000",name="NVIDIA H100 80GB HBM3 MIG 1g.10gb"\\} 1`));
  assert.equal(valueOf(text, re('ds_gpu_mig_memory_total_bytes', 1, ',gpu_instance="1"')), 42949672960);
  assert.equal(valueOf(text, re('ds_gpu_mig_memory_used_bytes', 1, ',gpu_instance="1"')), 1073741824);
  assert.equal(valueOf(text, re('ds_gpu_mig_memory_total_bytes', 1, ',gpu_instance="2"')), 21474836480);
  assert.equal(valueOf(text, re('ds_gpu_mig_memory_used_bytes', 1, ',gpu_instance="2"')), 0);
  assert.doesNotMatch(text, /ds_gpu_mig_info\{gpu="0"/);
});

test('a GPU this process may not open reads ds_gpu_up 0; the others serve', { skip }, async () => {
  const { metrics, tick } = await nvmlApp({ gpus: 2, 'gpu.1.error.nvmlDeviceGetHandleByIndex': 4 });
  await tick();
  const text = await metrics();
  assert.equal(valueOf(text, re('ds_gpu_up', 0)), 1);
  assert.equal(valueOf(text, /^ds_gpu_up\{gpu="1",uuid="GPU-unknown-index-1"\} /), 0);
  assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
});
