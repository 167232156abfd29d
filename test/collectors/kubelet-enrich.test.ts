import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { catalog, enrichCatalog, enrichedFamilies } from '../../src/catalog/index.js';
import { type BatchEntry, enrichWithPods } from '../../src/collectors/gpu/enrich.js';
import type { GpuAllocation } from '../../src/collectors/kubelet/match.js';
import type { PodAllocationList } from '../../src/ports/index.js';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { type FakeKubelet, fakePod, startFakeKubelet } from '../helpers/fake-kubelet.js';
import { testApp } from '../helpers/app.js';
import { ROOT } from '../helpers/procs.js';

// --kubelet.enrich-labels: the catalog transformation, the pure post-pass of the GPU
// collector, the flag's validation and the whole path through app.inject().

test('the enriched catalog appends namespace, pod, container to GPU families keyed by uuid, and leaves the catalog untouched', () => {
  const before = JSON.stringify(catalog);
  const enriched = enrichCatalog(catalog);
  assert.equal(JSON.stringify(catalog), before, 'the default catalog is not changed');
  const names = enrichedFamilies(catalog);
  for (const n of ['ds_gpu_info', 'ds_gpu_utilization_ratio', 'ds_gpu_busy_seconds_total', 'ds_gpu_memory_used_bytes', 'ds_gpu_mig_info', 'ds_gpu_mig_memory_used_bytes', 'ds_gpu_process_memory_used_bytes', 'ds_gpu_xid_errors_total']) assert.ok(names.has(n), n);
  // Not from the GPU collector, no uuid, or already naming a pod.
  for (const n of ['ds_gpu_allocation_info', 'ds_gpu_memory_fragmentation_ratio', 'ds_exporter_gpu_source_info', 'ds_serving_requests_total', 'ds_exporter_build_info']) assert.ok(!names.has(n), n);
  for (const d of enriched) {
    const orig = catalog.find((c) => c.name === d.name)!;
    if (names.has(d.name)) assert.deepEqual(d.labels, [...orig.labels, 'namespace', 'pod', 'container'], d.name);
    else assert.equal(d, orig, `${d.name} is the same object`);
  }
  assert.equal(enriched.length, catalog.length);
});

const G0 = 'GPU-aaaa';
const G1 = 'GPU-bbbb';
const G2 = 'GPU-cccc';
const MIG1 = 'MIG-1111';
const families = enrichedFamilies(catalog);
const alloc = (uuid: string, pod: string, container = 'main', gpu = ''): GpuAllocation => ({ gpu, uuid, namespace: 'ns', pod, container });
const view = (allocations: GpuAllocation[], readAtMs = 1000): PodAllocationList => ({ allocations, readAtMs, maxAgeMs: 3000 });
const g = (name: string, labels: Record<string, string>, value: number, kind: 'gauge' | 'counter' = 'gauge'): BatchEntry => ({ kind, name, labels, value });
const ENTRIES: BatchEntry[] = [
  g('ds_exporter_gpu_source_info', { source: 'nvml' }, 1),
  g('ds_gpu_utilization_ratio', { gpu: '0', uuid: G0 }, 0.5),
  g('ds_gpu_utilization_ratio', { gpu: '1', uuid: G1 }, 0.25),
  g('ds_gpu_busy_seconds_total', { gpu: '1', uuid: G1 }, 42, 'counter'),
  g('ds_gpu_utilization_ratio', { gpu: '2', uuid: G2 }, 0.75),
  g('ds_gpu_mig_info', { gpu: '2', uuid: G2, gpu_instance: '1', compute_instance: '0', mig_uuid: MIG1, name: 'x' }, 1),
  g('ds_gpu_mig_memory_used_bytes', { gpu: '2', uuid: G2, gpu_instance: '1' }, 100),
  g('ds_gpu_mig_memory_used_bytes', { gpu: '2', uuid: G2, gpu_instance: '2' }, 200),
];
const lines = (es: BatchEntry[]) => es.map((e) => `${e.name}{${Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(',')}} ${e.value}`);

