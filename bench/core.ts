import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortSync } from './port.js';
import { cpuSeconds, load, quantile, ROOT, rssBytes, sleep, startBuiltExporter } from './lib.js';

export interface CoreRow {
  gpus: number;
  series: number;
  idleCpuPercent: number;
  cpuMsPerTick: number;
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

/**
 * /metrics latency and throughput under 10 keep-alive connections, idle CPU with 1 s
 * sampling and no scrapes, CPU per sample tick, and RSS, for a simulated host of `gpus`.
 */
export async function benchCore(gpus: number, opts: { idleMs: number; loadMs: number; warmupMs: number }): Promise<CoreRow> {
  const port = freePortSync();
  const ex = await startBuiltExporter(port, ['--simulate', `--simulate.gpus=${gpus}`, '--simulate.peers=16', '--sample.interval=1s']);
  const pid = ex.child.pid!;
  try {
    // Idle CPU is a steady-state figure: start-up garbage (modules, assets, JIT) is
    // collected during the first seconds and would otherwise be counted as idle cost.
    await sleep(opts.warmupMs);
    const c0 = cpuSeconds(pid);
    await sleep(opts.idleMs);
    const idleCpu = cpuSeconds(pid) - c0;
    const body = await (await fetch(`${ex.url}/metrics`)).text();
    const series = body.split('\n').filter((l) => l && !l.startsWith('#')).length;
    const ticks = opts.idleMs / 1000;
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
      idleCpuPercent: (100 * idleCpu) / (opts.idleMs / 1000),
      cpuMsPerTick: (1000 * idleCpu) / ticks,
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
  } finally {
    await ex.stop();
  }
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
