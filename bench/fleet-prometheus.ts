import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, type BuiltApp } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { silentLogger } from '../src/core/logger.js';
import { dashboardQueries, RULE_FILES, substitute } from '../test/generate/queries.js';
import { PROMETHEUS_3, PROMETHEUS_VERSIONS } from '../test/helpers/go-tools.js';
import { freePort } from '../test/helpers/procs.js';
import { machine, quantile, ROOT, sleep, table } from './lib.js';

/**
 * `npx tsx bench/fleet-prometheus.ts [--quick] [--prometheus=2]`: simulated fleets into one real
 * Prometheus 3 (built by scripts/setup-go-tools.sh) with the generated recording and alerting
 * rules loaded: 32 exporters x 8 GPUs and 4 exporters x 64 GPUs, each exporter probing every
 * other one. Reports the series Prometheus ingested, the rule groups' evaluation time and the
 * latency of every dashboard's queries (each run as Grafana runs it: a range query over the last
 * 15 minutes at a 15 s step, `$__rate_interval` = 60 s). Writes bench/results/fleet-prometheus.md.
 */

const SCRAPE = '15s';
const RATE_INTERVAL = '60s';

interface Scenario {
  readonly exporters: number;
  readonly gpus: number;
}

interface Result {
  readonly scenario: Scenario;
  readonly series: number;
  readonly samplesPerScrape: number;
  readonly ruleGroups: Array<{ group: string; lastSeconds: number; rules: number }>;
  readonly dashboards: Array<{ dashboard: string; queries: number; p50Ms: number; p99Ms: number; maxMs: number; failed: number }>;
}

async function startFleet(s: Scenario): Promise<{ targets: string[]; close(): Promise<void> }> {
  const apps: BuiltApp[] = [];
  const targets: string[] = [];
  for (let i = 0; i < s.exporters; i++) {
    const port = await freePort();
    // Every exporter probes every other one (a full mesh, as --peers.dns on a headless Service gives).
    const config = loadConfig(['--simulate', `--simulate.gpus=${s.gpus}`, `--simulate.peers=${s.exporters - 1}`, `--simulate.seed=${i + 1}`, '--sample.interval=5s', `--web.listen-address=127.0.0.1:${port}`], {});
    const built = await buildApp(config, { logger: silentLogger, processMetrics: true });
    await built.app.listen({ host: '127.0.0.1', port });
    built.start();
    apps.push(built);
    targets.push(`127.0.0.1:${port}`);
  }
  return { targets, close: async () => void (await Promise.all(apps.map((a) => a.close()))) };
}

async function startProm(binary: string, targets: string[]): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'dsx-bench-prom-'));
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      `  scrape_interval: ${SCRAPE}`,
      `  evaluation_interval: ${SCRAPE}`,
      'rule_files:',
      ...RULE_FILES.map((f) => `  - ${JSON.stringify(join(ROOT, 'alerts', f))}`),
      'scrape_configs:',
      '  - job_name: ds-exporter',
      '    static_configs:',
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 120; i++) {
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      // starting
    }
    await sleep(500);
  }
  return {
    url,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function promMetric(url: string, re: RegExp): Promise<Array<{ labels: string; value: number }>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => re.test(l))
    .map((l) => ({ labels: /\{(.*)\}/.exec(l)?.[1] ?? '', value: Number(l.slice(l.lastIndexOf(' ') + 1)) }));
}

async function query(url: string, q: { expr: string; instant?: boolean }, end: number): Promise<{ ms: number; ok: boolean }> {
  const expr = substitute(q.expr, RATE_INTERVAL);
  const path = q.instant ? `/api/v1/query?query=${encodeURIComponent(expr)}&time=${end}` : `/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${end - 900}&end=${end}&step=15`;
  const t0 = performance.now();
  const res = await fetch(`${url}${path}`);
  const body = (await res.json()) as { status: string };
  return { ms: performance.now() - t0, ok: body.status === 'success' };
}

