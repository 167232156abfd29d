import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { dashboardQueries, loadDashboard, substitute } from './queries.js';
import { gpu, INPUT, T } from './pod-series.js';

// The per-pod panels and allocation tables evaluated by promtool on a host where two GPUs
// belong to one pod each (one busy, one idle), one GPU is shared by two pods (time-slicing)
// and one GPU is free: what each pod is shown. The fleet overview's panels read recording
// rules instead: test/generate/fleet-panels.test.ts evaluates them on the same series.


const POD_PANELS: Record<string, readonly string[]> = {
  'GPU busy by pod': ['node-detail'],
  'GPU memory used by pod': ['node-detail', 'memory'],
  'Fragmentation by pod': ['memory'],
  'GPU memory by pod (processes)': ['node-detail', 'memory'],
};

/** The one query of a panel, with "All" for job/instance/gpu and the given namespace/pod values. */
function panelExpr(dashboard: string, title: string, vars: { namespace?: string; pod?: string } = {}, panelType?: string): string {
  const qs = dashboardQueries().filter((q) => q.dashboard === dashboard && q.panel === title && (!panelType || q.panelType === panelType));
  assert.equal(qs.length, 1, `${dashboard} / ${title}: want one query, found ${qs.length}`);
  let e = qs[0].expr.replace(/\$namespace/g, vars.namespace ?? '.+').replace(/\$pod/g, vars.pod ?? '.+');
  e = substitute(e, '5m');
  return e;
}

const busyBy = (ns: string, pod: string, value: number) => ({ labels: `{namespace="${ns}",pod="${pod}"}`, value });
const frag = (i: number, pid: string, job: string, pod: string, value: number) => ({
  labels: `{${T},${gpu(i)},pid="${pid}",exported_job="${job}",namespace="ml",pod="${pod}"}`, value,
});

function cases(): Array<{ expr: string; eval_time: string; exp_samples: Array<{ labels: string; value: number }> }> {
  const out: Array<{ expr: string; eval_time: string; exp_samples: Array<{ labels: string; value: number }> }> = [];
  for (const d of POD_PANELS['GPU busy by pod']) {
    // The shared GPU counts fully for each of its pods; the free GPU for none.
    out.push({ expr: panelExpr(d, 'GPU busy by pod'), eval_time: '10m', exp_samples: [busyBy('ml', 'train-0', 0.5), busyBy('lab', 'nb-a', 0.25), busyBy('lab', 'nb-b', 0.25), busyBy('lab', 'idle-nb', 0)] });
    out.push({ expr: panelExpr(d, 'GPU busy by pod', { namespace: 'lab', pod: 'nb-b' }), eval_time: '10m', exp_samples: [busyBy('lab', 'nb-b', 0.25)] });
  }
  for (const d of POD_PANELS['GPU memory used by pod']) {
    out.push({ expr: panelExpr(d, 'GPU memory used by pod'), eval_time: '10m', exp_samples: [busyBy('ml', 'train-0', 30e9), busyBy('lab', 'nb-a', 10e9), busyBy('lab', 'nb-b', 10e9), busyBy('lab', 'idle-nb', 1e9)] });
    out.push({ expr: panelExpr(d, 'GPU memory used by pod', { namespace: 'ml' }), eval_time: '10m', exp_samples: [busyBy('ml', 'train-0', 30e9)] });
  }
  for (const d of POD_PANELS['Fragmentation by pod']) {
    // Processes of the exclusively held GPU, labeled with its pod; the shared and the free GPU are left out.
    out.push({ expr: panelExpr(d, 'Fragmentation by pod'), eval_time: '10m', exp_samples: [frag(0, '100', 'trainer', 'train-0', 0.25), frag(0, '101', 'trainer', 'train-0', 0.5)] });
    out.push({ expr: panelExpr(d, 'Fragmentation by pod', { pod: 'train-0' }), eval_time: '10m', exp_samples: [frag(0, '100', 'trainer', 'train-0', 0.25), frag(0, '101', 'trainer', 'train-0', 0.5)] });
    out.push({ expr: panelExpr(d, 'Fragmentation by pod', { namespace: 'lab' }), eval_time: '10m', exp_samples: [] });
  }
  for (const d of POD_PANELS['GPU memory by pod (processes)']) {
    // The shared GPU is split by process; the unattributed process is left out.
    out.push({ expr: panelExpr(d, 'GPU memory by pod (processes)'), eval_time: '10m', exp_samples: [busyBy('ml', 'train-0', 28e9), busyBy('lab', 'nb-a', 6e9), busyBy('lab', 'nb-b', 3e9)] });
    out.push({ expr: panelExpr(d, 'GPU memory by pod (processes)', { pod: 'nb-b' }), eval_time: '10m', exp_samples: [busyBy('lab', 'nb-b', 3e9)] });
  }
  // The node table: one row per pod, a shared GPU once per pod.
  const held = (i: number, ns: string, pod: string, value: number, extra = '') => ({ labels: `{${T},${gpu(i)},namespace="${ns}",pod="${pod}",container="main"${extra}}`, value });
  out.push({
    expr: panelExpr('node-detail', 'Utilization method and pod'), eval_time: '10m',
    exp_samples: [
      held(0, 'ml', 'train-0', 1, ',method="samples"'), held(1, 'lab', 'nb-a', 1, ',method="samples"'), held(1, 'lab', 'nb-b', 1, ',method="samples"'), held(3, 'lab', 'idle-nb', 1, ',method="samples"'),
      { labels: `ds_gpu_utilization_method{${T},${gpu(2)},method="samples"}`, value: 1 },
    ],
  });
  return out;
}