test('post-pass: no holder gives empty labels, one holder its labels, several holders one series each with the same value', () => {
  const copy = structuredClone(ENTRIES);
  const out = lines(enrichWithPods(ENTRIES, families, view([alloc(G0, 'train'), alloc(G1, 'nb-a'), alloc(G1, 'nb-b', 'jupyter')]), 2000));
  assert.deepEqual(ENTRIES, copy, 'input not changed');
  assert.deepEqual(out, [
    'ds_exporter_gpu_source_info{source=nvml} 1',
    `ds_gpu_utilization_ratio{gpu=0,uuid=${G0},namespace=ns,pod=train,container=main} 0.5`,
    `ds_gpu_utilization_ratio{gpu=1,uuid=${G1},namespace=ns,pod=nb-a,container=main} 0.25`,
    `ds_gpu_utilization_ratio{gpu=1,uuid=${G1},namespace=ns,pod=nb-b,container=jupyter} 0.25`,
    `ds_gpu_busy_seconds_total{gpu=1,uuid=${G1},namespace=ns,pod=nb-a,container=main} 42`,
    `ds_gpu_busy_seconds_total{gpu=1,uuid=${G1},namespace=ns,pod=nb-b,container=jupyter} 42`,
    `ds_gpu_utilization_ratio{gpu=2,uuid=${G2},namespace=,pod=,container=} 0.75`,
    `ds_gpu_mig_info{gpu=2,uuid=${G2},gpu_instance=1,compute_instance=0,mig_uuid=${MIG1},name=x,namespace=,pod=,container=} 1`,
    `ds_gpu_mig_memory_used_bytes{gpu=2,uuid=${G2},gpu_instance=1,namespace=,pod=,container=} 100`,
    `ds_gpu_mig_memory_used_bytes{gpu=2,uuid=${G2},gpu_instance=2,namespace=,pod=,container=} 200`,
  ]);
  const kinds = enrichWithPods(ENTRIES, families, view([alloc(G1, 'a'), alloc(G1, 'b')]), 2000).filter((e) => e.name === 'ds_gpu_busy_seconds_total').map((e) => e.kind);
  assert.deepEqual(kinds, ['counter', 'counter']);
});

test('post-pass: MIG series take the holder of their MIG device, not of the GPU', () => {
  const out = lines(enrichWithPods(ENTRIES, families, view([alloc(MIG1.toLowerCase(), 'mig-pod'), alloc(G2, 'whole')]), 2000)).filter((l) => l.includes(`uuid=${G2}`));
  assert.deepEqual(out, [
    `ds_gpu_utilization_ratio{gpu=2,uuid=${G2},namespace=ns,pod=whole,container=main} 0.75`,
    `ds_gpu_mig_info{gpu=2,uuid=${G2},gpu_instance=1,compute_instance=0,mig_uuid=${MIG1},name=x,namespace=ns,pod=mig-pod,container=main} 1`,
    `ds_gpu_mig_memory_used_bytes{gpu=2,uuid=${G2},gpu_instance=1,namespace=ns,pod=mig-pod,container=main} 100`,
    `ds_gpu_mig_memory_used_bytes{gpu=2,uuid=${G2},gpu_instance=2,namespace=,pod=,container=} 200`,
  ]);
});

