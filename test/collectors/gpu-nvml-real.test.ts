import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import koffi from 'koffi';
import { testApp, valueOf } from '../helpers/app.js';

/** Why there is no real GPU to test against, or undefined when there is one. */
function noRealGpu(): string | undefined {
  if (!existsSync('/dev/nvidia0')) return 'no real GPU: /dev/nvidia0 is absent';
  try {
    koffi.load('libnvidia-ml.so.1');
    return undefined;
  } catch {
    return 'no real GPU: libnvidia-ml.so.1 does not load';
  }
}

test('the real NVML: every GPU is up, identified, and its busy counter moves monotonically', { skip: noRealGpu() }, async () => {
  const built = await testApp(['--gpu.source=nvml', '--no-collector.sim']);
  try {
    await built.scheduler.sampleAll();
    await new Promise((r) => setTimeout(r, 1500));
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    assert.match(text, /ds_exporter_gpu_source_info\{source="nvml"\} 1/);
    assert.match(text, /ds_gpu_info\{gpu="0",uuid="GPU-[0-9a-f-]+",name="NVIDIA [^"]+"/);
    assert.equal(valueOf(text, /^ds_gpu_up\{gpu="0"/), 1);
    const total = valueOf(text, /^ds_gpu_memory_total_bytes\{gpu="0"/)!;
    assert.ok(total > 1e9, `memory total ${total}`);
    const busy = valueOf(text, /^ds_gpu_busy_seconds_total\{gpu="0"/)!;
    assert.ok(busy >= 0 && busy <= 3.5, `busy ${busy} over about 1.5 s`);
    const method = /ds_gpu_utilization_method\{gpu="0",[^}]*method="(\w+)"/.exec(text)?.[1];
    assert.ok(method === 'samples' || method === 'point', `method ${method}`);
    assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
  } finally {
    await built.close();
  }
});

test('the real NVML: profiling (GPM) says why not, or its counters move within wall time and busy time', { skip: noRealGpu() }, async () => {
  const built = await testApp(['--gpu.source=nvml', '--no-collector.sim']);
  try {
    await built.scheduler.sampleAll();
    await new Promise((r) => setTimeout(r, 1500));
    await built.scheduler.sampleAll();
    await new Promise((r) => setTimeout(r, 1500));
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    const status = /ds_gpu_profiling_info\{gpu="0",[^}]*status="(\w+)"\} 1/.exec(text)?.[1];
    assert.ok(['available', 'unsupported', 'no_permission', 'in_use', 'error'].includes(status ?? ''), `profiling status ${status}`);
    // Whatever the answer, the rest of the GPU collector is unaffected.
    assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="gpu"\} /), 1);
    assert.equal(valueOf(text, /^ds_gpu_up\{gpu="0"/), 1);
    const mig = /ds_gpu_info\{gpu="0",[^}]*mig_mode="Enabled"/.test(text);
    if (status !== 'available' || mig) return;
    // Over about 1.5 s of profiled time: SM activity within wall time, tensor within SM, SM within busy (plus slack for the two clocks).
    const sm = valueOf(text, /^ds_gpu_sm_active_seconds_total\{gpu="0"/);
    const tensor = valueOf(text, /^ds_gpu_tensor_active_seconds_total\{gpu="0",[^}]*pipe="any"/);
    const busy = valueOf(text, /^ds_gpu_busy_seconds_total\{gpu="0"/);
    assert.ok(sm !== undefined && sm >= 0 && sm <= 3.5, `SM active ${sm}`);
    if (tensor !== undefined) assert.ok(tensor >= 0 && tensor <= sm + 0.05, `tensor ${tensor} <= SM ${sm}`);
    if (busy !== undefined) assert.ok(sm <= busy + 0.2, `SM active ${sm} <= busy ${busy}`);
    assert.ok(valueOf(text, /^ds_gpu_dram_active_seconds_total\{gpu="0"/) !== undefined, 'DRAM activity');
    assert.ok(valueOf(text, /^ds_gpu_pcie_bytes_total\{gpu="0",[^}]*direction="tx"/) !== undefined, 'PCIe bytes');
  } finally {
    await built.close();
  }
});
