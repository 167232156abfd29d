import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePortSync } from './port.js';
import { cpuSeconds, EXPORTER_NODE_FLAGS, machine, mainThreadCpu, ROOT, sleep } from './lib.js';
import { buildFakeNvml, writeFakeNvmlConfig } from '../test/helpers/fake-nvml.js';

/**
 * Where the idle CPU goes: the built exporter as the core benchmark runs it (a simulated host
 * of 8 GPUs and 16 peers, 1 s sampling), no scrapes, under `node --cpu-prof`. Prints and writes
 * (bench/results/idle-profile.md) the idle CPU measured from /proc in a run without the profiler,
 * then the profile's top entries by self time and by the sampling code that called them.
 *
 *   npx tsx bench/idle-profile.ts [--quick] [--source=sim|nvml] [--gpus=N] [--seconds=N] [--warmup=SECONDS] [--main=dist/main.js] [--out=FILE]
 *
 * --main points at another build of the exporter (e.g. one of an earlier commit) to compare.
 * --source=nvml runs the GPU collector alone through the fake libnvidia-ml.so.1 of the tests
 * (GPM on), as on a GPU host with nothing else configured, instead of the simulated host.
 */

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

type Source = 'sim' | 'nvml';
let nvmlLibrary = '';
const ARGS = (source: Source, gpus: number) =>
  source === 'sim' ? ['--simulate', `--simulate.gpus=${gpus}`, '--simulate.peers=16', '--sample.interval=1s'] : ['--gpu.source=nvml', `--nvml.library=${nvmlLibrary}`, '--sample.interval=1s'];

