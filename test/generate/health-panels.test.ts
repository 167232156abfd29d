import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { dashboardQueries, substitute } from './queries.js';

// The Fleet health table "GPUs needing action" evaluated by promtool: a GPU held by one pod,
// one shared by two pods, one nobody holds, one that is fine; with and without the pod
// labels that --kubelet.enrich-labels adds to the verdict series.

function panelExpr(title: string): string {
  const qs = dashboardQueries().filter((q) => q.dashboard === 'fleet-health' && q.panel === title && q.panelType === 'table');
  assert.equal(qs.length, 1, `fleet-health / ${title}: want one query, found ${qs.length}`);
  return substitute(qs[0].expr.replace(/\$namespace/g, '.+').replace(/\$pod/g, '.+'), '5m');
}

const T = 'job="ds-exporter",instance="n1:9842"';
const gpu = (i: number) => `gpu="${i}",uuid="GPU-${i}"`;
const alloc = (i: number, ns: string, pod: string) => ({ series: `ds_gpu_allocation_info{${T},${gpu(i)},namespace="${ns}",pod="${pod}",container="main"}`, values: '1x10' });
const VERDICTS: Array<[number, string, string, string]> = [[0, 'action_required', 'reset_gpu', 'recovery_action'], [1, 'lost', 'reboot_node', 'not_answering'], [2, 'action_required', 'rma', 'row_remap_failed'], [3, 'ok', 'none', 'none']];
const HOLDERS: Record<number, Array<[string, string]>> = { 0: [['ml', 'train-0']], 1: [['lab', 'nb-a'], ['lab', 'nb-b']], 2: [], 3: [['lab', 'idle-nb']] };

function input(enriched: boolean) {
  const out = [alloc(0, 'ml', 'train-0'), alloc(1, 'lab', 'nb-a'), alloc(1, 'lab', 'nb-b'), alloc(3, 'lab', 'idle-nb')];
  for (const [i, verdict, action, reason] of VERDICTS) {
    const base = `${T},${gpu(i)},verdict="${verdict}",action="${action}",reason="${reason}"`;
    // With the flag the exporter writes a GPU's series once per pod holding it (empty labels when none).
    const pods = enriched ? (HOLDERS[i].length ? HOLDERS[i] : [['', '']]) : [undefined];
    for (const p of pods) out.push({ series: `ds_gpu_health{${base}${p ? `,namespace="${p[0]}",pod="${p[1]}",container="${p[1] ? 'main' : ''}"` : ''}}`, values: '1x10' });
  }
  return out;
}

const row = (i: number, verdict: string, action: string, reason: string, holder?: [string, string]) => ({
  labels: `{${T},${gpu(i)},${holder ? `namespace="${holder[0]}",pod="${holder[1]}",container="main",` : ''}verdict="${verdict}",action="${action}",reason="${reason}"}`, value: 1,
});
const WANT = [
  row(0, 'action_required', 'reset_gpu', 'recovery_action', ['ml', 'train-0']),
  row(1, 'lost', 'reboot_node', 'not_answering', ['lab', 'nb-a']),
  row(1, 'lost', 'reboot_node', 'not_answering', ['lab', 'nb-b']),
  row(2, 'action_required', 'rma', 'row_remap_failed'),
];

for (const v of PROMETHEUS_VERSIONS) {
  for (const enriched of [false, true]) {
    test(`"GPUs needing action" lists each GPU needing action once per pod holding it, and once when none does${enriched ? ', with --kubelet.enrich-labels' : ''} (promtool ${v.label})`, { skip: v.skip }, () => {
      const dir = mkdtempSync(join(tmpdir(), 'ds-health-panels-'));
      try {
        const file = join(dir, 'health-panels.test.yaml');
        const tests = [{ interval: '1m', input_series: input(enriched), promql_expr_test: [{ expr: panelExpr('GPUs needing action'), eval_time: '5m', exp_samples: WANT }] }];
        writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests }));
        const r = spawnSync(v.promtool, ['test', 'rules', file], { encoding: 'utf8', cwd: dir });
        assert.equal(r.status, 0, r.stdout + r.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}
