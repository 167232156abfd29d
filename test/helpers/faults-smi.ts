import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, FAKE_SMI, type FakeSmiEnv, fakeStarts } from './fake-smi.js';
import { assertScrapesHealthy, sample, scrapeFor, stopClean, untilMetrics } from './faults.js';
import { startExporter } from './procs.js';

// nvidia-smi fault cases: the real exporter runs the fake nvidia-smi as its long-lived loop
// child; the child turns bad after a number of good lines, so each case has a healthy
// baseline in the same process first.

export const GPUS = 2;
export const smiArgs = ['--gpu.source=nvidia-smi', `--nvidia-smi.path=${FAKE_SMI}`, '--no-collector.kubelet'];
export const gpuSuccess = (b: string) => sample(b, 'ds_exporter_collector_success', 'collector="gpu"');

export function smiEnv(dir: string, vars: FakeSmiEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { FAKE_NVIDIA_SMI_GPUS: String(GPUS), FAKE_NVIDIA_SMI_PIDFILE: join(dir, 'pids') };
  for (const [k, v] of Object.entries(vars)) env[`FAKE_NVIDIA_SMI_${k}`] = v;
  return env;
}

/** Every nvidia-smi the exporter started is gone (reaped, not a zombie). */
export async function assertNoOrphans(pidfile: string, what: string): Promise<void> {
  const starts = fakeStarts(pidfile);
  assert.ok(starts.length > 0, `${what}: nvidia-smi was started`);
  for (const s of starts) {
    for (let i = 0; i < 20 && alive(s.pid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(s.pid), false, `${what}: nvidia-smi pid ${s.pid} still running after the exporter stopped`);
  }
}

/** Runs one nvidia-smi fault: healthy baseline, then the fault, then the checks of `during`. */
export async function smiCase(what: string, vars: FakeSmiEnv, check: (during: string, log: string, pidfile: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-faults-smi-'));
  const pidfile = join(dir, 'pids');
  const ex = await startExporter(smiArgs, smiEnv(dir, vars));
  try {
    await untilMetrics(ex.url, (b) => gpuSuccess(b) === 1 && /^ds_gpu_up\{gpu="1",[^}]*\} 1$/m.test(b), 15_000, `${what}: healthy first`);
    const baseline = await scrapeFor(ex.url, 2000);
    assert.equal(gpuSuccess(baseline.lastBody), 1, `${what}: the baseline was taken while nvidia-smi was healthy`);
    await untilMetrics(ex.url, (b) => gpuSuccess(b) === 0, 20_000, `${what}: gpu collector failing`);
    const during = await scrapeFor(ex.url, 3000);
    assertScrapesHealthy(baseline, during, what);
    check(during.lastBody, ex.output(), pidfile);
  } finally {
    await stopClean(ex, what);
    await assertNoOrphans(pidfile, what);
    rmSync(dir, { recursive: true, force: true });
  }
}