test('post-pass: allocations older than their bound are not used; a device named by index matches by gpu', () => {
  const allocations = [alloc(G0, 'train')];
  const at = (now: number) => lines(enrichWithPods(ENTRIES.slice(1, 2), families, view(allocations, 1000), now));
  assert.deepEqual(at(4000), [`ds_gpu_utilization_ratio{gpu=0,uuid=${G0},namespace=ns,pod=train,container=main} 0.5`], 'exactly 3 intervals old: used');
  assert.deepEqual(at(4001), [`ds_gpu_utilization_ratio{gpu=0,uuid=${G0},namespace=,pod=,container=} 0.5`], 'older: empty');
  assert.deepEqual(lines(enrichWithPods(ENTRIES.slice(1, 2), families, undefined, 0)), [`ds_gpu_utilization_ratio{gpu=0,uuid=${G0},namespace=,pod=,container=} 0.5`], 'no kubelet answer yet');
  const byIndex = lines(enrichWithPods(ENTRIES.slice(1, 3), families, view([alloc('', 'idx', 'main', '1')]), 2000));
  assert.deepEqual(byIndex, [`ds_gpu_utilization_ratio{gpu=0,uuid=${G0},namespace=,pod=,container=} 0.5`, `ds_gpu_utilization_ratio{gpu=1,uuid=${G1},namespace=ns,pod=idx,container=main} 0.25`]);
});

test('--kubelet.enrich-labels without --collector.kubelet is a one-line config error and exit code 2', () => {
  assert.throws(() => loadConfig(['--kubelet.enrich-labels'], {}), (e: unknown) => e instanceof ConfigError && /--kubelet\.enrich-labels.*--collector\.kubelet/.test(e.message));
  assert.throws(() => loadConfig(['--kubelet.enrich-labels', '--no-collector.kubelet'], {}), ConfigError);
  assert.throws(() => loadConfig([], { DS_EXPORTER_KUBELET_ENRICH_LABELS: 'true' }), ConfigError);
  assert.doesNotThrow(() => loadConfig(['--kubelet.enrich-labels', '--collector.kubelet'], {}));
  let code = 0;
  let stderr = '';
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--kubelet.enrich-labels', '--simulate'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    code = (e as { status: number }).status;
    stderr = (e as { stderr: Buffer }).stderr.toString();
  }
  assert.equal(code, 2);
  assert.match(stderr, /^ds-exporter: error: --kubelet\.enrich-labels needs --collector\.kubelet/);
  assert.equal(stderr.trim().split('\n').length, 1, stderr);
});

let kubelet: FakeKubelet;
before(async () => {
  kubelet = await startFakeKubelet();
});
after(() => kubelet?.close());

const podLabels = (body: string, family: string) =>
  body.split('\n').filter((l) => l.startsWith(`${family}{`)).map((l) => /gpu="(\d+)".*namespace="([^"]*)",pod="([^"]*)",container="([^"]*)"\} (\S+)$/.exec(l)!.slice(1).join(' ')).sort();

