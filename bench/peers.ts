/**
 * Peer prober cost: CPU and bytes on the wire per node per second for 10, 100 and 1,000
 * peers (one loopback responder process answering for every simulated peer name), and
 * what the prober adds to a bare UDP round trip. `npx tsx bench/peers.ts [--quick]`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Discovery } from '../src/collectors/peers/discovery.js';
import { writePeers } from '../src/collectors/peers/index.js';
import { PeerProber, type ProbeProtocol } from '../src/collectors/peers/prober.js';
import { PROBE_BYTES } from '../src/probe/protocol.js';
import { silentLogger } from '../src/core/logger.js';
import { SampleStore } from '../src/core/store.js';

/** Ethernet (14) + IPv4 (20) + UDP (8) headers around the 32-byte probe. */
export const WIRE_BYTES_PER_DATAGRAM = 14 + 20 + 8 + PROBE_BYTES;

export interface PeersBenchRow {
  readonly peers: number;
  readonly intervalS: number;
  readonly maxPerInterval: number;
  readonly probesPerSecond: number;
  /** Seconds for every peer to be probed once. */
  readonly meshCoverS: number;
  /** Prober + sampling CPU, percent of one core. */
  readonly proberCpuPct: number;
  /** Responder CPU for the same number of requests (what a node spends answering in a symmetric mesh), percent of one core. */
  readonly responderCpuPct: number;
  /** Bytes per second on one node's link in a full mesh: its requests and their replies, plus the requests it answers and its replies. */
  readonly wireBytesPerSecond: number;
  readonly lost: number;
}

