import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortSync } from './port.js';
import { cpuSeconds, load, mainThreadCpu, quantile, ROOT, rssBytes, sleep, startBuiltExporter } from './lib.js';

export interface IdleRow {
  gpus: number;
  /** Whole-process CPU in the window starting `warmupMs` after start. */
  earlyIdleMsPerS: number;
  /** Whole-process CPU in the window starting `steadyAtMs` after start. */
  steadyIdleMsPerS: number;
  /** The main thread's (event loop's) part of `steadyIdleMsPerS`. */
  steadyMainMsPerS: number;
  /** All CPU from process start to the end of the steady window: the one-off warm-up plus idle. */
  cpuToSteadyEndS: number;
}

export interface LoadRow {
  gpus: number;
  series: number;
  p50Ms: number;
  p99Ms: number;
  gzipP99Ms: number;
  pacedP50Ms: number;
  pacedP99Ms: number;
  /** The same paced load against a plain node:http server sending the same gzip bytes. */
  referencePacedP50Ms: number;
  referencePacedP99Ms: number;
  /** The closed gzip loop against that server. */
  referenceGzipP99Ms: number;
  scrapesPerSecond: number;
  rssMb: number;
}

export type CoreRow = IdleRow & LoadRow;

export interface CoreOptions {
  idleMs: number;
  loadMs: number;
  warmupMs: number;
  /** Start of the steady-state idle window, from process start. */
  steadyAtMs: number;
}

type Exporter = Awaited<ReturnType<typeof startBuiltExporter>>;

/**
 * For simulated hosts of each size in `sizes`: idle CPU with 1 s sampling and no scrapes, soon
 * after start and at steady state, then /metrics latency and throughput under 10 keep-alive
 * connections, and RSS.
 *
 * All exporters start together and idle through the same windows, so the long wait for steady
 * state is paid once; then each is loaded alone and stopped, while those not yet loaded stay idle.
 */
export async function benchCore(sizes: number[], opts: CoreOptions, log: (line: string) => void = () => {}): Promise<CoreRow[]> {
  const ports = new Set<number>();
  while (ports.size < sizes.length) ports.add(freePortSync());
  const args = (gpus: number) => ['--simulate', `--simulate.gpus=${gpus}`, '--simulate.peers=16', '--sample.interval=1s'];
  log(`bench: starting ${sizes.join(', ')} simulated GPUs together, idle...`);
  const t0 = performance.now();
  const started = await Promise.allSettled([...ports].map((port, i) => startBuiltExporter(port, args(sizes[i]))));
  const exporters = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const idle = await idleWindows(sizes, exporters, t0, opts, log);
    const rows: CoreRow[] = [];
    for (let i = 0; i < sizes.length; i++) {
      log(`bench: ${sizes[i]} simulated GPUs under load...`);
      rows.push({ ...idle[i], ...(await loadPhases(sizes[i], exporters[i], opts)) });
      await stop(exporters[i]);
    }
    return rows;
  } finally {
    await Promise.all(exporters.map(stop));
  }
}

/**
 * Whole-process CPU of every exporter in two windows of `idleMs`, the same for all: from
 * `warmupMs` and from `steadyAtMs` after `t0` (their start). V8 keeps compiling the once-a-second
 * sampling code for minutes, so the first window includes a one-off cost the second does not.
 */
