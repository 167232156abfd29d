import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { catalog, enrichedFamilies } from '../../src/catalog/index.js';
import { ROOT } from './queries.js';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';

// The queries docs/kubernetes.md tells users to run, evaluated by promtool on a node where
// GPU 0 belongs to one pod and GPU 1 is shared by two (time-slicing), once with the GPU
// series as --kubelet.enrich-labels labels them and once without; and the list of
// enriched families.

const DOC = readFileSync(join(ROOT, 'docs/kubernetes.md'), 'utf8');

test('docs/kubernetes.md lists exactly the families --kubelet.enrich-labels changes', () => {
  const section = DOC.slice(DOC.indexOf('The families that gain the labels:'), DOC.indexOf('Not changed:'));
  const listed = new Set([...section.matchAll(/`(ds_[a-z_]+)`/g)].map((m) => m[1]));
  assert.deepEqual([...listed].sort(), [...enrichedFamilies(catalog)].sort());
});

for (const v of PROMETHEUS_VERSIONS) test(`the documented queries give what the text says (promtool ${v.label})`, { skip: v.skip }, () => {
  const blocks = [...DOC.matchAll(/```promql\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  assert.equal(blocks.length, 4, 'busy per pod, memory split per pod, memory per pod from processes (plain and with enriched labels)');
  const [busy, split, processes, processesEnriched] = blocks;
  const total = /`(sum\(max by \(instance, uuid\) \(ds_gpu_power_watts\)\))`/.exec(DOC)?.[1];
  assert.ok(total, 'the totals query is in the text');
  const I = 'job="ds-exporter",instance="n1:9842"';
  const PROCS = [[0, '100', 20e9, 'ml', 'train'], [0, '101', 8e9, 'ml', 'train'], [1, '200', 6e9, 'lab', 'nb-a'], [1, '201', 3e9, 'lab', 'nb-b'], [1, '300', 1e9, '', '']] as const;
  const held = (gpu: number, ns: string, pod: string) => `${I},gpu="${gpu}",uuid="GPU-${gpu}",namespace="${ns}",pod="${pod}",container="main"`;
  const holders: Array<[number, string, string]> = [[0, 'ml', 'train'], [1, 'lab', 'nb-a'], [1, 'lab', 'nb-b']];
  const input = [
    ...holders.map(([g, ns, pod]) => ({ series: `ds_gpu_allocation_info{${held(g, ns, pod)}}`, values: '1x20' })),
    // Enriched GPU series: one copy per holder, same value.
    ...holders.map(([g, ns, pod]) => ({ series: `ds_gpu_memory_used_bytes{${held(g, ns, pod)}}`, values: `${g === 0 ? 30e9 : 10e9}x20` })),
    ...holders.map(([g, ns, pod]) => ({ series: `ds_gpu_power_watts{${held(g, ns, pod)}}`, values: `${g === 0 ? 300 : 200}x20` })),
    // Processes: two of train on GPU 0, one of each pod on GPU 1, one unresolved on GPU 1;
    // their memory series enriched: one copy per holder of the GPU.
    ...PROCS.flatMap(([g, pid, bytes]) => holders.filter(([h]) => h === g).map(([, ns, pod]) => ({ series: `ds_gpu_process_memory_used_bytes{${held(g, ns, pod)},pid="${pid}"}`, values: `${bytes}x20` }))),
    ...PROCS.map(([g, pid, , ns, pod]) => ({ series: `ds_gpu_process_info{${I},gpu="${g}",uuid="GPU-${g}",pid="${pid}",namespace="${ns}",pod="${pod}",container="main",pod_uid="u-${pid}",container_id=""}`, values: '1x20' })),
  ];
  // The same processes without --kubelet.enrich-labels.
  const plain = [
    ...input.filter((s) => s.series.startsWith('ds_gpu_allocation_info')),
    ...[0, 1].map((g) => ({ series: `ds_gpu_busy_seconds_total{${I},gpu="${g}",uuid="GPU-${g}"}`, values: `0+${g === 0 ? 30 : 15}x20` })),
    ...PROCS.map(([g, pid, bytes]) => ({ series: `ds_gpu_process_memory_used_bytes{${I},gpu="${g}",uuid="GPU-${g}",pid="${pid}"}`, values: `${bytes}x20` })),
    ...input.filter((s) => s.series.startsWith('ds_gpu_process_info')),
  ];
  const by = (ns: string, pod: string, value: number) => ({ labels: `{namespace="${ns}",pod="${pod}"}`, value });
  const cases = [
    { expr: split, eval_time: '10m', exp_samples: [by('ml', 'train', 30e9), by('lab', 'nb-a', 5e9), by('lab', 'nb-b', 5e9)] },
    // The enriched form also gives the right answer on enriched series; unresolved under {}.
    { expr: processesEnriched, eval_time: '10m', exp_samples: [by('ml', 'train', 28e9), by('lab', 'nb-a', 6e9), by('lab', 'nb-b', 3e9), { labels: '{}', value: 1e9 }] },
    { expr: total, eval_time: '10m', exp_samples: [{ labels: '{}', value: 500 }] },
    // What the text warns about: a plain sum counts the shared GPU once per holder.
    { expr: 'sum(ds_gpu_power_watts)', eval_time: '10m', exp_samples: [{ labels: '{}', value: 700 }] },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'ds-k8s-doc-'));
  try {
    const file = join(dir, 'doc.test.yaml');
    const plainCases = [
      { expr: busy, eval_time: '10m', exp_samples: [by('ml', 'train', 0.5), by('lab', 'nb-a', 0.25), by('lab', 'nb-b', 0.25)] },{ expr: processes, eval_time: '10m', exp_samples: [by('ml', 'train', 28e9), by('lab', 'nb-a', 6e9), by('lab', 'nb-b', 3e9), { labels: '{}', value: 1e9 }] }];
    writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: input, promql_expr_test: cases }, { interval: '1m', input_series: plain, promql_expr_test: plainCases }] }));
    const r = spawnSync(v.promtool, ['test', 'rules', file], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
