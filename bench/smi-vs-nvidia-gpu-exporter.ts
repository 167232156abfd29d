import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildFakeSmiReplay, callsFromPidfile, recordSmiReplay } from '../test/helpers/fake-smi-replay.js';
import { FAKE_SMI } from '../test/helpers/fake-smi.js';
import { EXPORTER_NODE_FLAGS, machine, quantile, ROOT, sleep } from './lib.js';

/**
 * ds-exporter's nvidia-smi source side by side with nvidia_gpu_exporter, in one run, all against
 * the same cheap fake nvidia-smi: a compiled replay (test/fake-nvidia-smi/replay.c) of what the
 * capture-driven fake answers to the exact calls each exporter makes, so a fork of nvidia-smi
 * costs what a replay costs and no more. Measured per configuration: /metrics latency, CPU per
 * scrape, CPU with no scrapes, RSS, and the CPU an operator pays per Prometheus scrape interval.
 *
 *   npx tsx bench/smi-vs-nvidia-gpu-exporter.ts [--quick]      (or `npm run bench -- --nvidia-smi`)
 *
 * nvidia_gpu_exporter is taken from $NVIDIA_GPU_EXPORTER, ~/.cache/ds-exporter/peers/,
 * .test-tools/bin or ~/go/bin; it is built from its source by the build.sh shipped beside it.
 */

const GPUS = 8;
const DELAY = '50-150';
const PEER_VERSION = '1.14.0-10-ge656cd8';
const DS_MAIN = existsSync(join(ROOT, 'dist/main.js')) ? [...EXPORTER_NODE_FLAGS, join(ROOT, 'dist/main.js')] : ['--import', 'tsx', join(ROOT, 'src/main.ts')];

/** One measured configuration. */
export interface SmiBenchRow {
  readonly config: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly scrapes: number;
  readonly cpuMsPerScrape: number;
  readonly idleCpuPercent: number;
  readonly rssMb: number;
  readonly childRssMb: number;
  readonly per15sMs: number;
  readonly per30sMs: number;
}

/** The fake's own cost per call, for one exporter's query. */
export interface FakeCost {
  readonly who: string;
  readonly call: string;
  readonly cpuMs: number;
  readonly wallP50Ms: number;
  readonly bytes: number;
}

function peerBinary(): string | undefined {
  const candidates = [process.env.NVIDIA_GPU_EXPORTER ?? '', join(homedir(), `.cache/ds-exporter/peers/nvidia_gpu_exporter-${PEER_VERSION}/nvidia_gpu_exporter`), join(ROOT, '.test-tools/bin/nvidia_gpu_exporter'), join(homedir(), 'go/bin/nvidia_gpu_exporter')];
  return candidates.find((p) => p && existsSync(p));
}

function stat(pid: number | 'self'): string[] {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds of a process and all its descendants, alive (utime+stime) or reaped (cutime+cstime). */
function treeCpu(pid: number): number {
  try {
    const f = stat(pid);
    let kids: number[] = [];
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      /* gone */
    }
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100 + kids.reduce((s, p) => s + treeCpu(p), 0);
  } catch {
    return 0;
  }
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function childrenRssMb(pid: number): number {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).reduce((s, p) => s + rssMb(p) + childrenRssMb(p), 0);
  } catch {
    return 0;
  }
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

async function startProc(cmd: string, args: string[], url: string, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c) => (err = (err + c).slice(-2000)));
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited: ${err}`);
    try {
      const r = await fetch(url);
      if (r.ok && /^(ds_gpu_info|nvidia_smi_gpu_info)\{/m.test(await r.text())) return child;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`${cmd} did not export GPUs: ${err}`);
}

async function stopProc(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((res) => {
    child.once('exit', () => res());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/** A window with no scrapes, then sequential scrapes `gapMs` apart for as long: latency and CPU of the process tree. */
async function measure(config: string, child: ChildProcess, url: string, opts: { warmupMs: number; idleMs: number; busyMs: number; gapMs: number }): Promise<SmiBenchRow> {
  const pid = child.pid!;
  await sleep(opts.warmupMs);
  const i0 = treeCpu(pid);
  await sleep(opts.idleMs);
  const idle = treeCpu(pid) - i0;
  const lat: number[] = [];
  const c0 = treeCpu(pid);
  const t0 = performance.now();
  while (performance.now() - t0 < opts.busyMs) {
    const s = performance.now();
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${config}: /metrics answered ${r.status}`);
    await r.arrayBuffer();
    lat.push(performance.now() - s);
    await sleep(opts.gapMs);
  }
  const busySeconds = (performance.now() - t0) / 1000;
  const busy = treeCpu(pid) - c0;
  const idleRate = idle / (opts.idleMs / 1000); // CPU seconds per second with no scrapes
  const cpuMsPerScrape = (Math.max(0, busy - idleRate * busySeconds) * 1000) / lat.length;
  lat.sort((a, b) => a - b);
  return {
    config,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    scrapes: lat.length,
    cpuMsPerScrape,
    idleCpuPercent: idleRate * 100,
    rssMb: rssMb(pid),
    childRssMb: childrenRssMb(pid),
    per15sMs: idleRate * 15_000 + cpuMsPerScrape,
    per30sMs: idleRate * 30_000 + cpuMsPerScrape,
  };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ wallMs: number; bytes: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    execFile(file, args, { env, maxBuffer: 64 << 20 }, (err, stdout) => (err ? rej(err) : res({ wallMs: performance.now() - t0, bytes: stdout.length })));
  });
}

