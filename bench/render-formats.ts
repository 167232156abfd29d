import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { silentLogger } from '../src/core/logger.js';
import type { ExpositionFormat } from '../src/core/store.js';
import { machine, quantile, ROOT, table } from './lib.js';

/**
 * `npx tsx bench/render-formats.ts [--quick]`: render time of each exposition format for a
 * whole simulated host, in process. Each round advances the simulated clock one second,
 * samples every collector (most series change value) and renders text, OpenMetrics and
 * protobuf once each, timing the rendering alone: what a scrape costs right after a sample
 * tick, when the cache of each format is behind. Writes bench/results/render-formats.md.
 */

const FORMATS: readonly ExpositionFormat[] = ['text', 'openmetrics', 'protobuf'];

interface Row {
  gpus: number;
  format: ExpositionFormat;
  series: number;
  bytes: number;
  gzipBytes: number;
  p50Ms: number;
  p99Ms: number;
  cachedUs: number;
}

async function bench(gpus: number, rounds: number): Promise<Row[]> {
  let now = 1_700_000_000_000;
  const config = loadConfig(['--simulate', `--simulate.gpus=${gpus}`, '--simulate.peers=16'], {});
  const built = await buildApp(config, { logger: silentLogger, now: () => now, processMetrics: true, minRenderIntervalMs: 0 });
  try {
    const times = new Map<ExpositionFormat, number[]>(FORMATS.map((f) => [f, []]));
    const cached = new Map<ExpositionFormat, number[]>(FORMATS.map((f) => [f, []]));
    // One format per round, in turn, so that each rendering follows a sample of its own (the
    // text and OpenMetrics renderings share the sample lines they write).
    for (let i = 0; i < (rounds + 5) * FORMATS.length; i++) {
      const f = FORMATS[i % FORMATS.length];
      now += 1000;
      await built.scheduler.sampleAll();
      const t0 = process.hrtime.bigint();
      await built.store.render(f);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // The first rounds warm the JIT and the per-series caches.
      const warm = i >= 5 * FORMATS.length;
      if (warm) times.get(f)!.push(ms);
      const t1 = process.hrtime.bigint();
      await built.store.render(f);
      if (warm) cached.get(f)!.push(Number(process.hrtime.bigint() - t1) / 1e3);
    }
    const rows: Row[] = [];
    for (const f of FORMATS) {
      const body = (await built.store.render(f)).body;
      const t = times.get(f)!.sort((a, b) => a - b);
      rows.push({ gpus, format: f, series: built.store.seriesCount, bytes: body.length, gzipBytes: gzipSync(body, { level: 6 }).length, p50Ms: quantile(t, 0.5), p99Ms: quantile(t, 0.99), cachedUs: quantile(cached.get(f)!.sort((a, b) => a - b), 0.5) });
    }
    return rows;
  } finally {
    await built.close();
  }
}

async function main() {
  const quick = process.argv.includes('--quick');
  const rounds = quick ? 10 : 100;
  const rows: Row[] = [];
  for (const gpus of [8, 64, 256]) {
    process.stderr.write(`render-formats: ${gpus} simulated GPUs...\n`);
    rows.push(...(await bench(gpus, rounds)));
  }
  const md = [
    '# Render time per exposition format',
    '',
    `Machine: ${machine()}`,
    `Date: ${new Date().toISOString().slice(0, 10)}; command: \`npx tsx bench/render-formats.ts\`${quick ? ' --quick' : ''}`,
    '',
    `Whole host simulated (\`--simulate\`, 16 peers), in process, with the process and Node.js metrics. Each round advances the simulated clock 1 s, samples every collector, then renders one format right after the sample (its cache is behind: the families that changed are written again) and once more from the cache; ${rounds} rounds per format, the formats in turn. Store series only; the process metrics add a few dozen. Bytes are the body as served; gzip at level 6 as /metrics sends it. The machine was shared with other work while this ran: the p99 column carries its load.`,
    '',
    table(
      ['GPUs', 'format', 'store series', 'bytes', 'gzip bytes', 'render after a sample p50 ms', 'p99 ms', 'cached µs'],
      rows.map((r) => [r.gpus, r.format, r.series, r.bytes, r.gzipBytes, r.p50Ms, r.p99Ms, r.cachedUs]),
    ),
    '',
  ].join('\n');
  process.stdout.write(md);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  if (!quick) writeFileSync(join(ROOT, 'bench/results/render-formats.md'), md);
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
