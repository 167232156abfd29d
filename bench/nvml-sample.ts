/**
 * Cost of one NVML sample of 8 GPUs (every field, the sample buffers, the metric mapping),
 * measured on the fake libnvidia-ml.so.1. Run standalone: `npx tsx bench/nvml-sample.ts`.
 */
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../src/core/logger.js';
import { GpuMetrics } from '../src/collectors/gpu/index.js';
import { openNvmlSource } from '../src/collectors/gpu/nvml.js';
import { SampleStore } from '../src/core/store.js';
import { buildFakeNvml, writeFakeNvmlConfig } from '../test/helpers/fake-nvml.js';

export interface BenchResult {
  readonly name: string;
  readonly samples: number;
  readonly meanMs: number;
  readonly p99Ms: number;
}

export async function benchNvmlSample(opts: { samples?: number; gpus?: number } = {}): Promise<BenchResult> {
  const samples = opts.samples ?? 500;
  const gpus = opts.gpus ?? 8;
  const library = buildFakeNvml();
  writeFakeNvmlConfig({ gpus, samples: 'square', sample_period_us: 100_000, util_gpu: 50, nvlink_step_kib: 7, energy_step_mj: 300 });
  const source = await openNvmlSource({ library, logger: silentLogger, now: Date.now, intervalMs: 1000 });
  const store = new SampleStore({ now: Date.now, processMetrics: false });
  const metrics = new GpuMetrics(Date.now, 1000);
  const ac = new AbortController();
  const times: number[] = [];
  try {
    for (let i = 0; i < samples + 20; i++) {
      const t0 = process.hrtime.bigint();
      const batch = store.batch('gpu');
      metrics.write(batch, await source.read(ac.signal), source.kind);
      store.commit(batch);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (i >= 20) times.push(ms); // the first reads size the sample buffers
    }
  } finally {
    await source.close();
  }
  times.sort((a, b) => a - b);
  return {
    name: `nvml sample of ${gpus} GPUs (fake library)`,
    samples,
    meanMs: times.reduce((a, b) => a + b, 0) / times.length,
    p99Ms: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))],
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchNvmlSample();
  console.log(`${r.name}: ${r.samples} samples, mean ${r.meanMs.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms`);
}
