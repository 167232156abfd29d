import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { cpuSeconds, machine, quantile, ROOT, rssBytes, sleep, startBuiltExporter, table } from './lib.js';
import { freePortSync } from './port.js';

/**
 * Soak: the built exporter on a simulated host under steady scrape and push load for a
 * long time, sampled every few seconds, to show that memory, event-loop delay, CPU and
 * scrape latency stay flat. `npm run bench -- --soak [--minutes=N]`; writes
 * bench/results/soak.md.
 */
export interface SoakOptions {
  readonly minutes: number;
  readonly gpus: number;
  readonly scrapesPerSecond: number;
  readonly reporters: number;
  /** Seconds between probes of RSS, CPU and the exporter's own metrics. */
  readonly probeSeconds: number;
  readonly out?: string;
}

interface Probe {
  /** Seconds since the load started. */
  t: number;
  rssMb: number;
  heapUsedMb: number;
  lagP99Ms: number;
  lagMaxMs: number;
  cpuS: number;
  series: number;
  /** Series identities (name and labels) of this probe's exposition. */
  ids: Set<string>;
}

interface MinuteRow {
  minute: number;
  rssMb: number;
  heapUsedMb: number;
  cpuPercent: number;
  lagP99Ms: number;
  lagMaxMs: number;
  scrapes: number;
  scrapeP50Ms: number;
  scrapeP99Ms: number;
  scrapeMaxMs: number;
  scrapeErrors: number;
  pushes: number;
  pushErrors: number;
  series: number;
}

/** Least-squares line through (x, y) with the standard error of the slope. */
export function linearFit(xs: readonly number[], ys: readonly number[]): { slope: number; intercept: number; slopeStdErr: number; residualStd: number } {
  const n = xs.length;
  if (n < 3) return { slope: NaN, intercept: NaN, slopeStdErr: NaN, residualStd: NaN };
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i] - mx) ** 2;
    sxy += (xs[i] - mx) * (ys[i] - my);
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ys[i] - (intercept + slope * xs[i])) ** 2;
  const residualStd = Math.sqrt(sse / (n - 2));
  return { slope, intercept, slopeStdErr: residualStd / Math.sqrt(sxx), residualStd };
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** A valid push body (docs/push-api.md) for reporter `rank` at its `seq`-th push. */
function pushBody(rank: number, seq: number, gpus: number): string {
  const devices = Array.from({ length: 2 }, (_, k) => {
    const index = (rank * 2 + k) % gpus;
    const reserved = 64 * 2 ** 30 + ((seq * 7919 + rank) % 1024) * 2 ** 20;
    return {
      index,
      uuid: `GPU-50a50000-0000-0000-0000-${String(index).padStart(12, '0')}`,
      reserved_bytes: reserved,
      allocated_bytes: reserved - ((seq * 104729 + rank * 13) % 4096) * 2 ** 20,
      inactive_split_bytes: ((seq + rank) % 64) * 2 ** 20,
      largest_free_block_bytes: 512 * 2 ** 20,
      num_alloc_retries: Math.floor(seq / 100),
      num_ooms: 0,
    };
  });
  const durations = Array.from({ length: 8 }, (_, k) => 0.002 + ((seq * 31 + k * 17 + rank) % 100) / 20_000);
  return JSON.stringify({
    version: 1,
    reporter: { job: 'soak-pretrain', rank, pid: 20_000 + rank, host: 'soak-host' },
    timestamp: Date.now() / 1000,
    devices,
    training: { samples: seq * 256, steps: seq },
    collectives: [
      { op: 'all_reduce', durations_seconds: durations, bytes: 805_306_368 * durations.length },
      { op: 'all_gather', durations_seconds: durations.slice(0, 2) },
    ],
  });
}

/** The commit measured, with a mark when the worktree has changes. */
function revision(): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT }).toString().trim() !== '';
    return dirty ? `${rev} with local changes` : rev;
  } catch {
    return 'unknown';
  }
}

