import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import fc from 'fast-check';
import { integrateSamples, throttleReasonsFromMask, type UtilSample } from '../../src/collectors/gpu/nvml-helpers.js';
import { testApp, valueOf } from '../helpers/app.js';
import { buildFakeNvml, fakeNvmlUnavailable, writeFakeNvmlConfig } from '../helpers/fake-nvml.js';
import { fakeNvmlControl } from '../helpers/fake-nvml-control.js';

const skip = fakeNvmlUnavailable();
const T0_US = 1_800_000_000_000_000; // a whole second: the square wave is high in [T0, T0+1 s)
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

/** One GPU on the fake NVML, sampled at the times given (µs), with the library on the same fake clock. */
async function run(config: Record<string, string | number>, timesUs: number[], omit: string[] = []) {
  const lib = buildFakeNvml(omit);
  writeFakeNvmlConfig({ gpus: 1, ...config });
  const ctl = fakeNvmlControl(lib);
  let nowUs = timesUs[0];
  ctl.setTimeUs(nowUs);
  const built = await testApp(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim'], { now: () => Math.floor(nowUs / 1000) });
  open.push(built);
  const out: Array<{ busy: number; point: number; lost?: number; method: string }> = [];
  for (const t of timesUs) {
    nowUs = t;
    ctl.setTimeUs(t);
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    out.push({
      busy: valueOf(text, /^ds_gpu_busy_seconds_total\{/)!,
      point: valueOf(text, /^ds_gpu_utilization_ratio\{/)!,
      lost: valueOf(text, /^ds_gpu_utilization_samples_lost_seconds_total\{/),
      method: /ds_gpu_utilization_method\{[^}]*method="(\w+)"/.exec(text)?.[1] ?? 'none',
    });
  }
  return out;
}

const every = (startUs: number, stepUs: number, n: number) => Array.from({ length: n }, (_, i) => startUs + i * stepUs);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('square wave (1 s at 100 %, 1 s at 0 %): the busy counter rate is 0.5, point readings are each 0 or 1', { skip }, async () => {
  const times = every(T0_US + 500_000, 1_000_000, 13); // 12 s window, once a second
  const r = await run({ samples: 'square', sample_period_us: 100_000, square_half_us: 1_000_000, sample_capacity: 120 }, times);
  const rate = (r[r.length - 1].busy - r[0].busy) / 12;
  const points = r.slice(1).map((x) => x.point);
  assert.equal(r[r.length - 1].method, 'samples');
  assert.ok(Math.abs(rate - 0.5) <= 0.05, `busy rate ${rate} over 12 s`);
  // What a once-a-second gauge shows of the same wave: never the average.
  assert.ok(points.every((p) => p === 0 || p === 1), `point readings ${points}`);
  assert.equal(r[r.length - 1].lost, 0);
});

test('square wave at the sampling rate (0.5 s on, 0.5 s off): samples still give 0.5, point integration aliases', { skip }, async () => {
  const cfg = { samples: 'square', sample_period_us: 100_000, square_half_us: 500_000, sample_capacity: 120 };
  const times = every(T0_US + 250_000, 1_000_000, 13);
  const withSamples = await run(cfg, times);
  const rate = (withSamples[12].busy - withSamples[0].busy) / 12;
  assert.ok(Math.abs(rate - 0.5) <= 0.05, `samples: busy rate ${rate}`);
  const pointOnly = await run(cfg, times, ['nvmlDeviceGetSamples']);
  assert.equal(pointOnly[12].method, 'point');
  const pointRate = (pointOnly[12].busy - pointOnly[0].busy) / 12;
  const pointMean = mean(pointOnly.slice(1).map((x) => x.point));
  // Every reading lands in the same phase of the wave: the point method sees 100 % (or 0 %).
  assert.ok(Math.abs(pointRate - 0.5) > 0.4, `point integration rate ${pointRate} should be far from the true 0.5`);
  assert.ok(Math.abs(pointMean - 0.5) > 0.4, `mean point reading ${pointMean}`);
});

test('irregular reads count every sample exactly once', { skip }, async () => {
  // Reads 37..1700 ms apart (some between samples, some skipping many), over ~15 s.
  const gaps = [37, 90, 1700, 5, 260, 999, 1001, 40, 1500, 730, 610, 1200, 33, 1650, 880, 1300, 420, 950, 1400, 77, 1100];
  const times = [T0_US + 123_000];
  for (const g of gaps) times.push(times[times.length - 1] + g * 1000);
  const r = await run({ samples: 'square', sample_period_us: 100_000, square_half_us: 1_000_000, sample_capacity: 120 }, times);
  // The exact integral of the wave between the newest samples seen at the first and last read.
  const period = 100_000;
  const a = Math.floor(times[0] / period) * period;
  const b = Math.floor(times[times.length - 1] / period) * period;
  let exact = 0;
  for (let t = a + period; t <= b; t += period) exact += Math.floor((t - period - T0_US) / 1_000_000) % 2 === 0 ? 0.1 : 0;
  const got = r[r.length - 1].busy - r[0].busy;
  assert.ok(Math.abs(got - exact) < 1e-6, `busy ${got} vs exact ${exact}`);
  assert.equal(r[r.length - 1].lost, 0);
});

test('a read gap longer than the driver buffer is counted as lost time, not as idle or busy', { skip }, async () => {
  // Buffer of 20 samples (2 s); a constant 100 % wave; reads at 0, 1 s, then 6 s later.
  const r = await run({ util_gpu: 100, util_mem: 100, sample_period_us: 100_000, sample_capacity: 20 }, [T0_US, T0_US + 1_000_000, T0_US + 7_000_000, T0_US + 8_000_000]);
  assert.ok(Math.abs(r[1].busy - 1) < 1e-9, `first second ${r[1].busy}`);
  // Of the 6 s gap only the 2 s still in the buffer are seen: 2 s busy, 4 s lost (less one sample period counted).
  assert.ok(Math.abs(r[2].busy - r[1].busy - 2) < 1e-9, `busy over the gap ${r[2].busy - r[1].busy}`);
  assert.ok(Math.abs(r[2].lost! - 4) < 1e-9, `lost ${r[2].lost}`);
  assert.ok(Math.abs(r[3].busy - r[2].busy - 1) < 1e-9, 'regular reads afterwards are complete');
  assert.equal(r[3].lost, r[2].lost);
});

// ---- the pure integration, on literals and generated streams ----

const wave = (fromUs: number, n: number, periodUs: number, value: (i: number) => number): UtilSample[] =>
  Array.from({ length: n }, (_, i) => ({ ts: fromUs + (i + 1) * periodUs, value: value(i) }));

test('integrateSamples: baseline first, then each sample over the time since the previous', () => {
  const first = integrateSamples(undefined, wave(0, 3, 100, () => 100), 50);
  assert.deepEqual(first, { busySeconds: 0, lostSeconds: 0, lastSeenUs: 300 });
  const next = integrateSamples(300, [...wave(0, 3, 100, () => 100), { ts: 400, value: 50 }, { ts: 500, value: 100 }], 50);
  assert.ok(Math.abs(next.busySeconds - 0.00015) < 1e-12, `${next.busySeconds}`);
  assert.equal(next.lastSeenUs, 500);
  assert.deepEqual(integrateSamples(500, [], 50), { busySeconds: 0, lostSeconds: 0, lastSeenUs: 500 });
});

test('integrateSamples: any split of a stream into reads (with re-delivered samples) sums to the same total', () => {
  fc.assert(fc.property(
    fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 2, maxLength: 200 }),
    fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 40 }),
    fc.integer({ min: 0, max: 5 }),
    (values, chunks, overlap) => {
      const samples = values.map((v, i) => ({ ts: 1_000_000 + (i + 1) * 166_667, value: v }));
      const whole = integrateSamples(samples[0].ts, samples, 1000).busySeconds;
      let last: number | undefined = samples[0].ts;
      let total = 0;
      let pos = 1;
      for (let c = 0; pos < samples.length; c++) {
        const end = Math.min(samples.length, pos + chunks[c % chunks.length]);
        const res = integrateSamples(last, samples.slice(Math.max(0, pos - overlap), end), 1000);
        total += res.busySeconds;
        assert.equal(res.lostSeconds, 0);
        last = res.lastSeenUs;
        pos = end;
      }
      return Math.abs(total - whole) < 1e-9;
    },
  ));
});

test('throttle reasons bitmask maps to the readable names', () => {
  const r = throttleReasonsFromMask(0x1a5n);
  assert.deepEqual(Object.entries(r).filter(([, v]) => v).map(([k]) => k), ['gpu_idle', 'sw_power_cap', 'sw_thermal_slowdown', 'hw_power_brake_slowdown', 'display_clock_setting']);
  assert.equal(Object.keys(r).length, 9);
});