test('per-pod panels exist on the dashboards that have namespace and pod variables', () => {
  for (const [title, dashboards] of Object.entries(POD_PANELS)) {
    for (const d of dashboards) {
      const vars = (loadDashboard(d).templating.list as Array<{ name: string }>).map((v) => v.name);
      assert.ok(vars.includes('namespace') && vars.includes('pod'), `${d}: no namespace/pod variables`);
      assert.ok(dashboardQueries().some((q) => q.dashboard === d && q.panel === title), `${d}: no "${title}" panel`);
    }
  }
});

for (const v of PROMETHEUS_VERSIONS) test(`per-pod panels attribute GPUs to pods (exclusive, shared, free GPUs) and honour the variables (promtool ${v.label})`, { skip: v.skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ds-pod-panels-'));
  try {
    const file = join(dir, 'pod-panels.test.yaml');
    writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: INPUT, promql_expr_test: cases() }] }));
    const r = spawnSync(v.promtool, ['test', 'rules', file], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const v of PROMETHEUS_VERSIONS) test(`per-pod panels give the same answers when GPU series carry pod labels (--kubelet.enrich-labels) (promtool ${v.label})`, { skip: v.skip }, () => {
  // What the exporter writes with the flag: every GPU series labelled with its holder, the
  // shared GPU once per pod (same value), the free GPU with empty pod labels.
  const holders: Record<number, Array<[string, string]>> = { 0: [['ml', 'train-0']], 1: [['lab', 'nb-a'], ['lab', 'nb-b']], 2: [['', '']], 3: [['lab', 'idle-nb']] };
  const enriched = INPUT.flatMap((s) => {
    const m = /^(ds_gpu_(?:busy_seconds_total|memory_used_bytes|utilization_method))\{(.*)\}$/.exec(s.series);
    if (!m) return [s];
    const i = Number(/gpu="(\d+)"/.exec(m[2])![1]);
    return holders[i].map(([ns, pod]) => ({ series: `${m[1]}{${m[2]},namespace="${ns}",pod="${pod}",container="${pod ? 'main' : ''}"}`, values: s.values }));
  });
  // The fallback row of the node table (a GPU nobody holds) is the raw series; with the flag its
  // empty pod labels are no labels at all in Prometheus, so the expected rows stay the same.
  const wanted = cases().filter((c) => /busy_seconds|memory_used_bytes|utilization_method/.test(c.expr) && !/process_memory/.test(c.expr));
  assert.ok(wanted.length >= 7, `expected the busy, memory and allocation table cases, found ${wanted.length}`);
  const dir = mkdtempSync(join(tmpdir(), 'ds-pod-panels-enriched-'));
  try {
    const file = join(dir, 'pod-panels.test.yaml');
    writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: enriched, promql_expr_test: wanted }] }));
    const r = spawnSync(v.promtool, ['test', 'rules', file], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
