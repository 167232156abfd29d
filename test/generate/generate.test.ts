import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { catalog } from '../../src/catalog/index.js';
import { generateAll, HELM_FILES } from '../../src/generate/index.js';
import { defaultRulesConfig } from '../../src/generate/rules/config.js';
import { syncGenerated } from '../../src/generate/sync.js';
import { analyze } from './promql-lint.js';
import { dashboardQueries, ROOT } from './queries.js';
import { catalogEntry } from '../../src/generate/promql.js';

test('generation is deterministic and carries no timestamps', () => {
  const a = generateAll();
  const b = generateAll();
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.equal(b.get(k), v, k);
  for (const [k, v] of a) assert.doesNotMatch(v, /20\d\d-\d\d-\d\dT\d\d:/, `${k} contains a timestamp`);
  const keys = [...a.keys()];
  for (const want of ['dashboards/fleet-overview.json', 'alerts/ds-exporter-alerts.yaml', 'alerts/ds-exporter-rules.yaml', 'docs/metrics.md', `${HELM_FILES}/dashboards/serving.json`, `${HELM_FILES}/alerts/ds-exporter-alerts.yaml`]) assert.ok(keys.includes(want), want);
});

test('dashboard JSON has sorted keys at every level', () => {
  const text = generateAll().get('dashboards/serving.json')!;
  const check = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(check);
    else if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      assert.deepEqual(keys, [...keys].sort());
      Object.values(v).forEach(check);
    }
  };
  check(JSON.parse(text));
});

test('the Helm chart copies equal the top-level files', () => {
  const files = generateAll();
  for (const [k, v] of files) if (k.startsWith(`${HELM_FILES}/`)) assert.equal(files.get(k.slice(HELM_FILES.length + 1)), v, k);
});

test('sync writes, then check mode names missing, differing and stray files without touching them', () => {
  const root = mkdtempSync(join(tmpdir(), 'ds-gen-'));
  try {
    const files = generateAll();
    assert.equal(syncGenerated(root, files, { check: true }).length, files.size);
    assert.equal(existsSync(join(root, 'dashboards/serving.json')), false, 'check mode wrote a file');
    syncGenerated(root, files, { check: false });
    assert.deepEqual(syncGenerated(root, files, { check: true }), []);
    writeFileSync(join(root, 'dashboards/serving.json'), '{}\n');
    writeFileSync(join(root, 'alerts/old.yaml'), 'groups: []\n');
    assert.deepEqual(syncGenerated(root, files, { check: true }), ['dashboards/serving.json (differs)', 'alerts/old.yaml (not generated)']);
    assert.equal(readFileSync(join(root, 'dashboards/serving.json'), 'utf8'), '{}\n');
    syncGenerated(root, files, { check: false });
    assert.deepEqual(syncGenerated(root, files, { check: true }), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('npm run generate -- --check passes on the committed files', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/generate/main.ts', '--check'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('the rules config drives selectors and thresholds', () => {
  const files = generateAll({ ...defaultRulesConfig, selector: ['job="gpu-fleet"'], ttftObjectiveSeconds: 5, ttftObjectiveRatio: 0.995 });
  const alerts = files.get('alerts/ds-exporter-alerts.yaml')!;
  assert.match(alerts, /ds_gpu_up\{job="gpu-fleet"\} == 0/);
  assert.match(alerts, /ratio_rate1h\{job="gpu-fleet"\} > 14.4 \* 0.005 /);
  // An integer bound matches both "5" (Prometheus 2) and "5.0" (Prometheus 3 normalizes le).
  assert.match(files.get('alerts/ds-exporter-rules.yaml')!, /le=~"5\|5\[\.\]0"/);
  assert.throws(() => generateAll({ ...defaultRulesConfig, ttftObjectiveSeconds: 2 }), /not a bucket bound/);
  assert.doesNotMatch(alerts, /ds-exporter\.\*/);
  assert.match(files.get('alerts/ds-exporter-rules.yaml')!, /ds_gpu_info\{job="gpu-fleet"\}/);
});

test('every catalog metric is shown on some dashboard and listed in docs/metrics.md', () => {
  const shown = new Set<string>();
  for (const q of dashboardQueries()) for (const s of analyze(q.expr).selectors) shown.add(catalogEntry(s.name)?.name ?? s.name);
  assert.deepEqual(catalog.map((m) => m.name).filter((n) => !shown.has(n)), []);
  const doc = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
  for (const m of catalog) assert.ok(doc.includes(`| \`${m.name}\` | `), m.name);
});

test('the node detail dashboard shows every GPU metric of the catalog', () => {
  const shown = new Set<string>();
  for (const q of dashboardQueries().filter((x) => x.dashboard === 'node-detail')) for (const s of analyze(q.expr).selectors) shown.add(catalogEntry(s.name)?.name ?? s.name);
  assert.deepEqual(catalog.filter((m) => m.source === 'gpu' || m.source === 'kubelet').map((m) => m.name).filter((n) => !shown.has(n)), []);
});
