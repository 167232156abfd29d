import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { gpu, INPUT } from './pod-series.js';
import { dashboardQueries, ROOT, substitute } from './queries.js';

// The fleet overview's per-pod panels, allocation tables and utilization distribution read
// recording rules: evaluated by promtool with alerts/ds-exporter-rules.yaml loaded, on the host
// of the per-pod panel tests (exclusive, shared, free and idle GPUs), they give the answers the
// raw-series panels of the node dashboard give; with a cluster label (and the cluster variable
// set), and with the pod copies --kubelet.enrich-labels makes.

const CLUSTER = 'gpu-west';

/** The query of a fleet overview panel, with the variables set as a user would. */
function panelExpr(title: string, refId = 'A', vars: { namespace?: string; pod?: string; cluster?: string } = {}): string {
  const qs = dashboardQueries().filter((q) => q.dashboard === 'fleet-overview' && q.panel === title && q.refId === refId && q.panelType !== 'stat');
  assert.equal(qs.length, 1, `fleet-overview / ${title} / ${refId}: want one query, found ${qs.length}`);
  const e = qs[0].expr.replace(/\$namespace/g, vars.namespace ?? '.+').replace(/\$pod/g, vars.pod ?? '.+').replace(/\$cluster/g, vars.cluster ?? '.*');
  return substitute(e, '5m');
}

// Profiling activity of the same GPUs: SM active 0.25, 0.125, 0.5 (free GPU), 0; tensor 0.125, 0, 0.25, 0.
const T = 'job="ds-exporter",instance="n1:9842"';
const ACTIVITY = ([[0, '0+15x20', '0+7.5x20'], [1, '0+7.5x20', '0x20'], [2, '0+30x20', '0+15x20'], [3, '0x20', '0x20']] as const).flatMap(([i, sm, tensor]) => [
  { series: `ds_gpu_sm_active_seconds_total{${T},${gpu(i)}}`, values: sm },
  { series: `ds_gpu_tensor_active_seconds_total{${T},${gpu(i)},pipe="any"}`, values: tensor },
  { series: `ds_gpu_tensor_active_seconds_total{${T},${gpu(i)},pipe="hmma"}`, values: '0+60x20' },
]);

/** What the exporter writes with --kubelet.enrich-labels: each GPU series once per pod holding the GPU. */
function enrich(series: Array<{ series: string; values: string }>): Array<{ series: string; values: string }> {
  const holders: Record<number, Array<[string, string]>> = { 0: [['ml', 'train-0']], 1: [['lab', 'nb-a'], ['lab', 'nb-b']], 2: [['', '']], 3: [['lab', 'idle-nb']] };
  return series.flatMap((s) => {
    const m = /^(ds_gpu_(?:busy_seconds_total|memory_used_bytes|sm_active_seconds_total|tensor_active_seconds_total))\{(.*)\}$/.exec(s.series);
    if (!m) return [s];
    const i = Number(/gpu="(\d+)"/.exec(m[2])![1]);
    return holders[i].map(([ns, pod]) => ({ series: `${m[1]}{${m[2]},namespace="${ns}",pod="${pod}",container="${pod ? 'main' : ''}"}`, values: s.values }));
  });
}

/** Every input series with the cluster label a remote-write store adds. */
function inCluster(series: Array<{ series: string; values: string }>): Array<{ series: string; values: string }> {
  return series.map((s) => ({ ...s, series: s.series.replace('{', `{cluster="${CLUSTER}",`) }));
}

type Case = { expr: string; eval_time: string; exp_samples: Array<{ labels: string; value: number }> };

