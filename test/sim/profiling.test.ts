import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SIM_PROFILE_KEYS, SimHost, type SimGpu } from '../../src/sim/host.js';
import { simulatedGpuSource } from '../../src/collectors/gpu/simulated.js';
import { testApp, valueOf } from '../helpers/app.js';

/** A simulated GPU's profiling integrals by key. */
const integrals = (g: SimGpu): Record<string, number> => Object.fromEntries(SIM_PROFILE_KEYS.map((k, i) => [k, g.profiling[i]]));

test('simulated profiling stays consistent with busy time: SM activity within busy, tensor within SM, over every step', () => {
  const host = new SimHost({ gpus: 8, seed: 7, peers: 0, startMs: 0 });
  let prev = host.gpus.map((g) => ({ busy: g.busySeconds, ...integrals(g) }));
  for (let s = 1; s <= 600; s++) {
    host.advanceTo(s * 1000);
    host.gpus.forEach((g, i) => {
      const p = integrals(g);
      const d = (k: string) => (p[k] ?? 0) - ((prev[i] as Record<string, number>)[k] ?? 0);
      const busy = g.busySeconds - prev[i].busy;
      assert.ok(d('sm') <= busy + 1e-9, `GPU ${i} step ${s}: SM ${d('sm')} > busy ${busy}`);
      assert.ok(d('tensor_any') <= d('sm') + 1e-9, `GPU ${i} step ${s}: tensor ${d('tensor_any')} > SM ${d('sm')}`);
      assert.ok(d('tensor_hmma') <= d('tensor_any') + 1e-9);
      assert.ok(d('sm_occupancy') <= d('sm') + 1e-9);
      assert.ok(d('graphics') <= busy + 1e-9);
      for (const k of Object.keys(p)) assert.ok(d(k) >= 0, `${k} never decreases`);
    });
    prev = host.gpus.map((g) => ({ busy: g.busySeconds, ...integrals(g) }));
  }
  // A serving GPU does real work: its SMs are active, though below its duty cycle.
  const g0 = host.gpus[0];
  const sm = integrals(g0).sm;
  assert.ok(sm > 0.2 * g0.busySeconds && sm < g0.busySeconds, `SM ${sm} vs busy ${g0.busySeconds}`);
});

test('the simulated source reports profiling like NVML: per GPU, and per GPU instance only on its MIG GPU', async () => {
  const host = new SimHost({ gpus: 2, seed: 1, peers: 0, startMs: 0 });
  let now = 0;
  const src = simulatedGpuSource(host, () => now);
  await src.read(new AbortController().signal);
  now = 5000;
  const [whole, mig] = await src.read(new AbortController().signal);
  assert.equal(whole.profiling?.status, 'available');
  assert.ok((whole.profiling?.delta?.sm ?? -1) >= 0);
  assert.equal(mig.device.migMode, 'Enabled');
  assert.equal(mig.profiling?.delta, undefined, 'no whole-GPU activity in MIG mode');
  assert.equal(mig.migDevices?.length, 2);
  for (const m of mig.migDevices ?? []) assert.ok(m.profiling && m.profiling.sm !== undefined);
});

test('a simulated exporter serves the profiling series, marked simulated like the rest', async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=2']);
  try {
    await built.scheduler.sampleAll();
    await new Promise((r) => setTimeout(r, 1100));
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    assert.match(text, /ds_exporter_gpu_source_info\{source="simulated"\} 1/);
    assert.match(text, /ds_gpu_profiling_info\{gpu="0",[^}]*status="available"\} 1/);
    assert.ok(valueOf(text, /^ds_gpu_sm_active_seconds_total\{gpu="0"/) !== undefined);
    assert.ok(valueOf(text, /^ds_gpu_mig_sm_active_seconds_total\{gpu="1",[^}]*gpu_instance="1"/) !== undefined);
    assert.equal(valueOf(text, /^ds_gpu_sm_active_seconds_total\{gpu="1"/), undefined);
  } finally {
    await built.close();
  }
});
