import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRecorded, seriesLabels } from '../../src/generate/promql.js';
import '../../src/generate/rules/recording.js';
import { analyze } from './promql-lint.js';
import { DASHBOARD_FILES, dashboardQueries, loadDashboard, type PanelQuery, ruleEntries } from './queries.js';

// The fleet dashboards must not grow with the number of GPUs: every panel reads recorded series
// (cluster level, per host, per pod), and series recorded per GPU are read only through
// topk/bottomk. The few raw reads left are instant queries, each listed here with why it is cheap.

/** A raw `ds_` series a fleet dashboard panel may read, and what keeps the read small. */
interface AllowedRaw {
  readonly dashboard: string;
  readonly panel: string;
  readonly metric: string;
  /** A label the selector must narrow (=, =~ or != on it), when that is what bounds the read. */
  readonly narrowedBy?: string;
  /** The read must go through topk/bottomk. */
  readonly topk?: boolean;
  readonly why: string;
}

const ALLOWED_RAW: readonly AllowedRaw[] = [
  ...['fleet-overview', 'fleet-health'].map((dashboard) => ({
    dashboard, panel: 'Recording rules', metric: 'ds_exporter_build_info',
    why: 'the denominator of "are the recording rules loaded": it must be a raw series to tell whether the rules are evaluated at all; one series per exporter, read at one instant',
  })),
  {
    dashboard: 'fleet-overview', panel: 'Hottest GPUs', metric: 'ds_gpu_temperature_celsius', topk: true,
    why: 'topk(10) of a gauge at one instant: one sample per GPU, which a recorded per-GPU copy would read just as much',
  },
  {
    dashboard: 'fleet-health', panel: 'GPUs needing action', metric: 'ds_gpu_health', narrowedBy: 'verdict',
    why: 'selected by verdict=~"action_required|lost": the series of the GPUs needing action only, current rather than one rule evaluation late',
  },
  {
    dashboard: 'fleet-health', panel: 'GPUs needing action', metric: 'ds_gpu_allocation_info',
    why: 'the pod holding each GPU needing action: one sample per allocated GPU at one instant; a recorded copy of the join would read the same',
  },
  {
    dashboard: 'fleet-health', panel: 'Driver recovery actions', metric: 'ds_gpu_recovery_action', narrowedBy: 'action',
    why: 'selected by action!="none": only the GPUs whose driver asks for an action',
  },
  {
    dashboard: 'fleet-health', panel: 'Degraded GPUs', metric: 'ds_gpu_health', narrowedBy: 'verdict',
    why: 'selected by verdict="degraded": only the degraded GPUs',
  },
];

/** Recorded series with one series per GPU (they keep uuid): a list of GPUs, readable only through topk/bottomk. */
function perGpuRecorded(name: string): boolean {
  return isRecorded(name) && (seriesLabels(name) ?? []).includes('uuid');
}

/** What a fleet dashboard query reads that it should not: raw per-GPU reads not allowed, per-GPU recorded series unbounded. */
export function fleetReadProblems(q: PanelQuery, allowed: readonly AllowedRaw[] = ALLOWED_RAW, used = new Set<AllowedRaw>()): string[] {
  const problems: string[] = [];
  const where = `${q.dashboard} / ${q.panel} / ${q.refId}`;
  const a = analyze(q.expr);
  for (const e of a.errors) problems.push(`${where}: ${e}`);
  for (const s of a.selectors) {
    if (isRecorded(s.name) || s.name.includes(':')) {
      if (perGpuRecorded(s.name) && !s.boundedBy) problems.push(`${where}: ${s.name} has one series per GPU and is read without topk/bottomk`);
      continue;
    }
    if (!s.name.startsWith('ds_')) continue;
    const entry = allowed.find((x) => x.dashboard === q.dashboard && x.panel === q.panel && x.metric === s.name);
    if (!entry) {
      problems.push(`${where}: reads the raw series ${s.name}; read a recording rule instead`);
      continue;
    }
    used.add(entry);
    if (!q.instant) problems.push(`${where}: ${s.name} is allowed raw only in an instant query`);
    if (entry.topk && !s.boundedBy) problems.push(`${where}: ${s.name} is allowed raw only through topk/bottomk`);
    if (entry.narrowedBy) {
      const m = s.matchers.get(entry.narrowedBy);
      if (!m || m.value === '' || /^\.[*+]$/.test(m.value)) problems.push(`${where}: ${s.name} is allowed raw only when narrowed by ${entry.narrowedBy}`);
    }
  }
  return problems;
}

