import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRecorded } from '../../src/generate/promql.js';
import '../../src/generate/rules/recording.js';
import { analyze } from './promql-lint.js';
import { DASHBOARD_FILES, dashboardQueries, loadDashboard, ruleEntries } from './queries.js';
import { needHelm, render } from '../helm/chart.js';

// A dashboard that reads recorded series says so on itself: its description names the rule
// file, and a "Recording rules" panel shows whether they are loaded (empty, with what to load,
// when they are not). The chart's PrometheusRule ships the rules.

test('every dashboard that reads recorded series says so on itself', () => {
  const problems: string[] = [];
  for (const file of DASHBOARD_FILES) {
    const queries = dashboardQueries().filter((q) => q.dashboard === file);
    const recorded = new Set(queries.flatMap((q) => analyze(q.expr).selectors.map((s) => s.name)).filter(isRecorded));
    const d = loadDashboard(file) as unknown as { description: string; panels: Array<{ title: string; fieldConfig?: { defaults?: { noValue?: string } } }> };
    const note = queries.filter((q) => q.panel === 'Recording rules');
    if (recorded.size === 0) {
      if (note.length) problems.push(`${file}: a "Recording rules" panel without recorded series`);
      continue;
    }
    if (!d.description.includes('alerts/ds-exporter-rules.yaml')) problems.push(`${file}: reads ${[...recorded].join(', ')} but its description does not name alerts/ds-exporter-rules.yaml`);
    if (note.length !== 1) {
      problems.push(`${file}: reads ${[...recorded].join(', ')} but has no "Recording rules" panel`);
      continue;
    }
    // The numerator is recorded series only, so that it is empty (and the panel says so) without the rules.
    const [num] = note[0].expr.split(' / ');
    const names = analyze(num).selectors.map((s) => s.name);
    if (!names.length || !names.every(isRecorded)) problems.push(`${file}: the "Recording rules" panel counts ${names.join(', ')}, not recorded series`);
    const panel = d.panels.find((p) => p.title === 'Recording rules');
    if (!/^Not loaded: alerts\/ds-exporter-rules\.yaml/.test(panel?.fieldConfig?.defaults?.noValue ?? '')) problems.push(`${file}: the "Recording rules" panel does not say what to load when empty`);
  }
  assert.deepEqual(problems, []);
});

test('the chart\'s PrometheusRule ships every recording rule the dashboards read', needHelm, async () => {
  const objects = await render({ set: ['prometheusRule.enabled=true'], monitoringApi: true });
  const rules = objects.filter((o) => o.kind === 'PrometheusRule').flatMap((o) => o.spec.groups.flatMap((g: { rules: Array<{ record?: string }> }) => g.rules.map((r) => r.record).filter(Boolean)));
  const records = ruleEntries().filter((r) => r.record).map((r) => r.record!);
  assert.ok(records.length > 5);
  assert.deepEqual(records.filter((r) => !rules.includes(r)), []);
});
