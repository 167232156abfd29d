import assert from 'node:assert/strict';
import { test } from 'node:test';
import { catalogEntry, isRecorded, PROMETHEUS_METRICS, seriesLabels, seriesTargetLabels } from '../../src/generate/promql.js';
import '../../src/generate/rules/recording.js';
import { analyze, COUNTER_FUNCTIONS, RATE_INTERVAL_SENTINEL, RANGE_SENTINEL } from './promql-lint.js';
import { autoPanels } from './auto-panels.js';
import { DASHBOARD_FILES, dashboardQueries, loadDashboard, panelsOf, variableQueries } from './queries.js';

// The rules of grafana/dashboard-linter (v0.2.0), implemented with lezer-promql because the
// linter's own dependencies cannot be fetched from the Go module proxy; a few are stricter.

/** Grafana's standard unit ids that the generator may use (subset of grafana-data valueFormats). */
const STANDARD_UNITS = new Set([
  'none', 'short', 'percent', 'percentunit', 'bytes', 'decbytes', 'Bps', 'binBps', 'bps', 's', 'ms', 'µs', 'ns',
  'hertz', 'watt', 'joule', 'celsius', 'cps', 'ops', 'reqps', 'rps', 'dtdurations', 'bool',
]);
const FILTER_VARS = ['gpu', 'engine', 'model', 'peer', 'namespace', 'pod'];

test('dashboard settings: datasource variable, job/instance variables, read-only, UTC, tags, stable unique uids', () => {
  const problems: string[] = [];
  const uids = new Set<string>();
  for (const file of DASHBOARD_FILES) {
    const d = loadDashboard(file) as Record<string, any>;
    const p = (m: string) => problems.push(`${file}: ${m}`);
    if (!/^ds-exporter-[a-z-]+$/.test(d.uid) || d.uid.length > 40) p(`uid ${d.uid} is not a stable ds-exporter-* uid`);
    if (uids.has(d.uid)) p(`duplicate uid ${d.uid}`);
    uids.add(d.uid);
    if (d.editable !== false) p('editable must be false');
    if (d.timezone !== 'utc') p(`timezone ${d.timezone}, want utc`);
    if (!d.tags.includes('ds-exporter')) p('missing tag ds-exporter');
    if (!d.title || !d.description) p('missing title or description');
    const vars: Array<Record<string, any>> = d.templating.list;
    const ds = vars.find((v) => v.type === 'datasource');
    if (!ds || ds.name !== 'datasource' || ds.query !== 'prometheus' || ds.label !== 'Data source') p('needs a prometheus datasource variable named datasource, labeled "Data source"');
    for (const name of ['cluster', 'job', 'instance']) if (!vars.some((v) => v.name === name)) p(`missing the ${name} variable`);
    for (const v of vars.filter((x) => x.type === 'query')) {
      const vp = (m: string) => p(`variable ${v.name}: ${m}`);
      if (v.datasource?.uid !== '${datasource}') vp('must use the datasource variable');
      if (v.multi !== true || v.includeAll !== true) vp('must be multi-select with All');
      // All clusters must match series without the label too (a single Prometheus has none).
      const wantAll = v.name === 'cluster' ? '.*' : '.+';
      if (v.allValue !== wantAll) vp(`allValue ${v.allValue}, want ${wantAll}`);
      if (v.refresh !== 2) vp('must refresh on time range change');
      if (v.label !== v.name.charAt(0).toUpperCase() + v.name.slice(1) && v.label !== v.name.toUpperCase()) vp(`label ${v.label} should be the title-cased name`);
    }
    const ids = new Set<number>();
    const walk = (ps: Array<Record<string, any>>) => {
      for (const x of ps) {
        if (typeof x.id !== 'number' || ids.has(x.id)) p(`panel "${x.title}" has no unique id`);
        ids.add(x.id);
        walk(x.panels ?? []);
      }
    };
    walk(d.panels);
  }
  assert.deepEqual(problems, []);
});

test('every panel has a title, a description, a standard unit, targets and the datasource variable', () => {
  const problems: string[] = [];
  for (const file of DASHBOARD_FILES) {
    for (const p of panelsOf(loadDashboard(file))) {
      const where = `${file} / ${p.title ?? '(untitled)'}`;
      if (!p.title) problems.push(`${where}: no title`);
      if (!p.description || p.description.length < 20) problems.push(`${where}: no description`);
      const unit = p.fieldConfig?.defaults?.unit;
      if (!unit || !STANDARD_UNITS.has(unit)) problems.push(`${where}: unit ${unit} is not a standard unit`);
      if (!p.targets?.length) problems.push(`${where}: no targets`);
      if (p.datasource?.uid !== '${datasource}') problems.push(`${where}: panel datasource is not $datasource`);
      for (const t of p.targets ?? []) if (t.datasource?.uid !== '${datasource}') problems.push(`${where}: target datasource is not $datasource`);
    }
  }
  assert.deepEqual(problems, []);
});

