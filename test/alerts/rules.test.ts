import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { defaultRulesConfig } from '../../src/generate/rules/config.js';
import { catalogEntry, isRecorded, PROMETHEUS_METRICS } from '../../src/generate/promql.js';
import '../../src/generate/rules/recording.js';
import { FLEET_REC } from '../../src/generate/rules/fleet.js';
import { analyze, COUNTER_FUNCTIONS } from '../generate/promql-lint.js';
import { dashboardQueries, ROOT, RULE_FILES, ruleEntries } from '../generate/queries.js';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { has } from '../helpers/procs.js';

const ruleFiles = RULE_FILES.map((f) => join(ROOT, 'alerts', f));
const testFiles = readdirSync(join(ROOT, 'test', 'alerts')).filter((f) => f.endsWith('.test.yaml')).map((f) => join(ROOT, 'test', 'alerts', f));

function findPint(): string | undefined {
  const local = join(ROOT, '.test-tools', 'bin', 'pint');
  if (existsSync(local)) return local;
  return has('pint', ['version']) ? 'pint' : undefined;
}
const pint = findPint();

for (const v of PROMETHEUS_VERSIONS) {
  test(`promtool check rules (Prometheus ${v.label}): the generated rule files are valid`, { skip: v.skip }, () => {
    const r = spawnSync(v.promtool, ['check', 'rules', ...ruleFiles], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /WARNING|FAILED/);
  });

  test(`promtool test rules (Prometheus ${v.label}): every alert fires when it should and stays silent when it should not`, { skip: v.skip }, () => {
    assert.ok(testFiles.length > 0);
    const r = spawnSync(v.promtool, ['test', 'rules', ...testFiles], { encoding: 'utf8', cwd: join(ROOT, 'test', 'alerts') });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
}

test('every alert has both a firing and a silent promtool case', () => {
  const firing = new Set<string>();
  const silent = new Set<string>();
  for (const f of testFiles) {
    const doc = parse(readFileSync(f, 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }> };
    for (const t of doc.tests) for (const c of t.alert_rule_test ?? []) (c.exp_alerts?.length ? firing : silent).add(c.alertname);
  }
  const alerts = ruleEntries().filter((r) => r.alert).map((r) => r.alert!);
  assert.ok(alerts.length >= 20);
  assert.deepEqual(alerts.filter((a) => !firing.has(a)), [], 'alerts without a firing case');
  assert.deepEqual(alerts.filter((a) => !silent.has(a)), [], 'alerts without a silent case');
});

test('every recording rule the fleet dashboards read has promtool cases with and without a cluster label', () => {
  const cases: Array<{ expr: string; labels: string[] }> = [];
  for (const f of testFiles) {
    const doc = parse(readFileSync(f, 'utf8')) as { tests: Array<{ promql_expr_test?: Array<{ expr: string; exp_samples?: Array<{ labels: string }> }> }> };
    for (const t of doc.tests) for (const c of t.promql_expr_test ?? []) cases.push({ expr: c.expr, labels: (c.exp_samples ?? []).map((x) => x.labels) });
  }
  const missing: string[] = [];
  const fleetReads = dashboardQueries().filter((q) => q.dashboard.startsWith('fleet-')).flatMap((q) => analyze(q.expr).selectors.map((x) => x.name)).filter(isRecorded);
  const wanted = new Set([...Object.values(FLEET_REC), ...fleetReads]);
  assert.ok(wanted.size > 35, `${wanted.size} recorded series`);
  for (const record of wanted) {
    const samples = cases.filter((c) => c.expr === record).flatMap((c) => c.labels);
    if (!samples.some((l) => l.includes('cluster="'))) missing.push(`${record}: no expected series with a cluster label`);
    if (!samples.some((l) => !l.includes('cluster="'))) missing.push(`${record}: no expected series without a cluster label`);
  }
  assert.deepEqual(missing, []);
});

test('alerts follow the monitoring-mixin conventions and link to an existing runbook section', () => {
  const runbooks = readFileSync(join(ROOT, 'docs', 'runbooks.md'), 'utf8');
  const headings = new Set([...runbooks.matchAll(/^## (\S+)$/gm)].map((m) => m[1]));
  const problems: string[] = [];
  const names = new Set<string>();
  for (const r of ruleEntries()) {
    if (r.record) {
      if (!/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/.test(r.record)) problems.push(`${r.record}: not level:metric:operations`);
      continue;
    }
    const a = r.alert!;
    const p = (m: string) => problems.push(`${a}: ${m}`);
    if (!/^Ds(Exporter|Gpu|Serving|Comm|Training)[A-Z][A-Za-z0-9]+$/.test(a)) p('name is not CamelCase with a Ds* prefix');
    if (names.has(a)) p('duplicate name');
    names.add(a);
    if (!['critical', 'warning', 'info'].includes(r.labels?.severity ?? '')) p(`severity ${r.labels?.severity}`);
    if (r.for !== undefined && !/^\d+[smhd]$/.test(r.for)) p(`for ${r.for}`);
    if (r.for === undefined && !/Xid|Ecc/.test(a)) p('only error-counter alerts may fire without a for duration');
    const ann = r.annotations ?? {};
    if (!ann.summary || ann.summary.includes('{{')) p('summary must be static');
    if (!ann.description?.includes('{{')) p('description must be templated');
    if (ann.runbook_url !== defaultRulesConfig.runbookUrlPattern.replace('%s', a.toLowerCase())) p(`runbook_url ${ann.runbook_url}`);
    if (!headings.has(a)) p('no section in docs/runbooks.md');
  }
  assert.deepEqual(problems, []);
});

test('rule expressions parse, read only catalog metrics through the configured selector, and take counters only through rate/increase', () => {
  const problems: string[] = [];
  const [label, op, value] = /^(\w+)(=~|!~|!=|=)"(.*)"$/.exec(defaultRulesConfig.selector[0])!.slice(1);
  for (const r of ruleEntries()) {
    const name = r.alert ?? r.record;
    const a = analyze(r.expr);
    for (const e of a.errors) problems.push(`${name}: ${e}`);
    for (const s of a.selectors) {
      const def = catalogEntry(s.name);
      if (!def && !PROMETHEUS_METRICS.has(s.name) && !isRecorded(s.name)) problems.push(`${name}: ${s.name} is not in the catalog`);
      const m = s.matchers.get(label);
      if (!m || m.op !== op || m.value !== value) problems.push(`${name}: ${s.name} lacks the configured selector`);
      const isCounter = def && (def.type === 'counter' || (def.type === 'histogram' && s.name !== def.name));
      if (isCounter && !COUNTER_FUNCTIONS.has(s.rangeFunction ?? '')) problems.push(`${name}: counter ${s.name} outside rate()/increase()`);
    }
  }
  assert.deepEqual(problems, []);
});

test('critical XIDs named in the alert are the configured ones', () => {
  const xid = ruleEntries().find((r) => r.alert === 'DsGpuXidCritical')!;
  for (const code of [48, 63, 64, 74, 79, 92, 94, 95]) assert.match(xid.expr, new RegExp(`[|"]${code}[|"]`));
});

test('pint lint (offline) finds no problems', { skip: pint ? false : 'pint is not installed (scripts/setup-test-tools.sh installs it into .test-tools/bin)' }, () => {
  const r = spawnSync(pint!, ['--offline', '--no-color', 'lint', '--min-severity=info', ...ruleFiles], { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  // pint exits 0 on warnings: any reported problem, down to information, fails the test.
  assert.doesNotMatch(r.stdout + r.stderr, /Problems found|level=ERROR/, r.stdout + r.stderr);
});