function startResponder(mode: 'udp' | 'raw' | 'http'): Promise<{ port: number; child: ChildProcess; stop: () => Promise<{ cpuSeconds: number; wallSeconds: number }> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./peers-echo.ts', import.meta.url).pathname, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const next = () => new Promise<string>((resolve) => {
    const take = () => (lines.length ? resolve(lines.shift()!) : waiters.push(take));
    take();
  });
  return next().then((p) => ({
    port: Number(p),
    child,
    stop: async () => {
      child.kill('SIGTERM');
      return JSON.parse(await next());
    },
  }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the prober against `peers` simulated peers for `seconds`, sampling into a store every second. */
export async function benchMesh(peers: number, opts: { intervalMs?: number; max?: number; seconds?: number; protocol?: ProbeProtocol } = {}): Promise<PeersBenchRow> {
  const intervalMs = opts.intervalMs ?? 5000;
  const max = opts.max ?? 100;
  const seconds = opts.seconds ?? 15;
  const responder = await startResponder(opts.protocol === 'http' ? 'http' : 'udp');
  // One responder answers for every simulated peer name.
  const targets = Array.from({ length: peers }, (_, i) => ({ id: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:9842`, address: '127.0.0.1', port: responder.port }));
  const prober = new PeerProber({
    protocol: opts.protocol ?? 'udp', intervalMs, timeoutMs: 1000, maxPerInterval: max, lossWindow: 20, refreshMs: 3_600_000,
    discovery: { resolve: async () => targets } as unknown as Discovery,
    logger: silentLogger,
  });
  const store = new SampleStore();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  prober.start();
  const sampler = setInterval(() => {
    const b = store.batch('peers');
    writePeers(b, prober);
    store.commit(b);
  }, 1000);
  await sleep(seconds * 1000);
  clearInterval(sampler);
  await prober.close();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  const r = await responder.stop();
  const probesPerSecond = prober.stats.sent / wall;
  return {
    peers, intervalS: intervalMs / 1000, maxPerInterval: max,
    probesPerSecond,
    meshCoverS: Math.ceil(peers / Math.min(max, peers)) * (intervalMs / 1000),
    proberCpuPct: (100 * (c.user + c.system)) / 1e6 / wall,
    responderCpuPct: (100 * r.cpuSeconds) / r.wallSeconds,
    wireBytesPerSecond: 4 * probesPerSecond * WIRE_BYTES_PER_DATAGRAM,
    lost: prober.stats.lost,
  };
}

export interface OverheadRow {
  readonly method: string;
  readonly samples: number;
  readonly medianUs: number;
  readonly p90Us: number;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/**
 * Loopback RTT, interleaved so that machine load hits every method alike: a bare
 * ping-pong against a bare echo (the baseline), the prober against the exporter's UDP
 * responder, and the prober over HTTP against the probe endpoint.
 */
export async function benchOverhead(samples = 300): Promise<OverheadRow[]> {
  const raw = await startResponder('raw');
  const udp = await startResponder('udp');
  const http = await startResponder('http');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const msg = Buffer.alloc(PROBE_BYTES);
  const mk = (protocol: ProbeProtocol, port: number) => {
    const p = new PeerProber({
      protocol, intervalMs: 1000, timeoutMs: 500, maxPerInterval: 1, lossWindow: 20, refreshMs: 3_600_000,
      discovery: { resolve: async () => [] } as unknown as Discovery,
      logger: silentLogger,
    });
    const target = { id: 'p', address: '127.0.0.1', port };
    p.setTargets([target]);
    return { p, target };
  };
  const pu = mk('udp', udp.port);
  const ph = mk('http', http.port);
  const out = { bare: [] as number[], udp: [] as number[], http: [] as number[] };
  const viaProber = async (x: { p: PeerProber; target: { id: string; address: string; port: number } }, wait: number) => {
    x.p.probe(x.target);
    const end = Date.now() + wait;
    for (;;) {
      await sleep(1);
      const got = x.p.drain()[0].pendingRtts;
      if (got.length || Date.now() > end) return got.map((v) => v * 1e6);
    }
  };
  const bareOnce = async () => {
    const t = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      s.once('message', () => resolve());
      s.send(msg, raw.port, '127.0.0.1');
    });
    return [Number(process.hrtime.bigint() - t) / 1000];
  };
  const methods: Array<[keyof typeof out, () => Promise<number[]>]> = [
    ['bare', bareOnce],
    ['udp', () => viaProber(pu, 400)],
    ['http', () => viaProber(ph, 400)],
  ];
  for (let i = 0; i < samples + 20; i++) {
    // Rotate the order so that no method always follows the same one.
    for (let k = 0; k < methods.length; k++) {
      const [name, run] = methods[(i + k) % methods.length];
      const got = await run();
      if (i >= 20) out[name].push(...got);
      await sleep(2);
    }
  }
  s.close();
  await Promise.all([pu.p.close(), ph.p.close()]);
  await Promise.all([raw.stop(), udp.stop(), http.stop()]);
  const row = (method: string, xs: number[]): OverheadRow => ({ method, samples: xs.length, medianUs: quantile(xs, 0.5), p90Us: quantile(xs, 0.9) });
  return [
    row('bare UDP ping-pong vs bare echo (baseline)', out.bare),
    row('prober (UDP) vs exporter responder', out.udp),
    row('prober (HTTP POST /api/v1/probe, keep-alive) vs fastify', out.http),
  ];
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const seconds = quick ? 6 : 15;
  const mesh: PeersBenchRow[] = [];
  for (const n of [10, 100, 1000]) mesh.push(await benchMesh(n, { seconds }));
  mesh.push(await benchMesh(1000, { seconds, intervalMs: 1000, max: 1000 }));
  const overhead = await benchOverhead(quick ? 100 : 300);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `machine: ${cpu}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| peers | interval | max/round | probes/s | whole mesh every | prober+sampling CPU | responder CPU | wire bytes/s per node (full mesh) | lost |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...mesh.map((r) => `| ${r.peers} | ${r.intervalS} s | ${r.maxPerInterval} | ${r.probesPerSecond.toFixed(1)} | ${r.meshCoverS} s | ${r.proberCpuPct.toFixed(2)} % | ${r.responderCpuPct.toFixed(2)} % | ${Math.round(r.wireBytesPerSecond)} | ${r.lost} |`),
    '',
    '| loopback round trip | samples | median | p90 |',
    '| --- | ---: | ---: | ---: |',
    ...overhead.map((o) => `| ${o.method} | ${o.samples} | ${o.medianUs.toFixed(1)} µs | ${o.p90Us.toFixed(1)} µs |`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(String(err?.stack ?? err) + '\n');
    process.exitCode = 1;
  });
}
