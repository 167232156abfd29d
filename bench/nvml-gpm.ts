/**
 * What GPM profiling costs per GPU per sampling tick, through the fake libnvidia-ml.so.1:
 * one nvmlGpmSampleGet and one nvmlGpmMetricsGet (31 metrics) per GPU, the conversion to
 * deltas and the counters written into a batch. Measured two ways in one run:
 * - alone: the GPM sampler and its counters, nothing else (the cost GPM adds);
 * - in the source: a whole NVML sample of 8 GPUs with GPM, against the same sample with the
 *   library built without GPM (a driver older than 520), interleaved so drift hits both.
 * Run: `npx tsx bench/nvml-gpm.ts` or `npm run bench -- --gpm` (writes bench/results/gpm.md).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../src/core/logger.js';
import { GpuMetrics } from '../src/collectors/gpu/index.js';
import { GpmSampler } from '../src/collectors/gpu/nvml-gpm.js';
import { loadNvml, openNvmlSource } from '../src/collectors/gpu/nvml.js';
import { ProfilingCounters } from '../src/collectors/gpu/profiling.js';
import { Batch, SampleStore } from '../src/core/store.js';
import { buildFakeNvml, writeFakeNvmlConfig } from '../test/helpers/fake-nvml.js';
import { fakeNvmlControl } from '../test/helpers/fake-nvml-control.js';
import { machine, quantile, ROOT, table } from './lib.js';

const GPUS = 8;
const T0_US = 1_800_000_000_000_000;
const CONFIG = { gpus: GPUS, util_gpu: 50, 'gpm.1': 90, 'gpm.2': 40, 'gpm.3': 25, 'gpm.5': 20, 'gpm.7': 18, 'gpm.10': 55, 'gpm.12': 10, 'gpm.20': 900, 'gpm.21': 1200, 'gpm.61': 40_000 };

interface Timing {
  cpuUsPerTick: number[];
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** The GPM sampler and counters alone: CPU per tick of 8 GPUs. */
async function alone(ticks: number): Promise<number[]> {
  const library = buildFakeNvml();
  writeFakeNvmlConfig(CONFIG);
  const ctl = fakeNvmlControl(library);
  const nvml = await loadNvml(library);
  const f = nvml.fns;
  if (f.init!() !== 0) throw new Error('nvmlInit failed');
  let nowMs = T0_US / 1000;
  const handles: bigint[] = [];
  for (let i = 0; i < GPUS; i++) {
    const hb = Buffer.alloc(8);
    if (f.handle!(i, hb) !== 0) throw new Error(`no handle for GPU ${i}`);
    handles.push(hb.readBigUInt64LE(0));
  }
  const gpm = new GpmSampler(f, { logger: silentLogger, now: () => nowMs, errorString: nvml.errorString });
  const counters = new ProfilingCounters();
  const out: number[] = [];
  try {
    for (let t = 0; t < ticks + 20; t++) {
      nowMs += 1000;
      ctl.setTimeUs(nowMs * 1000);
      const batch = new Batch('gpu');
      const c0 = cpuUs();
      for (let i = 0; i < GPUS; i++) {
        const p = gpm.read(`GPU-${i}`, handles[i]);
        counters.writeGpu(batch, String(i), `GPU-${i}`, p.gpu, false);
      }
      const c = cpuUs() - c0;
      if (t >= 20) out.push(c / GPUS);
    }
  } finally {
    gpm.close();
    f.shutdown?.();
  }
  return out;
}

/** A whole NVML sample of 8 GPUs, with and without GPM, ticks interleaved. */
async function inSource(ticks: number): Promise<{ withGpm: number[]; without: number[] }> {
  const make = async (omit: string[]) => {
    const library = buildFakeNvml(omit);
    writeFakeNvmlConfig(CONFIG);
    const ctl = fakeNvmlControl(library);
    let nowMs = T0_US / 1000;
    const source = await openNvmlSource({ library, logger: silentLogger, now: () => nowMs, intervalMs: 1000 });
    const store = new SampleStore({ now: () => nowMs, processMetrics: false });
    const metrics = new GpuMetrics(() => nowMs, 1000);
    const ac = new AbortController();
    return {
      async tick(): Promise<number> {
        nowMs += 1000;
        ctl.setTimeUs(nowMs * 1000);
        const c0 = cpuUs();
        const batch = store.batch('gpu');
        metrics.write(batch, await source.read(ac.signal), source.kind);
        store.commit(batch);
        return cpuUs() - c0;
      },
      close: () => source.close(),
    };
  };
  // Two copies of the library in one process: each build is its own file, so each dlopen is its own instance.
  const a = await make([]);
  const b = await make(['GPM']);
  const withGpm: number[] = [];
  const without: number[] = [];
  try {
    for (let t = 0; t < ticks + 20; t++) {
      const x = await a.tick();
      const y = await b.tick();
      if (t >= 20) {
        withGpm.push(x / GPUS);
        without.push(y / GPUS);
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
  return { withGpm, without };
}

const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const ms = (us: number) => (us / 1000).toFixed(4);

export async function benchGpm(opts: { ticks?: number } = {}): Promise<string> {
  const ticks = opts.ticks ?? 2000;
  const solo = (await alone(ticks)).sort((p, q) => p - q);
  const { withGpm, without } = await inSource(ticks);
  withGpm.sort((p, q) => p - q);
  without.sort((p, q) => p - q);
  const rows = [
    ['GPM alone (sampler + counters)', ms(mean(solo)), ms(quantile(solo, 0.5)), ms(quantile(solo, 0.99))],
    ['NVML sample with GPM', ms(mean(withGpm)), ms(quantile(withGpm, 0.5)), ms(quantile(withGpm, 0.99))],
    ['NVML sample, library without GPM', ms(mean(without)), ms(quantile(without, 0.5)), ms(quantile(without, 0.99))],
    ['difference (what GPM adds)', ms(mean(withGpm) - mean(without)), ms(quantile(withGpm, 0.5) - quantile(without, 0.5)), ''],
  ];
  return [
    '# GPM profiling cost',
    '',
    `Machine: ${machine()}`,
    `Date: ${new Date().toISOString().slice(0, 10)}; command: \`nice npm run bench -- --gpm\``,
    '',
    `CPU time (user + system, process.cpuUsage) per GPU per sampling tick, ${GPUS} GPUs, ${ticks} ticks after 20 of warm-up, through the fake libnvidia-ml.so.1 (test/fake-nvml/, compiled against nvml.h 13.3.29; its GPM keeps cumulative counters per device and computes 31 metrics from two samples, as the driver does). "Alone" times only the GPM sampler (one nvmlGpmSampleGet and one nvmlGpmMetricsGet of 31 metrics per GPU, the deltas, the counters written into a batch); the two NVML rows time a whole sample of the GPU collector with the library built with and without GPM, ticks interleaved. The machine is shared and noisy: the "alone" row is the figure to read, the difference is an upper-bound cross-check. A real driver's GPM calls cost what they cost in the kernel driver; no GPU was available to measure them.`,
    '',
    table(['what', 'mean ms per GPU per tick', 'p50 ms', 'p99 ms'], rows),
    '',
    'Target: GPM adds at most 0.1 ms of CPU per GPU per sampling tick.',
    '',
  ].join('\n');
}

export async function benchGpmMain(write: boolean): Promise<void> {
  const md = await benchGpm();
  process.stdout.write(md);
  if (write) writeFileSync(join(ROOT, 'bench/results/gpm.md'), md);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchGpmMain(process.argv.includes('--write'));