/** CPU (this process's reaped children) and wall time of `n` sequential calls. */
async function callCost(file: string, args: string[], env: NodeJS.ProcessEnv, n: number): Promise<{ cpuMs: number; wallP50Ms: number; bytes: number }> {
  const children = () => {
    const f = stat('self');
    return (Number(f[13]) + Number(f[14])) * 10;
  };
  const c0 = children();
  const walls: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const r = await run(file, args, env);
    walls.push(r.wallMs);
    bytes = r.bytes;
  }
  walls.sort((a, b) => a - b);
  return { cpuMs: (children() - c0) / n, wallP50Ms: quantile(walls, 0.5), bytes };
}

/** The calls an exporter makes to nvidia-smi, logged by the capture-driven fake while it starts and serves a few scrapes. */
async function discoverCalls(cmd: string, args: string[], url: string, env: NodeJS.ProcessEnv, pidfile: string): Promise<string[][]> {
  const child = await startProc(cmd, args, url, { ...env, FAKE_NVIDIA_SMI_PIDFILE: pidfile });
  try {
    for (let i = 0; i < 3; i++) await (await fetch(url)).arrayBuffer();
  } finally {
    await stopProc(child);
  }
  return callsFromPidfile(pidfile);
}

/** Runs the benchmark: the fake's own cost per call, then every configuration, one after the other. */
export async function benchSmiVsNvidiaGpuExporter(opts: { quick?: boolean } = {}): Promise<{ rows: SmiBenchRow[]; fake: FakeCost[]; notes: string[]; setup: string }> {
  const windows = opts.quick ? { warmupMs: 2000, idleMs: 4000, busyMs: 4000, gapMs: 50 } : { warmupMs: 10_000, idleMs: 30_000, busyMs: 20_000, gapMs: 50 };
  const peer = peerBinary();
  if (!peer) throw new Error(`nvidia_gpu_exporter not found: build it with the build.sh shipped beside its source (\`build.sh ~/.cache/ds-exporter/peers/nvidia_gpu_exporter-${PEER_VERSION}\`) or set NVIDIA_GPU_EXPORTER`);
  const replay = buildFakeSmiReplay();
  const dir = mkdtempSync(join(tmpdir(), 'smi-bench-'));
  const notes: string[] = [];
  try {
    const capture = { ...process.env, FAKE_NVIDIA_SMI_GPUS: String(GPUS), FAKE_NVIDIA_SMI_STATE: 'load' };
    const cheap = { ...capture, FAKE_NVIDIA_SMI_REPLAY_DIR: join(dir, 'replay'), FAKE_NVIDIA_SMI_DELAY_MS: DELAY };

    // 1. What each exporter asks nvidia-smi, recorded from the capture-driven fake, replayed from then on.
    const dsArgs = (port: number, smi: string, interval: string) => [...DS_MAIN, `--web.listen-address=127.0.0.1:${port}`, '--gpu.source=nvidia-smi', `--nvidia-smi.path=${smi}`, `--sample.interval=${interval}`, '--sample.stale-after=60s', '--log.level=warn'];
    const peerArgs = (port: number, smi: string, extra: string[] = []) => [`--web.listen-address=127.0.0.1:${port}`, `--nvidia-smi-command=${smi}`, ...extra];
    let port = await freePort();
    const dsCalls = await discoverCalls(process.execPath, dsArgs(port, FAKE_SMI, '1s'), `http://127.0.0.1:${port}/metrics`, capture, join(dir, 'ds-calls'));
    port = await freePort();
    const peerCalls = await discoverCalls(peer, peerArgs(port, FAKE_SMI), `http://127.0.0.1:${port}/metrics`, capture, join(dir, 'peer-calls'));
    port = await freePort();
    const peerIntervalCalls = await discoverCalls(peer, peerArgs(port, FAKE_SMI, ['--collect.interval=1s']), `http://127.0.0.1:${port}/metrics`, capture, join(dir, 'peer-interval-calls'));
    await recordSmiReplay(join(dir, 'replay'), [...dsCalls, ...peerCalls, ...peerIntervalCalls], capture);

    // 2. The fake's own CPU per call, with each exporter's per-sample query (no delay: sleeping costs no CPU).
    const n = opts.quick ? 50 : 500;
    const noDelay = { ...cheap, FAKE_NVIDIA_SMI_DELAY_MS: '' };
    const peerQuery = peerCalls.find((c) => c[0]?.startsWith('--query-gpu='));
    const dsQuery = dsCalls.find((c) => c[0]?.startsWith('--query-gpu='));
    if (!peerQuery || !dsQuery) throw new Error(`no --query-gpu call seen: ds-exporter ${JSON.stringify(dsCalls)}, nvidia_gpu_exporter ${JSON.stringify(peerCalls)}`);
    const dsOneShot = dsQuery.filter((a) => !a.startsWith('--loop'));
    const fields = (c: string[]) => c[0].split(',').length;
    const fake: FakeCost[] = [];
    for (const [who, call] of [
      ['nvidia_gpu_exporter', peerQuery],
      ['ds-exporter', dsOneShot],
    ] as const) {
      const c = await callCost(replay, call, noDelay, n);
      fake.push({ who, call: `\`--query-gpu=<${fields(call)} fields> ${call.slice(1).join(' ')}\``, ...c });
    }
    const node = await callCost(FAKE_SMI, peerQuery, { ...capture }, opts.quick ? 3 : 10);
    notes.push(`For scale, the capture-driven Node fake (\`test/fake-nvidia-smi/nvidia-smi\`) costs ${fmt(node.cpuMs)} ms of CPU for the same nvidia_gpu_exporter call: it is only used to record the answers.`);

    // 3. Every configuration against the replay, one after the other.
    const rows: SmiBenchRow[] = [];
    const configs: Array<{ name: string; cmd: string; args: (port: number) => string[] }> = [
      { name: 'ds-exporter, nvidia-smi source, 1 s sampling', cmd: process.execPath, args: (p) => dsArgs(p, replay, '1s') },
      { name: 'ds-exporter, nvidia-smi source, 15 s sampling', cmd: process.execPath, args: (p) => dsArgs(p, replay, '15s') },
      { name: 'nvidia_gpu_exporter, default (nvidia-smi per scrape)', cmd: peer, args: (p) => peerArgs(p, replay) },
      { name: 'nvidia_gpu_exporter, `--collect.interval=1s`', cmd: peer, args: (p) => peerArgs(p, replay, ['--collect.interval=1s']) },
      { name: 'nvidia_gpu_exporter, `--collect.interval=15s`', cmd: peer, args: (p) => peerArgs(p, replay, ['--collect.interval=15s']) },
    ];
    for (const c of configs) {
      process.stderr.write(`bench: ${c.name}...\n`);
      const p = await freePort();
      const url = `http://127.0.0.1:${p}/metrics`;
      const child = await startProc(c.cmd, c.args(p), url, cheap);
      try {
        rows.push(await measure(c.name, child, url, windows));
      } finally {
        await stopProc(child);
      }
    }
    const setup =
      `All against the compiled nvidia-smi replay (\`test/fake-nvidia-smi/replay.c\`), answering from recordings of the H100 load capture with ${GPUS} GPUs, made from the capture-driven fake for exactly the calls each exporter was seen to make; the replay waits ${DELAY} ms (uniform) before answering, standing in for nvidia-smi's wall time, which costs no CPU here. ` +
      `ds-exporter: \`${DS_MAIN.includes('tsx') ? 'node --import tsx src/main.ts' : `node ${EXPORTER_NODE_FLAGS.join(' ')} dist/main.js`} --gpu.source=nvidia-smi\` (one long-lived \`nvidia-smi --loop-ms\` child). nvidia_gpu_exporter ${PEER_VERSION}, built from its source, with its default field auto-detection (\`--query-field-names=AUTO\`). ` +
      `Per configuration: ${windows.warmupMs / 1000} s of warm-up, ${windows.idleMs / 1000} s with no scrapes (idle CPU), then sequential scrapes ${windows.gapMs} ms apart for ${windows.busyMs / 1000} s (latency; CPU per scrape is the CPU of that window minus the idle rate, per scrape). CPU is the exporter's process tree, nvidia-smi children included, from /proc (10 ms ticks). ` +
      'CPU per Prometheus interval = idle CPU rate × interval + one scrape: what a node pays per scrape interval.';
    return { rows, fake, notes, setup };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sentences that read the figures as they came out (cheaper is whoever spends less). */
export function reading(rows: readonly SmiBenchRow[]): string[] {
  const by = (prefix: string) => rows.find((r) => r.config.startsWith(prefix));
  const ds1 = by('ds-exporter, nvidia-smi source, 1 s');
  const ds15 = by('ds-exporter, nvidia-smi source, 15 s');
  const perScrape = by('nvidia_gpu_exporter, default');
  const coll1 = by('nvidia_gpu_exporter, `--collect.interval=1s`');
  if (!ds1 || !perScrape) return [];
  const cmp = (a: number, b: number) => (a <= b ? `${fmt(b / Math.max(a, 1e-3), 1)}× less than` : `${fmt(a / Math.max(b, 1e-3), 1)}× more than`);
  const out = [
    `Per scrape, ds-exporter answers in ${fmt(ds1.p50Ms, 2)} ms (p99 ${fmt(ds1.p99Ms, 2)}) from memory; nvidia_gpu_exporter in its default mode waits for nvidia-smi on every scrape (${fmt(perScrape.p50Ms, 0)} ms p50 here, the replay's delay included).`,
    `Per 15 s Prometheus interval, ds-exporter at 1 s sampling spends ${fmt(ds1.per15sMs)} ms of CPU, ${cmp(ds1.per15sMs, perScrape.per15sMs)} nvidia_gpu_exporter in its default per-scrape mode (${fmt(perScrape.per15sMs)} ms); per 30 s: ${fmt(ds1.per30sMs)} ms against ${fmt(perScrape.per30sMs)} ms.`,
  ];
  if (ds15) out.push(`At 15 s sampling ds-exporter spends ${fmt(ds15.per15sMs)} ms per 15 s interval, ${cmp(ds15.per15sMs, perScrape.per15sMs)} the per-scrape peer.`);
  if (coll1) out.push(`At the same 1 s freshness, nvidia_gpu_exporter with \`--collect.interval=1s\` spends ${fmt(coll1.per15sMs)} ms per 15 s interval: ds-exporter at 1 s sampling spends ${cmp(ds1.per15sMs, coll1.per15sMs)} it.`);
  return out;
}

function markdown(r: Awaited<ReturnType<typeof benchSmiVsNvidiaGpuExporter>>, quick: boolean): string {
  const head = '| configuration | scrape p50 ms | scrape p99 ms | scrapes | CPU ms per scrape | idle CPU % of a core | RSS MB (+ resident nvidia-smi) | CPU ms per 15 s interval | CPU ms per 30 s interval |';
  const rows = r.rows.map((x) => `| ${x.config} | ${fmt(x.p50Ms, 2)} | ${fmt(x.p99Ms, 2)} | ${x.scrapes} | ${fmt(x.cpuMsPerScrape, 2)} | ${fmt(x.idleCpuPercent, 3)} | ${fmt(x.rssMb)}${x.childRssMb > 0 ? ` (+${fmt(x.childRssMb)})` : ''} | ${fmt(x.per15sMs)} | ${fmt(x.per30sMs)} |`);
  const fakeHead = '| the fake nvidia-smi (compiled replay), per call | call | CPU ms per call | wall ms p50 (no delay) | bytes |';
  const fakeRows = r.fake.map((f) => `| ${f.who}'s sample | ${f.call} | ${fmt(f.cpuMs, 2)} | ${fmt(f.wallP50Ms, 2)} | ${f.bytes} |`);
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  return [
    '# nvidia-smi: ds-exporter vs nvidia_gpu_exporter',
    '',
    `Machine: ${machine()}; load average at the end ${load} (a shared machine: other work ran beside the benchmark)`,
    `Date: ${new Date().toISOString().slice(0, 10)}; command: \`npx tsx bench/smi-vs-nvidia-gpu-exporter.ts\`${quick ? ' --quick' : ''}`,
    '',
    r.setup,
    '',
    [head, '| --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n'),
    '',
    [fakeHead, '| --- | --- | --- | --- | --- |', ...fakeRows].join('\n'),
    '',
    ...[...reading(r.rows), ...r.notes, 'ds-exporter also runs `nvidia-smi -q` once a minute (the PCIe replay counter); neither fake answers `-q`, so that call fails at once here and its cost (one full query a minute) is not in the table.', 'The replay is a floor for nvidia-smi: a real nvidia-smi also initialises NVML and queries the driver on every run, which costs CPU that no fake can stand for; that cost lands on the per-scrape mode once per scrape, on `--collect.interval` once per interval, and on ds-exporter\'s loop once per sample (no start-up). Real GPUs are not measured here.'].map((s) => `- ${s}`),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const md = markdown(await benchSmiVsNvidiaGpuExporter({ quick }), quick);
  process.stdout.write(md);
  if (!quick) {
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/smi-vs-nvidia-gpu-exporter.md'), md);
  }
}

export { main as smiVsNvidiaGpuExporterMain };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