test('every query parses, is filtered by the variables, uses $__rate_interval, and takes counters only through rate/increase', () => {
  const problems: string[] = [];
  for (const q of dashboardQueries()) {
    const where = `${q.dashboard} / ${q.panel} / ${q.refId}`;
    const vars = new Set((loadDashboard(q.dashboard).templating.list as Array<{ name: string }>).map((v) => v.name));
    const a = analyze(q.expr);
    for (const e of a.errors) problems.push(`${where}: ${e} in ${q.expr}`);
    if (a.selectors.length === 0) problems.push(`${where}: no selector in ${q.expr}`);
    for (const s of a.selectors) {
      const sp = (m: string) => problems.push(`${where}: ${s.name}: ${m}`);
      // A cluster-level recorded series has no instance label, so it is not filtered by it.
      for (const v of ['cluster', 'job', 'instance'].filter((l) => l === 'cluster' || seriesTargetLabels(s.name).includes(l))) {
        const m = s.matchers.get(v);
        if (!m || m.op !== '=~' || m.value !== `$${v}`) sp(`missing ${v}=~"$${v}"`);
      }
      const labels = seriesLabels(s.name) ?? [];
      for (const v of FILTER_VARS) {
        if (vars.has(v) && labels.includes(v) && s.matchers.get(v)?.value !== `$${v}`) sp(`carries ${v} but is not filtered by $${v}`);
      }
      // An instant query (a table) may look back over the dashboard's whole range.
      if (s.range !== undefined && s.range !== RATE_INTERVAL_SENTINEL && !(q.instant && s.range === RANGE_SENTINEL)) sp(`range [${s.range}] instead of [$__rate_interval]`);
      const def = catalogEntry(s.name);
      const isCounter = def && (def.type === 'counter' || (def.type === 'histogram' && s.name !== def.name));
      if (isCounter && !COUNTER_FUNCTIONS.has(s.rangeFunction ?? '')) sp('counter used outside rate()/increase()');
      if (!def && !isRecorded(s.name) && !PROMETHEUS_METRICS.has(s.name)) sp('not in the catalog, the recording rules or Prometheus\' own series');
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('variable queries are label_values() over catalog metrics, filtered by the variables before them', () => {
  const problems: string[] = [];
  for (const v of variableQueries()) {
    const m = /^label_values\((.+),\s*([a-z_]+)\)$/.exec(v.query);
    if (!m) {
      problems.push(`${v.dashboard} $${v.name}: ${v.query}`);
      continue;
    }
    const a = analyze(m[1]);
    if (a.errors.length || a.selectors.length !== 1 || !catalogEntry(a.selectors[0].name)) problems.push(`${v.dashboard} $${v.name}: bad selector ${m[1]}`);
    if (v.name !== 'cluster' && a.selectors[0]?.matchers.get('cluster')?.value !== '$cluster') problems.push(`${v.dashboard} $${v.name}: not filtered by $cluster`);
    if (v.name !== 'job' && v.name !== 'cluster' && a.selectors[0]?.matchers.get('job')?.value !== '$job') problems.push(`${v.dashboard} $${v.name}: not filtered by $job`);
  }
  assert.deepEqual(problems, []);
});

test('utilization panels use the lossless counter and explain the point gauge', () => {
  const problems: string[] = [];
  for (const q of dashboardQueries()) {
    if (q.expr.includes('ds_gpu_utilization_ratio') && !/now/i.test(q.panel)) problems.push(`${q.dashboard} / ${q.panel}: the point gauge is for "now" panels only`);
    if (q.expr.includes('ds_gpu_busy_seconds_total') && !q.description?.includes('ds_gpu_utilization_method')) problems.push(`${q.dashboard} / ${q.panel}: description must explain the counter vs the gauge`);
  }
  assert.deepEqual(problems, []);
});

test('the linter catches what it claims to (negative cases)', () => {
  const counterOutside = analyze('sum(ds_gpu_busy_seconds_total{job=~"$job",instance=~"$instance"})').selectors[0];
  assert.equal(COUNTER_FUNCTIONS.has(counterOutside.rangeFunction ?? ''), false);
  const fixedRange = analyze('rate(ds_gpu_busy_seconds_total{job=~"$job",instance=~"$instance"}[5m])').selectors[0];
  assert.equal(fixedRange.range, '5m');
  assert.ok(analyze('sum(rate(ds_gpu_up[5m])').errors.length > 0);
  assert.equal(analyze('ds_gpu_up{instance=~"$instance"}').selectors[0].matchers.has('job'), false);
  assert.equal(catalogEntry('ds_gpu_no_such_metric'), undefined);
});

test('generated panels for catalog additions pass the same rules, for every metric type', () => {
  const problems: string[] = [];
  const types = new Set<string>();
  for (const { def, panel } of autoPanels()) {
    types.add(def.type);
    const unit = panel.fieldConfig?.defaults?.unit;
    if (!panel.title || !panel.description || !unit || !STANDARD_UNITS.has(unit)) problems.push(`${def.name}: title/description/unit`);
    for (const t of (panel.targets ?? []) as unknown as Array<{ expr: string }>) {
      const a = analyze(t.expr);
      if (a.errors.length) problems.push(`${def.name}: ${a.errors.join(', ')}`);
      for (const s of a.selectors) {
        if (s.matchers.get('job')?.value !== '$job' || s.matchers.get('instance')?.value !== '$instance') problems.push(`${def.name}: not filtered by job/instance`);
        if (def.labels.includes('gpu') && s.matchers.get('gpu')?.value !== '$gpu') problems.push(`${def.name}: not filtered by gpu`);
        if (s.range !== undefined && s.range !== RATE_INTERVAL_SENTINEL) problems.push(`${def.name}: range ${s.range}`);
        const counter = def.type === 'counter' || def.type === 'histogram';
        if (counter && !COUNTER_FUNCTIONS.has(s.rangeFunction ?? '')) problems.push(`${def.name}: counter outside rate()`);
      }
    }
  }
  assert.deepEqual([...types].sort(), ['counter', 'gauge', 'histogram', 'info']);
  assert.deepEqual(problems, []);
});