const FLEET = DASHBOARD_FILES.filter((f) => (loadDashboard(f).tags as string[]).includes('fleet'));

test('the fleet dashboards are the ones tagged fleet', () => {
  assert.deepEqual([...FLEET].sort(), ['fleet-health', 'fleet-overview']);
});

test('fleet dashboards read recorded series only (per-GPU ones through topk/bottomk), but for the listed instant tables', () => {
  const used = new Set<AllowedRaw>();
  const queries = dashboardQueries().filter((q) => FLEET.includes(q.dashboard));
  assert.ok(queries.length > 40, `only ${queries.length} fleet queries`);
  const problems = queries.flatMap((q) => fleetReadProblems(q, ALLOWED_RAW, used));
  assert.deepEqual(problems, [], problems.join('\n'));
  // An allowance nothing needs any more is removed, so the list stays the truth.
  assert.deepEqual(ALLOWED_RAW.filter((x) => !used.has(x)).map((x) => `${x.dashboard} / ${x.panel} / ${x.metric}`), []);
  for (const x of ALLOWED_RAW) assert.ok(x.why.length > 40, `${x.panel}: say why ${x.metric} may be read raw`);
  // Most of the fleet's panels read recorded series.
  const recorded = queries.filter((q) => analyze(q.expr).selectors.some((s) => isRecorded(s.name)));
  assert.ok(recorded.length >= queries.length - 8, `${recorded.length} of ${queries.length} fleet queries read recorded series`);
});

test('the fleet check fails on a raw read, a per-GPU record read unbounded, and a raw read outside its allowance (negative cases)', () => {
  const q = (panel: string, expr: string, instant = false): PanelQuery => ({
    dashboard: 'fleet-overview', panel, refId: 'A', expr, instant, panelType: 'timeseries', unit: 'short', description: '', datasourceUid: '${datasource}',
  });
  assert.match(fleetReadProblems(q('X', 'sum(rate(ds_gpu_busy_seconds_total{job=~"$job"}[$__rate_interval]))')).join(), /raw series ds_gpu_busy_seconds_total/);
  assert.match(fleetReadProblems(q('X', 'max(gpu:ds_gpu_busy:rate5m{job=~"$job"})')).join(), /one series per GPU/);
  assert.deepEqual(fleetReadProblems(q('X', 'topk(10, gpu:ds_gpu_busy:rate5m{job=~"$job"})')), []);
  assert.deepEqual(fleetReadProblems(q('X', 'sum(cluster:ds_gpu_up:sum{job=~"$job"}) + sum(up{job=~"$job"})')), []);
  // Allowed raw, but as a range query, or without its topk, or without its narrowing matcher.
  assert.match(fleetReadProblems(q('Hottest GPUs', 'topk(10, ds_gpu_temperature_celsius)')).join(), /instant/);
  assert.match(fleetReadProblems(q('Hottest GPUs', 'ds_gpu_temperature_celsius', true)).join(), /topk/);
  const health = { ...q('Degraded GPUs', 'ds_gpu_health{verdict=~".*"}', true), dashboard: 'fleet-health' };
  assert.match(fleetReadProblems(health).join(), /narrowed by verdict/);
  assert.deepEqual(fleetReadProblems({ ...health, expr: 'ds_gpu_health{verdict="degraded"}' }), []);
});

test('every recorded series a dashboard reads is recorded by the generated rules file', () => {
  const records = new Set(ruleEntries().filter((r) => r.record).map((r) => r.record!));
  const problems: string[] = [];
  for (const q of dashboardQueries()) {
    for (const s of analyze(q.expr).selectors) {
      if ((isRecorded(s.name) || s.name.includes(':')) && !records.has(s.name)) problems.push(`${q.dashboard} / ${q.panel}: ${s.name} is not recorded by alerts/ds-exporter-rules.yaml`);
    }
  }
  assert.deepEqual(problems, []);
  // And the fleet dashboards do read the new cluster-level error sums.
  const fleetReads = new Set(dashboardQueries().filter((q) => FLEET.includes(q.dashboard)).flatMap((q) => analyze(q.expr).selectors.map((s) => s.name)));
  for (const r of ['cluster:ds_gpu_nvlink_errors:rate5m', 'cluster:ds_gpu_xid_errors:gpus_increase5m', 'cluster:ds_gpu_busy_ratio_bucket:count_rate5m']) assert.ok(fleetReads.has(r), r);
});
