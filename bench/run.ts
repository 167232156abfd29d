import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchCore } from './core.js';
import { machine, ROOT, table } from './lib.js';
import { benchGpmMain } from './nvml-gpm.js';
import { smiVsNvidiaGpuExporterMain } from './smi-vs-nvidia-gpu-exporter.js';
import { soak, soakOptions } from './soak.js';

/**
 * `npm run bench`: measures the exporter and prints a table; writes bench/results/core.md.
 * `npm run bench -- --quick` shortens every phase (for a smoke run).
 * `npm run bench -- --soak [--minutes=N]` runs the soak instead (bench/soak.ts; default 30 minutes).
 * `npm run bench -- --nvidia-smi [--quick]` runs ds-exporter's nvidia-smi source side by side with
 * nvidia_gpu_exporter instead (bench/smi-vs-nvidia-gpu-exporter.ts).
 * `npm run bench -- --gpm` measures what GPM profiling costs per GPU per tick (bench/nvml-gpm.ts;
 * writes bench/results/gpm.md).
 */
async function main() {
  if (process.argv.includes('--soak')) {
    process.stdout.write(await soak(soakOptions(process.argv.slice(2))));
    return;
  }
  if (process.argv.includes('--nvidia-smi')) return smiVsNvidiaGpuExporterMain();
  if (process.argv.includes('--gpm')) return benchGpmMain(true);
  const quick = process.argv.includes('--quick');
  const idleMs = quick ? 3000 : 60_000;
  const loadMs = quick ? 2000 : 10_000;
  const warmupMs = quick ? 2000 : 30_000;
  // V8 keeps compiling the once-a-second sampling code for about 7 minutes; idle falls until then.
  const steadyAtMs = quick ? 8000 : 600_000;
  const sizes = [8, 64, 256];
  const rows = await benchCore(sizes, { idleMs, loadMs, warmupMs, steadyAtMs }, (line) => process.stderr.write(line + '\n'));
  const md = [
    '# Core benchmark',
    '',
    `Machine: ${machine()}`,
    `Date: ${new Date().toISOString().slice(0, 10)}; command: \`npm run bench\`${quick ? ' -- --quick' : ''}`,
    '',
    `Whole host simulated (\`--simulate\`, 16 peers), 1 s sampling, the built exporter as \`npm start\` runs it (\`node --no-memory-reducer dist/main.js\`). Idle: the three exporters (${sizes.join(', ')} GPUs) are started together and left idle, with no scrapes, and are measured in the same windows, all three running at once: whole-process CPU (user + system, all threads) over ${dur(idleMs)} starting ${dur(warmupMs)} after start ("idle after ${dur(warmupMs)}"), and over ${dur(idleMs)} starting ${dur(steadyAtMs)} after start ("steady state"; V8's optimizing compiler keeps compiling the once-a-second sampling code for minutes, so idle falls until then); the main thread's (event loop's) part of the steady window; and all CPU from process start to the end of the steady window ("CPU s in the first ${span(steadyAtMs, idleMs)}"): what a start costs, the one-off warm-up plus idle. An operator pays the steady-state figure for the life of the process.`,
    '',
    `Load: then each exporter in turn, one at a time, gets the load phases below, and is stopped after them; the ones not yet loaded stay idle meanwhile. Saturated: 10 keep-alive connections scraping /metrics in a closed loop for ${loadMs / 1000} s (the load generator shares the 2 cores), plain then gzip; latency there is mostly queueing (10 connections / throughput). Paced: the same 10 connections at 10 scrapes/s each (100/s), gzip, for ${(2 * loadMs) / 1000} s. Reference: the same paced load, in the same run, against a plain node:http server sending the exporter's gzip body from memory (\`bench/static-server.mjs\`): what the machine and the load generator cost by themselves; also in the closed gzip loop.`,
    '',
    table(
      ['GPUs', 'series', `idle after ${dur(warmupMs)}, ms CPU/s`, `idle at steady state (${dur(steadyAtMs)}), ms CPU/s`, 'of it main thread ms/s', `CPU s in the first ${span(steadyAtMs, idleMs)}`, 'paced p50 ms', 'paced p99 ms', 'reference paced p50 ms', 'reference paced p99 ms', 'saturated p50 ms', 'saturated p99 ms', 'saturated gzip p99 ms', 'reference saturated gzip p99 ms', 'saturated scrapes/s', 'RSS MB'],
      rows.map((r) => [r.gpus, r.series, r.earlyIdleMsPerS, r.steadyIdleMsPerS, r.steadyMainMsPerS, r.cpuToSteadyEndS, r.pacedP50Ms, r.pacedP99Ms, r.referencePacedP50Ms, r.referencePacedP99Ms, r.p50Ms, r.p99Ms, r.gzipP99Ms, r.referenceGzipP99Ms, r.scrapesPerSecond, r.rssMb]),
    ),
    '',
    'Targets at 64 GPUs: p99 <= 5 ms at 10 connections, RSS <= 150 MB, idle CPU <= 1 % of a core.',
    '',
    'Target at 8 GPUs: idle ≤ 2.5 ms CPU per second (0.25 % of a core) at steady state.',
    '',
  ].join('\n');
  process.stdout.write(md);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  if (!quick) writeFileSync(join(ROOT, 'bench/results/core.md'), md);
}

/** A duration for labels: whole minutes as "10 min", else seconds. */
function dur(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

/** "10+1 min" for a window of `lenMs` starting at `fromMs`: the span from start to its end. */
function span(fromMs: number, lenMs: number): string {
  if (fromMs % 60_000 === 0 && lenMs % 60_000 === 0) return `${fromMs / 60_000}+${lenMs / 60_000} min`;
  return `${fromMs / 1000}+${lenMs / 1000} s`;
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
