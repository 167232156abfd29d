import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FAKE_SMI, setFakeSmiEnv } from '../helpers/fake-smi.js';
import { testApp, valueOf } from '../helpers/app.js';

const GOLDEN = join(import.meta.dirname, '..', 'fixtures', 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const MIB = 1024 * 1024;

/** The GPU families of a scrape, sample lines sorted (order in the store is not part of the contract). */
function gpuLines(body: string): string {
  return body
    .split('\n')
    .filter((l) => /^ds_(gpu_|exporter_gpu_source_info)/.test(l))
    .sort()
    .join('\n') + '\n';
}

async function scrape(capture: string, state: 'idle' | 'load'): Promise<string> {
  const restore = setFakeSmiEnv({ CAPTURE: capture, STATE: state, TIMESTAMP: 'capture' });
  const now = 1_700_000_000_000;
  const built = await testApp(['--gpu.source=nvidia-smi', `--nvidia-smi.path=${FAKE_SMI}`, '--sample.interval=60s', '--sample.stale-after=600s'], { now: () => now });
  try {
    await built.scheduler.sampleAll();
    const res = await built.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.equal(valueOf(res.body, /^ds_exporter_collector_success\{collector="gpu"\}/), 1, 'gpu collector succeeded');
    return res.body;
  } finally {
    await built.close();
    restore();
  }
}

/** Reads one value of the capture's `--query-gpu` CSV (with units), for independent checks. */
function captureValue(capture: string, state: string, field: string): string {
  const text = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'nvidia-smi', `${capture}.txt`), 'utf8');
  const at = text.indexOf(`# ${state} :: query-gpu (csv`);
  const lines = text.slice(at).split('\n').slice(3, 5);
  const header = lines[0].split(', ').map((h) => h.replace(/ \[.*\]$/, ''));
  return lines[1].split(', ')[header.indexOf(field)];
}

const CASES = [
  { capture: 'h100-80gb-hbm3__590.48.01', file: 'gpu-smi-h100' },
  { capture: 'h100-mig__590.48.01', file: 'gpu-smi-h100-mig' },
  { capture: 'l40s__595.80', file: 'gpu-smi-l40s' },
] as const;

for (const { capture, file } of CASES) {
  for (const state of ['idle', 'load'] as const) {
    test(`golden /metrics from nvidia-smi: ${capture} ${state}`, async () => {
      const body = await scrape(capture, state);
      const got = gpuLines(body);
      const path = join(GOLDEN, `${file}-${state}.prom`);
      if (UPDATE) writeFileSync(path, got);
      assert.ok(existsSync(path), `${path} missing: run with UPDATE_GOLDEN=1`);
      assert.equal(got, readFileSync(path, 'utf8'));

      // Independent of the golden file: values equal the capture, units converted.
      const v = (name: string) => valueOf(body, new RegExp(`^${name}\\{gpu="0"`));
      const cap = (f: string) => Number.parseFloat(captureValue(capture, state, f));
      assert.equal(v('ds_gpu_memory_used_bytes'), cap('memory.used') * MIB);
      assert.equal(v('ds_gpu_memory_total_bytes'), cap('memory.total') * MIB);
      assert.equal(v('ds_gpu_power_watts'), cap('power.draw'));
      assert.equal(v('ds_gpu_power_limit_watts'), cap('enforced.power.limit'));
      assert.equal(v('ds_gpu_temperature_celsius'), cap('temperature.gpu'));
      assert.equal(v('ds_gpu_sm_clock_hertz'), cap('clocks.current.sm') * 1e6);
      assert.equal(v('ds_gpu_memory_clock_hertz'), cap('clocks.current.memory') * 1e6);
      const util = captureValue(capture, state, 'utilization.gpu');
      if (util === '[N/A]') assert.equal(v('ds_gpu_utilization_ratio'), undefined, 'MIG mode: no utilization, not zero');
      else assert.equal(v('ds_gpu_utilization_ratio'), Number.parseFloat(util) / 100);
      const memTemp = captureValue(capture, state, 'temperature.memory');
      assert.equal(v('ds_gpu_memory_temperature_celsius'), memTemp === 'N/A' ? undefined : Number(memTemp));
      const idle = captureValue(capture, state, 'clocks_event_reasons.gpu_idle');
      assert.equal(valueOf(body, /^ds_gpu_clock_throttle_active\{gpu="0",.*reason="gpu_idle"/), idle === 'Active' ? 1 : 0);
      const swcap = Number.parseFloat(captureValue(capture, state, 'clocks_event_reasons_counters.sw_power_cap'));
      assert.equal(valueOf(body, /^ds_gpu_throttle_seconds_total\{gpu="0",.*reason="sw_power_cap"/), swcap / 1e6);
      assert.match(body, new RegExp(`ds_gpu_info\\{gpu="0",uuid="GPU-0{8}-0{4}-0{4}-0{4}-0{12}",name="${captureValue(capture, state, 'name')}",pci_bus_id="${captureValue(capture, state, 'pci.bus_id')}",driver_version="${captureValue(capture, state, 'driver_version')}",mig_mode="${captureValue(capture, state, 'mig.mode.current').replace('[N/A]', 'N/A')}"\\} 1`));
      assert.match(body, /ds_exporter_gpu_source_info\{source="nvidia-smi"\} 1/);
    });
  }
}