export async function soak(opts: SoakOptions): Promise<string> {
  const rev = revision();
  process.stderr.write('soak: building dist/...\n');
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  const port = freePortSync();
  const args = ['--simulate', `--simulate.gpus=${opts.gpus}`, '--sample.interval=1s'];
  const ex = await startBuiltExporter(port, args);
  const pid = ex.child.pid!;
  let stopping = false;
  let exitedEarly: string | undefined;
  ex.child.once('exit', (code, signal) => {
    if (!stopping) exitedEarly = `exporter exited during the soak (code ${code}, signal ${signal})`;
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const u = new URL(ex.url);
  const request = (method: 'GET' | 'POST', path: string, body?: string) =>
    new Promise<{ status: number; ms: number; text: string }>((res) => {
      const start = process.hrtime.bigint();
      const req = http.request(
        { host: u.hostname, port: u.port, path, method, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => res({ status: r.statusCode ?? 0, ms: Number(process.hrtime.bigint() - start) / 1e6, text: Buffer.concat(chunks).toString() }));
          r.on('error', () => res({ status: 0, ms: Number(process.hrtime.bigint() - start) / 1e6, text: '' }));
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => res({ status: 0, ms: Number(process.hrtime.bigint() - start) / 1e6, text: '' }));
      if (body) req.write(body);
      req.end();
    });

  // Per-minute accumulators.
  let latencies: number[] = [];
  let scrapeErrors = 0;
  let pushes = 0;
  let pushErrors = 0;
  const pushCodes = new Map<number, number>();
  const allLatencies: number[] = [];
  let totalScrapes = 0;
  let totalScrapeErrors = 0;
  let totalPushes = 0;
  let totalPushErrors = 0;

  const probes: Probe[] = [];
  const rows: MinuteRow[] = [];
  const durationMs = opts.minutes * 60_000;
  const t0 = Date.now();
  const end = t0 + durationMs;

  const probe = async (): Promise<Probe> => {
    const r = await request('GET', '/metrics');
    const text = r.text;
    return {
      t: (Date.now() - t0) / 1000,
      rssMb: rssBytes(pid) / 2 ** 20,
      heapUsedMb: metricValue(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
      lagP99Ms: metricValue(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
      lagMaxMs: metricValue(text, 'nodejs_eventloop_lag_max_seconds') * 1000,
      cpuS: cpuSeconds(pid),
      series: text.split('\n').filter((l) => l && !l.startsWith('#')).length,
      ids: new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.slice(0, l.lastIndexOf(' ')))),
    };
  };

  // Open-loop scrapes: one every 1000/rate ms whatever the answers do, so a slow exporter shows as latency, not as fewer scrapes.
  const scrapeEvery = 1000 / opts.scrapesPerSecond;
  const inflight = new Set<Promise<void>>();
  const scraper = (async () => {
    let next = Date.now();
    while (!stopping && Date.now() < end) {
      const p = request('GET', '/metrics').then((r) => {
        if (r.status === 200) {
          latencies.push(r.ms);
          allLatencies.push(r.ms);
        } else scrapeErrors++;
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      next += scrapeEvery;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else if (wait < -1000) next = Date.now(); // the load generator itself fell behind: do not burst to catch up
    }
  })();

  // Reporters push every second, spread over the second.
  const reporters = Array.from({ length: opts.reporters }, async (_, rank) => {
    await sleep((1000 * rank) / opts.reporters);
    let seq = 0;
    while (!stopping && Date.now() < end) {
      const started = Date.now();
      const r = await request('POST', '/api/v1/push', pushBody(rank, ++seq, opts.gpus));
      pushes++;
      pushCodes.set(r.status, (pushCodes.get(r.status) ?? 0) + 1);
      if (r.status !== 202) pushErrors++;
      await sleep(Math.max(0, 1000 - (Date.now() - started)));
    }
  });

  // Growth is judged after a warm-up (JIT, caches, the first push of every reporter), so start-up growth is not read as a leak.
  const warmupS = Math.min(300, (opts.minutes * 60) / 6);
  const first = await probe();
  probes.push(first);
  /** The first probe after the warm-up: the series of the steady state, compared with the last probe's. */
  let base: Probe | undefined;
  let minuteStart = first;
  let minute = 0;
  while (Date.now() < end && !exitedEarly) {
    await sleep(Math.min(opts.probeSeconds * 1000, end - Date.now()));
    if (exitedEarly) break;
    const p = await probe();
    // Only the first and the latest probe keep their series identities (thousands of strings each).
    const prevProbe = probes[probes.length - 1];
    if (prevProbe !== base) prevProbe.ids.clear();
    if (!base && p.t >= warmupS) base = p;
    probes.push(p);
    if (p.t >= (minute + 1) * 60 - opts.probeSeconds / 2 || Date.now() >= end) {
      minute++;
      const sorted = latencies.sort((a, b) => a - b);
      const inMinute = probes.filter((q) => q.t > minuteStart.t && q.t <= p.t);
      const row: MinuteRow = {
        minute,
        rssMb: p.rssMb,
        heapUsedMb: p.heapUsedMb,
        cpuPercent: (100 * (p.cpuS - minuteStart.cpuS)) / (p.t - minuteStart.t),
        lagP99Ms: Math.max(...inMinute.map((q) => q.lagP99Ms)),
        lagMaxMs: Math.max(...inMinute.map((q) => q.lagMaxMs)),
        scrapes: sorted.length,
        scrapeP50Ms: quantile(sorted, 0.5),
        scrapeP99Ms: quantile(sorted, 0.99),
        scrapeMaxMs: sorted[sorted.length - 1] ?? NaN,
        scrapeErrors,
        pushes,
        pushErrors,
        series: p.series,
      };
      rows.push(row);
      totalScrapes += sorted.length;
      totalScrapeErrors += scrapeErrors;
      totalPushes += pushes;
      totalPushErrors += pushErrors;
      process.stderr.write(`soak: minute ${minute}/${opts.minutes}: RSS ${row.rssMb.toFixed(1)} MB, heap ${row.heapUsedMb.toFixed(1)} MB, CPU ${row.cpuPercent.toFixed(1)} %, lag p99 ${row.lagP99Ms.toFixed(1)} ms, scrape p99 ${row.scrapeP99Ms.toFixed(1)} ms, errors ${scrapeErrors}/${pushErrors}\n`);
      latencies = [];
      scrapeErrors = 0;
      pushes = 0;
      pushErrors = 0;
      minuteStart = p;
    }
  }
  stopping = true;
  await scraper;
  await Promise.all(reporters);
  await Promise.all(inflight);
  agent.destroy();
  await ex.stop();
  if (exitedEarly) throw new Error(exitedEarly);

  // Verdict: fit over the probes after the warm-up.
  const steady = probes.filter((p) => p.t >= warmupS);
  const verdictOf = (name: string, ys: number[], xs: number[]) => {
    const fit = linearFit(xs, ys);
    const perHour = fit.slope * 3600;
    const lo = (fit.slope - 2 * fit.slopeStdErr) * 3600;
    const hi = (fit.slope + 2 * fit.slopeStdErr) * 3600;
    const spanH = (xs[xs.length - 1] - xs[0]) / 3600;
    const grownOverRun = fit.slope * (xs[xs.length - 1] - xs[0]);
    // Growth beyond noise: the slope is positive with 95 % confidence AND the fitted growth over the run exceeds twice the scatter around the line.
    const growing = lo > 0 && grownOverRun > 2 * fit.residualStd;
    // A robust cross-check that a bump in the middle (a busy neighbour) cannot tilt: medians of the first and last thirds.
    const third = Math.max(1, Math.floor(ys.length / 3));
    const median = (v: number[]) => quantile([...v].sort((a, b) => a - b), 0.5);
    return { name, perHour, lo, hi, spanH, grownOverRun, residualStd: fit.residualStd, growing, mean: ys.reduce((a, b) => a + b, 0) / ys.length, firstThird: median(ys.slice(0, third)), lastThird: median(ys.slice(-third)) };
  };
  const xs = steady.map((p) => p.t);
  const verdicts = [verdictOf('RSS', steady.map((p) => p.rssMb), xs), verdictOf('V8 heap used', steady.map((p) => p.heapUsedMb), xs)];
  const growth = verdicts.some((v) => v.growing);
  const codes = [...pushCodes].map(([c, n]) => `${c}: ${n}`).join(', ');
  const overall = allLatencies.sort((a, b) => a - b);
  const lastProbe = probes[probes.length - 1];
  const baseIds = (base ?? first).ids;
  const added = [...lastProbe.ids].filter((id) => !baseIds.has(id));
  const removed = [...baseIds].filter((id) => !lastProbe.ids.has(id));
  const listIds = (ids: string[]) => (ids.length === 0 ? 'none' : ids.slice(0, 20).map((id) => `\`${id}\``).join(', ') + (ids.length > 20 ? `, ... (${ids.length} in all)` : ''));

  const md = [
    '# Soak benchmark',
    '',
    `Machine: ${machine()}`,
    `Date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; commit ${rev}; command: \`npm run bench -- --soak --minutes=${opts.minutes}\``,
    '',
    `The built exporter (\`node --no-memory-reducer dist/main.js ${args.join(' ')}\`) for ${opts.minutes} minutes under ${opts.scrapesPerSecond} scrapes/s of \`/metrics\` (open loop, keep-alive) and ${opts.reporters} reporters each pushing a valid body (2 devices, training counters, two collective ops with 8 + 2 durations) every second. The load generator runs on the same machine. Every ${opts.probeSeconds} s: RSS and CPU from \`/proc\`, V8 heap used and event-loop delay (\`nodejs_eventloop_lag_p99_seconds\`, \`nodejs_eventloop_lag_max_seconds\`) from the exporter's own \`/metrics\`. A row is one minute: RSS and heap at its end, CPU as % of one core over the minute, the highest lag reading of the minute, the scrape latencies of the minute.`,
    '',
    table(
      ['min', 'RSS MB', 'heap used MB', 'CPU %', 'lag p99 ms', 'lag max ms', 'scrapes', 'scrape p50 ms', 'scrape p99 ms', 'scrape max ms', 'scrape errors', 'pushes', 'push errors', 'series'],
      rows.map((r) => [r.minute, r.rssMb, r.heapUsedMb, r.cpuPercent, r.lagP99Ms, r.lagMaxMs, r.scrapes, r.scrapeP50Ms, r.scrapeP99Ms, r.scrapeMaxMs, r.scrapeErrors, r.pushes, r.pushErrors, r.series]),
    ),
    '',
    `Totals: ${totalScrapes} scrapes answered 200 (p50 ${quantile(overall, 0.5).toFixed(2)} ms, p99 ${quantile(overall, 0.99).toFixed(2)} ms, max ${(overall[overall.length - 1] ?? NaN).toFixed(1)} ms), ${totalScrapeErrors} scrape errors; ${totalPushes} pushes (${codes}), ${totalPushErrors} not accepted.`,
    '',
    `Series added between the first probe after the warm-up (${Math.round((base ?? first).t)} s) and the last: ${listIds(added)}. Removed: ${listIds(removed)}.`,
    '',
    '## Verdict',
    '',
    `Linear least-squares fit over the probes after a warm-up of ${Math.round(warmupS)} s (${steady.length} probes, ${(verdicts[0].spanH * 60).toFixed(0)} minutes). Growth counts as beyond noise when the slope is above zero with 95 % confidence (slope - 2 standard errors > 0) and the fitted growth over the window is more than twice the scatter (residual standard deviation) around the line.`,
    '',
    table(
      ['', 'mean MB', 'slope MB/hour', '95 % interval MB/hour', 'fitted growth over the window MB', 'scatter MB', 'median first third MB', 'median last third MB', 'beyond noise'],
      verdicts.map((v) => [v.name, v.mean, v.perHour, `${v.lo.toFixed(2)} .. ${v.hi.toFixed(2)}`, v.grownOverRun, v.residualStd, v.firstThird, v.lastThird, v.growing ? 'yes' : 'no']),
    ),
    '',
    growth
      ? `**Growth beyond noise.** ${verdicts.filter((v) => v.growing).map((v) => `${v.name} grows ${v.perHour.toFixed(2)} MB/hour`).join('; ')}.`
      : `**No growth beyond noise**: memory does not grow under this load (RSS slope ${verdicts[0].perHour.toFixed(2)} MB/hour, V8 heap slope ${verdicts[1].perHour.toFixed(2)} MB/hour; neither is a growth that stands out of the scatter).`,
    '',
  ].join('\n');
  if (opts.out) {
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(opts.out, md);
  }
  return md;
}

function flagValue(argv: readonly string[], name: string): string | undefined {
  const hit = argv.find((a) => a.startsWith(`--${name}=`));
  return hit?.slice(name.length + 3);
}

/** Options from the command line: --minutes=N (default 30), --gpus, --scrape-rate, --reporters, --probe-seconds, --out. */
export function soakOptions(argv: readonly string[]): SoakOptions {
  const num = (name: string, def: number) => {
    const v = flagValue(argv, name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got "${v}"`);
    return n;
  };
  const minutes = num('minutes', 30);
  return {
    minutes,
    gpus: num('gpus', 64),
    scrapesPerSecond: num('scrape-rate', 50),
    reporters: num('reporters', 20),
    probeSeconds: num('probe-seconds', minutes >= 5 ? 10 : 5),
    out: flagValue(argv, 'out') ?? join(ROOT, 'bench/results/soak.md'),
  };
}