/** Starts the built exporter (extra node flags first), waits until ready, idles, stops it; returns idle CPU seconds over the window. */
async function idleRun(main: string, source: Source, gpus: number, nodeFlags: string[], warmupMs: number, idleMs: number): Promise<{ cpuS: number; mainS: number; wakeups: number; exit: Promise<void>; windowUs: [number, number] }> {
  const port = freePortSync();
  const child = spawn(process.execPath, [...EXPORTER_NODE_FLAGS, ...nodeFlags, main, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...ARGS(source, gpus)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  await sleep(warmupMs);
  // The window on the monotonic clock, which is also the clock of V8's profile timestamps (µs).
  const w0 = Number(process.hrtime.bigint() / 1000n);
  const c0 = cpuSeconds(child.pid!);
  const m0 = mainThreadCpu(child.pid!);
  await sleep(idleMs);
  const cpuS = cpuSeconds(child.pid!) - c0;
  const m1 = mainThreadCpu(child.pid!);
  const w1 = Number(process.hrtime.bigint() / 1000n);
  child.kill('SIGTERM');
  return { cpuS, mainS: m1.cpuS - m0.cpuS, wakeups: (m1.wakeups - m0.wakeups) / (idleMs / 1000), exit, windowUs: [w0, w1] };
}

/** Self time per function, and total (self + callees) time per function, in ms, from a .cpuprofile. */
export function summarize(p: Profile, seconds: number): { self: Array<[string, number]>; total: Array<[string, number]>; categories: Array<[string, number]>; profiledMs: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  const label = (n: Node) => {
    const f = n.callFrame;
    const url = f.url.startsWith('file://') ? relative(ROOT, new URL(f.url).pathname).replace(/^test\/\.build\/(before|after)\//, 'dist/') : f.url;
    return `${f.functionName || '(anonymous)'}${url ? ` ${url}:${f.lineNumber + 1}` : ''}`;
  };
  const category = (n: Node) => {
    const u = n.callFrame.url;
    if (!u) return n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native)';
    if (u.includes('/node_modules/')) return `node_modules/${u.split('/node_modules/')[1].split('/')[0]}`;
    if (u.startsWith('node:')) return 'node: internals';
    const rel = relative(ROOT, new URL(u).pathname).replace(/^test\/\.build\/(before|after)\//, 'dist/');
    return rel.split('/').slice(0, 3).join('/');
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const cats = new Map<string, number>();
  let profiledUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') continue;
    profiledUs += us;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    cats.set(category(n), (cats.get(category(n)) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue; // recursion counts once
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + us);
    }
  }
  const perS = (m: Map<string, number>) => [...m].map(([k, v]): [string, number] => [k, v / 1000 / seconds]).sort((a, b) => b[1] - a[1]);
  return { self: perS(self), total: perS(total).filter(([k]) => !k.startsWith('(root)')), categories: perS(cats), profiledMs: profiledUs / 1000 / seconds };
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const gpus = Number(/--gpus=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 8);
  const seconds = Number(/--seconds=(\d+)/.exec(process.argv.join(' '))?.[1] ?? (quick ? 10 : 60));
  const warmupMs = Number(/--warmup=(\d+)/.exec(process.argv.join(' '))?.[1] ?? (quick ? 5 : 30)) * 1000;
  const mainArg = /--main=(\S+)/.exec(process.argv.join(' '))?.[1];
  const main = mainArg ? resolve(mainArg) : join(ROOT, 'dist/main.js');
  const source: Source = /--source=nvml/.test(process.argv.join(' ')) ? 'nvml' : 'sim';
  if (source === 'nvml') {
    nvmlLibrary = buildFakeNvml();
    // The children inherit it: 8 (or --gpus) fake GPUs with GPM.
    writeFakeNvmlConfig({ gpus });
  }
  // 1. The figure: idle CPU without the profiler.
  const plain = await idleRun(main, source, gpus, [], warmupMs, seconds * 1000);
  await plain.exit;
  const cpuMsPerS = (plain.cpuS * 1000) / seconds;
  const mainMsPerS = (plain.mainS * 1000) / seconds;
  // 2. Where it goes: the same run under --cpu-prof (the profiler's own cost is not in the profile).
  const dir = mkdtempSync(join(tmpdir(), 'ds-idle-prof-'));
  try {
    const prof = await idleRun(main, source, gpus, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=250'], warmupMs, seconds * 1000);
    await prof.exit;
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('no .cpuprofile written');
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    // The profile covers start-up and shutdown too: keep only the samples of the idle window.
    const [windowStartUs, windowEndUs] = prof.windowUs;
    if (p.startTime > windowStartUs || p.endTime < windowEndUs) throw new Error(`the profile (${p.startTime}..${p.endTime} µs) does not cover the idle window (${windowStartUs}..${windowEndUs} µs): not the monotonic clock?`);
    let t = p.startTime;
    const keep: { samples: number[]; timeDeltas: number[] } = { samples: [], timeDeltas: [0] };
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i];
      if (t >= windowStartUs && t < windowEndUs) {
        keep.samples.push(p.samples[i]);
        keep.timeDeltas.push(p.timeDeltas[i + 1] ?? 0);
      }
    }
    const s = summarize({ ...p, samples: keep.samples, timeDeltas: keep.timeDeltas }, (windowEndUs - windowStartUs) / 1e6);
    const rows = (list: Array<[string, number]>, n: number) => list.slice(0, n).map(([k, v]) => `| ${v.toFixed(3)} | \`${k.replace(/\|/g, '\\|')}\` |`);
    const md = [
      '# Idle CPU profile',
      '',
      `Machine: ${machine()}`,
      `Date: ${new Date().toISOString().slice(0, 10)}; command: \`npx tsx bench/idle-profile.ts ${process.argv.slice(2).join(' ')}\`; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')} (a shared machine)`,
      '',
      `The built exporter as the core benchmark runs it (\`node ${EXPORTER_NODE_FLAGS.join(' ')} ${relative(ROOT, main)} ${ARGS(source, gpus).join(' ').replace(nvmlLibrary || '\u0000', 'test/.build/…/libnvidia-ml.so.1')}\`${source === 'nvml' ? `: the fake NVML library of the tests, ${gpus} GPUs with GPM, whose calls cost less than a driver's` : ''}${mainArg ? ', a build of an earlier commit' : ''}), no scrapes, ${warmupMs / 1000} s of warm-up then ${seconds} s measured.`,
      '',
      `**Idle CPU (from /proc, a run without the profiler): ${cpuMsPerS.toFixed(2)} ms per second = ${(cpuMsPerS / 10).toFixed(3)} % of a core.** Target: ≤ 2.5 ms per second (0.25 %).`,
      '',
      `Of it, the main thread (the event loop: sampling, timers, garbage collection's main part) ${mainMsPerS.toFixed(2)} ms/s, woken ${plain.wakeups.toFixed(1)} times a second; the other ${(cpuMsPerS - mainMsPerS).toFixed(2)} ms/s ran on V8's and libuv's worker threads (optimizing compiler, concurrent GC, NVML's event wait). /proc counts in 10 ms ticks: ±0.2 ms/s over ${seconds} s.`,
      '',
      `Under \`--cpu-prof\` (250 µs sampling) the profiled window holds ${s.profiledMs.toFixed(2)} ms of samples per second outside \`(idle)\`; the profiler's own thread is not in it. Figures below are ms per second of idle.`,
      '',
      '## By where the code lives (self time)',
      '',
      '| ms/s | where |',
      '| --- | --- |',
      ...rows(s.categories, 15),
      '',
      '## Top functions by self time',
      '',
      '| ms/s | function |',
      '| --- | --- |',
      ...rows(s.self, 25),
      '',
      '## Top functions by total time (self and callees)',
      '',
      '| ms/s | function |',
      '| --- | --- |',
      ...rows(s.total, 30),
      '',
    ].join('\n');
    process.stdout.write(md);
    if (!quick) {
      mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
      writeFileSync(join(ROOT, /--out=(\S+)/.exec(process.argv.join(' '))?.[1] ?? 'bench/results/idle-profile.md'), md);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
