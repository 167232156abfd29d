import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { autoPanels } from '../generate/auto-panels.js';
import { dashboardQueries, ROOT, RULE_FILES, ruleEntries, substitute, variableQueries } from '../generate/queries.js';

// A real Prometheus scraping two simulated exporters, with the generated recording and
// alerting rules loaded; every dashboard query must run and return data.

const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;
const skip = hasPrometheus ? false : 'prometheus is not installed (scripts/setup-test-tools.sh installs it)';
const WARMUP_MS = 25_000;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const children: ChildProcess[] = [];
let dir = '';
let promUrl = '';
const logs: string[] = [];

function start(cmd: string, args: string[], name: string): ChildProcess {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (b: Buffer) => {
    logs.push(`[${name}] ${b.toString().trimEnd()}`);
    if (logs.length > 200) logs.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.push(child);
  return child;
}

async function getJson(path: string): Promise<{ status: string; data: any; error?: string }> {
  const res = await fetch(`${promUrl}${path}`);
  return (await res.json()) as { status: string; data: any; error?: string };
}

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await ok()) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}\n${logs.slice(-30).join('\n')}`);
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'ds-dash-live-'));
  const exporterPorts = [await freePort(), await freePort()];
  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  exporterPorts.forEach((port, i) =>
    start(process.execPath, ['--import', 'tsx', 'src/main.ts', '--simulate', `--simulate.seed=${i + 1}`, '--simulate.gpus=4', '--simulate.peers=3', `--web.listen-address=127.0.0.1:${port}`], `exporter-${i}`),
  );
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    ...RULE_FILES.map((f) => `  - ${JSON.stringify(join(ROOT, 'alerts', f))}`),
    'scrape_configs:',
    '  - job_name: ds-exporter',
    '    static_configs:',
    `      - targets: [${exporterPorts.map((p) => `"127.0.0.1:${p}"`).join(', ')}]`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  start('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], 'prometheus');
  await waitFor('prometheus ready', async () => (await fetch(`${promUrl}/-/ready`)).ok, 30_000);
  await waitFor('both exporters scraped', async () => {
    const r = await getJson('/api/v1/query?query=' + encodeURIComponent('sum(up{job="ds-exporter"})'));
    return Number(r.data.result[0]?.value[1]) === 2;
  }, 45_000);
  // Enough samples for rate() over the substituted interval and for the recording rules.
  await new Promise((r) => setTimeout(r, WARMUP_MS));
});

after(() => {
  for (const c of children) c.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('every dashboard panel query runs against live data and returns series', { skip, timeout: 180_000 }, async () => {
  const queries = dashboardQueries();
  assert.ok(queries.length > 50, `only ${queries.length} queries found`);
  const failures: string[] = [];
  const end = Date.now() / 1000;
  for (const q of queries) {
    const expr = substitute(q.expr);
    const r = q.instant
      ? await getJson(`/api/v1/query?query=${encodeURIComponent(expr)}&time=${end}`)
      : await getJson(`/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${end - 20}&end=${end}&step=1`);
    const where = `${q.dashboard} / ${q.panel} / ${q.refId}: ${expr}`;
    if (r.status !== 'success') failures.push(`ERROR ${where}\n    ${r.error}`);
    else if (!Array.isArray(r.data.result) || r.data.result.length === 0) failures.push(`NO DATA ${where}`);
  }
  assert.deepEqual(failures, [], `${failures.length} of ${queries.length} panel queries failed:\n${failures.join('\n')}`);
});

test('every template variable query finds values', { skip, timeout: 60_000 }, async () => {
  const failures: string[] = [];
  for (const v of variableQueries()) {
    const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(v.query);
    if (!m) {
      failures.push(`${v.dashboard} $${v.name}: not label_values(selector, label): ${v.query}`);
      continue;
    }
    const r = await getJson(`/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(substitute(m[1]))}`);
    if (r.status !== 'success' || r.data.length === 0) failures.push(`${v.dashboard} $${v.name}: no values for ${v.query} ${r.error ?? ''}`);
  }
  assert.deepEqual(failures, []);
});

test('every recording and alerting rule is loaded and evaluates without error', { skip, timeout: 60_000 }, async () => {
  const entries = ruleEntries();
  const r = await getJson('/api/v1/rules');
  const loaded = r.data.groups.flatMap((g: { rules: Array<{ name: string; health: string; lastError?: string }> }) => g.rules);
  assert.equal(loaded.length, entries.length, 'Prometheus loaded a different number of rules than the files hold');
  const bad = loaded.filter((x: { health: string }) => x.health !== 'ok').map((x: { name: string; health: string; lastError?: string }) => `${x.name}: ${x.health} ${x.lastError ?? ''}`);
  assert.deepEqual(bad, []);
  const failures: string[] = [];
  for (const e of entries) {
    const q = await getJson(`/api/v1/query?query=${encodeURIComponent(e.expr)}`);
    if (q.status !== 'success') failures.push(`${e.alert ?? e.record}: ${q.error}`);
    // Recording rules feed the fleet dashboard: each must produce series from the simulated fleet.
    else if (e.record && q.data.result.length === 0) failures.push(`${e.record}: no data`);
  }
  assert.deepEqual(failures, []);
});

test('the generated panel of every catalog family (what a catalog addition gets) returns live data', { skip, timeout: 60_000 }, async () => {
  const failures: string[] = [];
  for (const { def, panel } of autoPanels()) {
    for (const t of (panel.targets ?? []) as unknown as Array<{ expr: string }>) {
      const expr = substitute(t.expr);
      const r = await getJson(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      if (r.status !== 'success') failures.push(`ERROR ${def.name}: ${expr}: ${r.error}`);
      else if (r.data.result.length === 0) failures.push(`NO DATA ${def.name}: ${expr}`);
    }
  }
  assert.deepEqual(failures, []);
});