test('end to end: enriched series follow the kubelet, one series per pod on a shared GPU, empty when the kubelet stops answering', async () => {
  let now = 1_700_000_000_000;
  kubelet.answer({ pod_resources: [] });
  const built = await testApp(['--gpu.source=simulated', '--simulate.gpus=3', '--collector.kubelet', '--kubelet.enrich-labels', `--kubelet.pod-resources-socket=${kubelet.socket}`, '--kubelet.interval=1s', '--kubelet.timeout=500ms'], { now: () => now });
  try {
    const round = async () => {
      now += 1000;
      // The GPU collector labels with what the kubelet collector published before: two rounds settle it.
      await built.scheduler.sampleAll();
      await built.scheduler.sampleAll();
    };
    const metrics = async () => (await built.app.inject({ url: '/metrics' })).body;
    await round();
    const [u0, u1] = built.deps.gpus.devices.map((d) => d.uuid);
    let body = await metrics();
    assert.deepEqual(podLabels(body, 'ds_gpu_up'), ['0    1', '1    1', '2    1'], 'no pod holds a GPU yet');
    assert.doesNotMatch(body, /^ds_gpu_allocation_info\{/m);

    // train holds GPU 0; nb-a and nb-b share GPU 1 (time-slicing replicas); GPU 2 is free.
    kubelet.answer({ pod_resources: [fakePod('ml', 'train', { main: [u0] }), fakePod('lab', 'nb-a', { jupyter: [`${u1}::0`] }), fakePod('lab', 'nb-b', { jupyter: [`${u1}::1`] })] });
    await round();
    body = await metrics();
    assert.deepEqual(podLabels(body, 'ds_gpu_up'), ['0 ml train main 1', '1 lab nb-a jupyter 1', '1 lab nb-b jupyter 1', '2    1']);
    const util = podLabels(body, 'ds_gpu_utilization_ratio').filter((l) => l.startsWith('1 '));
    assert.equal(util.length, 2);
    assert.equal(util[0].split(' ').at(-1), util[1].split(' ').at(-1), 'the same value for each holder');
    assert.match(body, new RegExp(`ds_gpu_busy_seconds_total\\{gpu="0",uuid="${u0}",namespace="ml",pod="train",container="main"\\} `));
    assert.match(body, new RegExp(`ds_gpu_info\\{gpu="0",uuid="${u0}",[^}]*,namespace="ml",pod="train",container="main"\\} 1`));
    // Allocation info and non-GPU families are as without the flag.
    assert.match(body, new RegExp(`ds_gpu_allocation_info\\{gpu="0",uuid="${u0}",namespace="ml",pod="train",container="main"\\} 1`));
    assert.match(body, /ds_exporter_gpu_source_info\{source="simulated"\} 1/);

    // train is replaced by serve on GPU 0; the old pod's series disappear.
    kubelet.answer({ pod_resources: [fakePod('ml', 'serve', { vllm: [u0] }), fakePod('lab', 'nb-b', { jupyter: [u1] })] });
    await round();
    body = await metrics();
    assert.deepEqual(podLabels(body, 'ds_gpu_up'), ['0 ml serve vllm 1', '1 lab nb-b jupyter 1', '2    1']);
    assert.doesNotMatch(body, /pod="train"/);

    // The kubelet stops answering: the labels stay for at most 3 kubelet intervals, then go empty.
    kubelet.answer({ error: grpc.status.UNAVAILABLE, details: 'kubelet restarting' });
    await round();
    body = await metrics();
    assert.match(body, /ds_exporter_collector_success\{collector="kubelet"\} 0/);
    assert.deepEqual(podLabels(body, 'ds_gpu_up'), ['0 ml serve vllm 1', '1 lab nb-b jupyter 1', '2    1'], 'within 3 intervals: still used');
    now += 3000;
    await built.scheduler.sampleAll();
    body = await metrics();
    assert.deepEqual(podLabels(body, 'ds_gpu_up'), ['0    1', '1    1', '2    1'], 'stale: empty, never frozen');
    assert.doesNotMatch(body, /^ds_gpu_(?!allocation_info)[a-z_]+\{[^}]*pod="(serve|nb-b)"/m);
  } finally {
    await built.close();
  }
});

test('flag off: the GPU series and the series count are exactly those without the kubelet', async () => {
  kubelet.answer({ pod_resources: [fakePod('ml', 'a', { main: ['nvidia0'] })] });
  const run = async (args: string[]) => {
    const b = await testApp(['--gpu.source=simulated', '--simulate.gpus=2', ...args], { now: () => 1_700_000_000_000 });
    await b.scheduler.sampleAll();
    await b.scheduler.sampleAll();
    const body = (await b.app.inject({ url: '/metrics' })).body;
    const count = b.store.seriesCount;
    await b.close();
    return { gpuLines: body.split('\n').filter((l) => /^ds_gpu_(?!allocation)/.test(l)), count, body };
  };
  const without = await run([]);
  const withKubelet = await run(['--collector.kubelet', `--kubelet.pod-resources-socket=${kubelet.socket}`]);
  assert.deepEqual(withKubelet.gpuLines, without.gpuLines);
  assert.ok(without.gpuLines.some((l) => l.startsWith('ds_gpu_up{gpu="0",uuid="GPU-') && !l.includes('pod=')));
  // The kubelet adds its allocation and its own self-metrics, nothing on the GPU families.
  assert.equal(withKubelet.count - without.count, 1 + 3);
  assert.match(withKubelet.body, /ds_gpu_allocation_info\{gpu="0",[^}]*pod="a"/);
});
