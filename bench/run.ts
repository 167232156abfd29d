import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchCore } from './core.js';
import { machine, ROOT, table } from './lib.js';
import { soak, soakOptions } from './soak.js';

/**
 * `npm run bench`: measures the exporter and prints a table; writes bench/results/core.md.
 * `npm run bench -- --quick` shortens every phase (for a smoke run).
 * `npm run bench -- --soak [--minutes=N]` runs the soak instead (bench/soak.ts; default 30 minutes).
 */
async function main() {
  if (process.argv.includes('--soak')) {
    process.stdout.write(await soak(soakOptions(process.argv.slice(2))));
    return;
  }
  const quick = process.argv.includes('--quick');
  const idleMs = quick ? 3000 : 20_000;
  const loadMs = quick ? 2000 : 10_000;
  const rows = [];
  for (const gpus of [8, 64, 256]) {
    process.stderr.write(`bench: ${gpus} simulated GPUs...\n`);
    rows.push(await benchCore(gpus, { idleMs, loadMs }));
  }
  const md = [
    '# Core benchmark',
    '',
    `Machine: ${machine()}`,
    `Date: ${new Date().toISOString().slice(0, 10)}; command: \`npm run bench\`${quick ? ' -- --quick' : ''}`,
    '',
    `Whole host simulated (\`--simulate\`, 16 peers), 1 s sampling. Idle: ${idleMs / 1000} s with no scrapes. Load: 10 keep-alive connections scraping /metrics in a closed loop for ${loadMs / 1000} s (load generator on the same machine), then with gzip.`,
    '',
    table(
      ['GPUs', 'series', 'idle CPU % of a core', 'CPU ms per sample tick', '/metrics p50 ms', '/metrics p99 ms', 'gzip p99 ms', 'scrapes/s', 'RSS MB'],
      rows.map((r) => [r.gpus, r.series, r.idleCpuPercent, r.cpuMsPerTick, r.p50Ms, r.p99Ms, r.gzipP99Ms, r.scrapesPerSecond, r.rssMb]),
    ),
    '',
    'Targets at 64 GPUs: p99 <= 5 ms at 10 connections, RSS <= 150 MB, idle CPU <= 1 % of a core.',
    '',
  ].join('\n');
  process.stdout.write(md);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  if (!quick) writeFileSync(join(ROOT, 'bench/results/core.md'), md);
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