async function idleWindows(sizes: number[], exporters: Exporter[], t0: number, opts: CoreOptions, log: (line: string) => void): Promise<IdleRow[]> {
  const pids = exporters.map((e) => e.child.pid!);
  const window = async (fromMs: number) => {
    await sleep(t0 + fromMs - performance.now());
    const late = performance.now() - t0 - fromMs;
    if (late > 1000) log(`bench: the idle window planned at ${fromMs / 1000} s starts ${(late / 1000).toFixed(1)} s late (start-up took longer)`);
    const c0 = pids.map(cpuSeconds);
    const m0 = pids.map((p) => mainThreadCpu(p).cpuS);
    const w0 = performance.now();
    await sleep(opts.idleMs);
    // Divided by the measured span, not the planned one: a late timer would inflate the rate.
    const c1 = pids.map(cpuSeconds);
    const m1 = pids.map((p) => mainThreadCpu(p).cpuS);
    const s = (performance.now() - w0) / 1000;
    return { msPerS: c1.map((c, i) => (1000 * (c - c0[i])) / s), mainMsPerS: m1.map((m, i) => (1000 * (m - m0[i])) / s), total: c1 };
  };
  log(`bench: idle window ${opts.warmupMs / 1000} s after start...`);
  const early = await window(opts.warmupMs);
  log(`bench: idle window ${opts.steadyAtMs / 1000} s after start (steady state)...`);
  const steady = await window(opts.steadyAtMs);
  return sizes.map((gpus, i) => ({
    gpus,
    earlyIdleMsPerS: early.msPerS[i],
    steadyIdleMsPerS: steady.msPerS[i],
    steadyMainMsPerS: steady.mainMsPerS[i],
    cpuToSteadyEndS: steady.total[i],
  }));
}

/** Scrape latency and throughput of one exporter (the first scrapes it has seen), then its RSS. */
async function loadPhases(gpus: number, ex: Exporter, opts: CoreOptions): Promise<LoadRow> {
  const pid = ex.child.pid!;
  const body = await (await fetch(`${ex.url}/metrics`)).text();
  const series = body.split('\n').filter((l) => l && !l.startsWith('#')).length;
  const plain = await load(ex.url, '/metrics', 10, opts.loadMs);
  const gz = await load(ex.url, '/metrics', 10, opts.loadMs / 2, { 'accept-encoding': 'gzip' });
  // 10 connections at 10 scrapes/s each: far more than any Prometheus fleet sends, below saturation.
  const paced = await load(ex.url, '/metrics', 10, 2 * opts.loadMs, { 'accept-encoding': 'gzip' }, 10);
  const gzBody = Buffer.from(await (await fetch(`${ex.url}/metrics`, { headers: { 'accept-encoding': 'gzip' } })).arrayBuffer());
  const reference = await referenceLoad(gzBody, [
    { ms: 2 * opts.loadMs, rate: 10 },
    { ms: opts.loadMs / 2 },
  ]);
  return {
    gpus,
    series,
    p50Ms: quantile(plain.latencies, 0.5),
    p99Ms: quantile(plain.latencies, 0.99),
    gzipP99Ms: quantile(gz.latencies, 0.99),
    pacedP50Ms: quantile(paced.latencies, 0.5),
    pacedP99Ms: quantile(paced.latencies, 0.99),
    referencePacedP50Ms: quantile(reference[0].latencies, 0.5),
    referencePacedP99Ms: quantile(reference[0].latencies, 0.99),
    referenceGzipP99Ms: quantile(reference[1].latencies, 0.99),
    scrapesPerSecond: plain.latencies.length / plain.seconds,
    rssMb: rssBytes(pid) / 2 ** 20,
  };
}

/** Stops an exporter once; one that already exited (or was stopped) is left as it is. */
async function stop(ex: Exporter): Promise<void> {
  if (ex.child.exitCode !== null || ex.child.signalCode !== null || ex.child.killed) return;
  await ex.stop();
}

/**
 * Loads against `bench/static-server.mjs` serving `body` (10 connections each; paced when a
 * rate per connection is given, a closed loop otherwise): what the machine, the load
 * generator and node:http cost without any exporter work, measured in the same run.
 */
async function referenceLoad(body: Buffer, phases: Array<{ ms: number; rate?: number }>): Promise<Array<{ latencies: number[] }>> {
  const dir = mkdtempSync(join(tmpdir(), 'ds-bench-'));
  const file = join(dir, 'body.gz');
  writeFileSync(file, body);
  const port = freePortSync();
  const child = spawn(process.execPath, [join(ROOT, 'bench/static-server.mjs'), file, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((res, rej) => {
      child.stdout!.once('data', res);
      child.once('exit', (code) => rej(new Error(`static server exited with ${code}`)));
    });
    const out: Array<{ latencies: number[] }> = [];
    for (const p of phases) out.push(await load(`http://127.0.0.1:${port}`, '/metrics', 10, p.ms, { 'accept-encoding': 'gzip' }, p.rate));
    return out;
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