function cases(cluster?: string): Case[] {
  const c = (title: string, samples: Array<{ labels: string; value: number }>, vars: { namespace?: string; pod?: string } = {}, refId = 'A'): Case =>
    ({ expr: panelExpr(title, refId, { ...vars, cluster }), eval_time: '10m', exp_samples: samples });
  const pod = (ns: string, name: string, value: number) => ({ labels: `{namespace="${ns}",pod="${name}"}`, value });
  const at = cluster ? `cluster="${cluster}",` : '';
  const held = (i: number, ns: string, name: string, value: number) => ({ labels: `pod_gpu:ds_gpu_busy:rate5m{${at}${T},${gpu(i)},namespace="${ns}",pod="${name}",container="main"}`, value });
  return [
    // The shared GPU counts fully for each of its pods, the free GPU for none.
    c('GPU busy by pod', [pod('ml', 'train-0', 0.5), pod('lab', 'nb-a', 0.25), pod('lab', 'nb-b', 0.25), pod('lab', 'idle-nb', 0)]),
    c('GPU busy by pod', [pod('lab', 'nb-b', 0.25)], { namespace: 'lab', pod: 'nb-b' }),
    c('GPU memory used by pod', [pod('ml', 'train-0', 30e9), pod('lab', 'nb-a', 10e9), pod('lab', 'nb-b', 10e9), pod('lab', 'idle-nb', 1e9)]),
    c('GPU memory used by pod', [pod('ml', 'train-0', 30e9)], { namespace: 'ml' }),
    // Split by process; the unattributed process is left out.
    c('GPU memory by pod (processes)', [pod('ml', 'train-0', 28e9), pod('lab', 'nb-a', 6e9), pod('lab', 'nb-b', 3e9)]),
    c('GPU memory by pod (processes)', [pod('lab', 'nb-b', 3e9)], { pod: 'nb-b' }),
    c('Busy vs SM and tensor activity by pod', [pod('ml', 'train-0', 0.5), pod('lab', 'nb-a', 0.25), pod('lab', 'nb-b', 0.25), pod('lab', 'idle-nb', 0)], {}, 'A'),
    c('Busy vs SM and tensor activity by pod', [pod('ml', 'train-0', 0.25), pod('lab', 'nb-a', 0.125), pod('lab', 'nb-b', 0.125), pod('lab', 'idle-nb', 0)], {}, 'B'),
    c('Busy vs SM and tensor activity by pod', [pod('ml', 'train-0', 0.125), pod('lab', 'nb-a', 0), pod('lab', 'nb-b', 0), pod('lab', 'idle-nb', 0)], {}, 'C'),
    // The utilization distribution: GPUs at 0, 0.25, 0.5 and 0.75 busy, counted per cumulative bucket.
    c('GPU utilization distribution', ([['0.05', 1], ['0.1', 1], ['0.2', 1], ['0.3', 2], ['0.4', 2], ['0.5', 3], ['0.6', 3], ['0.7', 3], ['0.8', 4], ['0.9', 4], ['1', 4], ['+Inf', 4]] as const)
      .map(([le, value]) => ({ labels: `{le="${le}"}`, value }))),
    // Allocation tables: one row per pod, a shared GPU once per pod.
    c('Allocated but idle GPUs', [held(3, 'lab', 'idle-nb', 0)]),
    c('GPU allocation and utilization', [held(3, 'lab', 'idle-nb', 0), held(1, 'lab', 'nb-a', 0.25), held(1, 'lab', 'nb-b', 0.25), held(0, 'ml', 'train-0', 0.5)]),
    c('GPU allocation and utilization', [held(1, 'lab', 'nb-a', 0.25)], { pod: 'nb-a' }),
  ];
}

function promtool(bin: string, input: Array<{ series: string; values: string }>, exprs: Case[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'ds-fleet-panels-'));
  try {
    const file = join(dir, 'fleet-panels.test.yaml');
    const doc = { rule_files: [join(ROOT, 'alerts', 'ds-exporter-rules.yaml')], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: input, promql_expr_test: exprs }] };
    writeFileSync(file, stringify(doc));
    const r = spawnSync(bin, ['test', 'rules', file], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const v of PROMETHEUS_VERSIONS) {
  test(`fleet pod panels and allocation tables read from the recording rules attribute GPUs to pods (promtool ${v.label})`, { skip: v.skip }, () => {
    promtool(v.promtool, [...INPUT, ...ACTIVITY], cases());
  });

  test(`... the same with --kubelet.enrich-labels copies (promtool ${v.label})`, { skip: v.skip }, () => {
    // The allocation rows keep the pod of the allocation, not of the copy: the same rows.
    promtool(v.promtool, enrich([...INPUT, ...ACTIVITY]), cases());
  });

  test(`... the same in a store with a cluster label, filtered by the cluster variable; another cluster gets nothing (promtool ${v.label})`, { skip: v.skip }, () => {
    const other = cases('gpu-east').map((c) => ({ ...c, exp_samples: [] }));
    promtool(v.promtool, inCluster([...INPUT, ...ACTIVITY]), [...cases(CLUSTER), ...other]);
  });
}