async function runScenario(binary: string, s: Scenario, opts: { warmupMs: number; rounds: number }): Promise<Result> {
  process.stderr.write(`bench: ${s.exporters} exporters x ${s.gpus} GPUs: starting\n`);
  const fleet = await startFleet(s);
  const prom = await startProm(binary, fleet.targets);
  try {
    await sleep(opts.warmupMs);
    const series = (await promMetric(prom.url, /^prometheus_tsdb_head_series /))[0]?.value ?? NaN;
    const scraped = await (await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent('sum(scrape_samples_scraped{job="ds-exporter"})')}`)).json() as { data: { result: Array<{ value: [number, string] }> } };
    const durations = await promMetric(prom.url, /^prometheus_rule_group_last_duration_seconds\{/);
    const counts = await promMetric(prom.url, /^prometheus_rule_group_rules\{/);
    const ruleGroups = durations.map((d) => ({
      group: /rule_group="[^"]*;([^"]+)"/.exec(d.labels)?.[1] ?? d.labels,
      lastSeconds: d.value,
      rules: counts.find((c) => c.labels === d.labels)?.value ?? 0,
    }));
    const byDashboard = new Map<string, Array<{ expr: string; instant?: boolean }>>();
    for (const q of dashboardQueries()) byDashboard.set(q.dashboard, [...(byDashboard.get(q.dashboard) ?? []), q]);
    const dashboards: Result['dashboards'] = [];
    const end = Math.floor(Date.now() / 1000);
    for (const [dashboard, qs] of byDashboard) {
      const ms: number[] = [];
      let failed = 0;
      for (let r = 0; r < opts.rounds; r++) {
        // A dashboard load: its queries at once, as Grafana sends them.
        const done = await Promise.all(qs.map((q) => query(prom.url, q, end)));
        for (const d of done) {
          ms.push(d.ms);
          if (!d.ok) failed++;
        }
      }
      ms.sort((a, b) => a - b);
      dashboards.push({ dashboard, queries: qs.length, p50Ms: Math.round(quantile(ms, 0.5)), p99Ms: Math.round(quantile(ms, 0.99)), maxMs: Math.round(ms.at(-1)!), failed });
    }
    return { scenario: s, series, samplesPerScrape: Number(scraped.data.result[0]?.value[1] ?? NaN), ruleGroups, dashboards };
  } finally {
    await prom.stop();
    await fleet.close();
  }
}

async function main() {
  const quick = process.argv.includes('--quick');
  const version = process.argv.includes('--prometheus=2') ? PROMETHEUS_VERSIONS[0] : PROMETHEUS_3;
  if (version.skip) throw new Error(`Prometheus ${version.label} is not available: ${version.skip}`);
  const scenarios: Scenario[] = quick ? [{ exporters: 4, gpus: 8 }] : [{ exporters: 32, gpus: 8 }, { exporters: 4, gpus: 64 }];
  const opts = { warmupMs: quick ? 35_000 : 75_000, rounds: quick ? 3 : 10 };
  const results: Result[] = [];
  for (const s of scenarios) results.push(await runScenario(version.prometheus, s, opts));
  const md = [
    '# Fleet benchmark: simulated exporters into one Prometheus',
    '',
    `Machine: ${machine()}`,
    `Date: ${new Date().toISOString().slice(0, 10)}; Prometheus ${version.label}; command: \`npx tsx bench/fleet-prometheus.ts${quick ? ' --quick' : ''}\``,
    '',
    `Every exporter is a whole simulated host (\`--simulate\`: GPUs, one engine and model, allocator, training job, collectives) probing every other exporter; all of them run in the benchmark's own Node.js process (5 s sampling), on the same machine as Prometheus. Prometheus scrapes every ${SCRAPE} and evaluates \`alerts/ds-exporter-rules.yaml\` and \`alerts/ds-exporter-alerts.yaml\` every ${SCRAPE}; measured after ${opts.warmupMs / 1000} s. Dashboard queries: every panel query of each dashboard sent at once (a dashboard load), ${opts.rounds} loads, each query a range query over 15 minutes at a 15 s step (instant where the panel is), \`$__rate_interval\` = ${RATE_INTERVAL}, every variable on All.`,
    '',
    '## Ingested series and rule evaluation',
    '',
    table(
      ['exporters x GPUs', 'series in the head', 'samples per scrape round', ...[...new Set(results.flatMap((r) => r.ruleGroups.map((g) => g.group)))].map((g) => `${g} (ms)`)],
      results.map((r) => {
        const groups = [...new Set(results.flatMap((x) => x.ruleGroups.map((g) => g.group)))];
        return [`${r.scenario.exporters} x ${r.scenario.gpus}`, r.series, r.samplesPerScrape, ...groups.map((g) => {
          const x = r.ruleGroups.find((y) => y.group === g);
          return x ? (x.lastSeconds * 1000).toFixed(1) : '–';
        })];
      }),
    ),
    '',
    '## Dashboard query latency',
    '',
    table(
      ['exporters x GPUs', 'dashboard', 'queries', 'p50 ms', 'p99 ms', 'max ms', 'failed'],
      results.flatMap((r) => r.dashboards.map((d) => [`${r.scenario.exporters} x ${r.scenario.gpus}`, d.dashboard, d.queries, d.p50Ms, d.p99Ms, d.maxMs, d.failed])),
    ),
    '',
  ].join('\n');
  process.stdout.write(md);
  if (!quick) {
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/fleet-prometheus.md'), md);
  }
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
