import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildFakeNvml, fakeNvmlUnavailable, writeFakeNvmlConfig } from '../helpers/fake-nvml.js';
import { assertScrapesHealthy, sample, scrapeFor, stopClean, untilMetrics } from '../helpers/faults.js';
import { startExporter } from '../helpers/procs.js';

// Fault matrix, GPU side: each case runs the real exporter process (src/main.ts) and scrapes it while the fault is on.

const skip = fakeNvmlUnavailable();
const uuid = (i: number) => `GPU-fake0000-0000-0000-0000-00000000000${i}`;
const gpuLabels = (i: number) => `gpu="${i}",uuid="${uuid(i)}"`;
const base = ['--no-collector.kubelet', '--log.level=info'];

test('GPU lost (fake NVML): ds_gpu_up 0 for that GPU only, the collector keeps succeeding, scrapes stay fast', { skip, timeout: 90_000 }, async () => {
  const lib = buildFakeNvml();
  // About 18 NVML calls per GPU per sample: GPU 1 answers NVML_ERROR_GPU_IS_LOST from about the 8th second on.
  const config = writeFakeNvmlConfig({ gpus: 2, 'gpu.1.lost_after': 150, power_mw: 250_000 });
  const ex = await startExporter(['--gpu.source=nvml', `--nvml.library=${lib}`, ...base], { FAKE_NVML_CONFIG: config });
  try {
    const healthy = await untilMetrics(ex.url, (b) => sample(b, 'ds_gpu_up', gpuLabels(1)) === 1 && sample(b, 'ds_gpu_up', gpuLabels(0)) === 1, 15_000, 'both GPUs up');
    assert.equal(sample(healthy, 'ds_gpu_power_watts', gpuLabels(1)), 250);
    const baseline = await scrapeFor(ex.url, 2500);
    await untilMetrics(ex.url, (b) => sample(b, 'ds_gpu_up', gpuLabels(1)) === 0, 30_000, 'GPU 1 lost');
    assert.ok(sample(healthy, 'ds_gpu_up', gpuLabels(1)) === 1, 'GPU 1 was up before the loss (the fault came after the baseline)');
    const during = await scrapeFor(ex.url, 3000);
    assertScrapesHealthy(baseline, during, 'GPU lost');
    const text = during.lastBody;
    assert.equal(sample(text, 'ds_gpu_up', gpuLabels(1)), 0, 'the lost GPU reads down');
    assert.equal(sample(text, 'ds_gpu_up', gpuLabels(0)), 1, 'the other GPU stays up');
    assert.equal(sample(text, 'ds_gpu_power_watts', gpuLabels(1)), undefined, 'a lost GPU serves no values');
    assert.equal(sample(text, 'ds_gpu_power_watts', gpuLabels(0)), 250);
    assert.equal(sample(text, 'ds_exporter_collector_success', 'collector="gpu"'), 1, 'one lost GPU is not a failed collector');
    assert.match(ex.output(), /gpu lost|GPU is lost/i, 'the loss is logged');
  } finally {
    await stopClean(ex, 'GPU lost');
  }
});

test('NVML library missing with --gpu.source=nvml: collector_success{gpu} 0, no GPU series, the rest served fast', { timeout: 60_000 }, async () => {
  const ex = await startExporter(['--gpu.source=nvml', '--nvml.library=/nonexistent/libnvidia-ml.so.1', ...base]);
  try {
    const text = await untilMetrics(ex.url, (b) => sample(b, 'ds_exporter_collector_success', 'collector="gpu"') === 0, 15_000, 'gpu collector failing');
    assert.equal(sample(text, 'ds_exporter_collector_success', 'collector="push"'), 1, 'the other collectors keep succeeding');
    assert.doesNotMatch(text, /^ds_gpu_up\{/m, 'no GPU is invented');
    assert.doesNotMatch(text, /^ds_exporter_gpu_source_info\{source="simulated"\}/m, 'an explicit source never falls back to the simulator');
    assert.match(ex.output(), /collector could not start; retrying on every sample.*collector=gpu/);
    assert.equal((await fetch(`${ex.url}/readyz`)).status, 200, 'ready: the first sample ran, even though it failed');
    // No healthy twin of the same process exists: the baseline is a plain exporter without GPUs on this machine, now.
    const ref = await startExporter(['--no-collector.gpu', ...base]);
    let baseline;
    try {
      baseline = await scrapeFor(ref.url, 2500);
    } finally {
      await stopClean(ref, 'reference exporter');
    }
    const during = await scrapeFor(ex.url, 3000);
    assertScrapesHealthy(baseline, during, 'NVML missing');
    assert.equal(sample(during.lastBody, 'ds_exporter_collector_success', 'collector="gpu"'), 0, 'still failing (retried on every sample, never succeeding)');
  } finally {
    await stopClean(ex, 'NVML missing');
  }
});
