import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import type { BuiltApp } from '../src/app.js';
import { testApp } from './helpers/app.js';
import { type FakeKubelet, fakePod, startFakeKubelet } from './helpers/fake-kubelet.js';
import { fakeNvmlUnavailable } from './helpers/fake-nvml.js';
import { fakeNvmlApp } from './helpers/nvml-app.js';
import { freePort, startExporter } from './helpers/peers.js';
import { ROOT, waitFor } from './helpers/procs.js';
import { postPush } from './helpers/push.js';

// What each trimming flag of docs/cardinality.md ("What trims them") saves, measured on real
// sources (not the simulator, which stands in for every source at once and is not trimmed by
// them): exporters probing each other on loopback, NCCL Inspector textfiles, a reporter
// pushing allocator stats, the fake NVML with GPU processes, the fake kubelet sharing a GPU.

const DOC = readFileSync(join(ROOT, 'docs/cardinality.md'), 'utf8');
const TRIMS = DOC.slice(DOC.indexOf('## What trims them'));

/** The row of the trimming table for `flag`. */
function row(flag: string): string {
  const r = TRIMS.split('\n').find((l) => l.startsWith(`| \`${flag}\``));
  assert.ok(r, `docs/cardinality.md lists ${flag} under "What trims them"`);
  return r;
}

/** The sample lines of /metrics (text format). */
async function lines(b: BuiltApp): Promise<string[]> {
  return (await b.app.inject({ url: '/metrics' })).body.split('\n').filter((l) => l && !l.startsWith('#'));
}

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

test('--no-collector.peers removes every per-peer series (the figure the doc gives per peer and for a 64-node mesh); --peers.max keeps them', { timeout: 90_000 }, async () => {
  const peers = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const measured = ['127.0.0.5', '127.0.0.6', '127.0.0.7'];
  const port = await freePort([...peers, ...measured]);
  const list = `--peers=${peers.map((h) => `${h}:${port}`).join(',')}`;
  const fast = ['--peers.interval=300ms', '--peers.timeout=200ms'];
  for (const h of peers) open.push(await startExporter(h, port, [list, ...fast]));
  const full = await startExporter(measured[0], port, [list, ...fast]);
  const max1 = await startExporter(measured[1], port, [list, ...fast, '--peers.max=1']);
  const off = await startExporter(measured[2], port, [list, ...fast, '--no-collector.peers']);
  open.push(full, max1, off);
  const peerLines = async (b: BuiltApp) => (await lines(b)).filter((l) => /[{,]peer="/.test(l));
  // Every peer answered at least twice (probed round-robin one per round with --peers.max=1).
  const answered = async (b: BuiltApp) => {
    const counts = (await lines(b)).filter((l) => l.startsWith('ds_comm_peer_latency_seconds_count{'));
    return counts.length === peers.length && counts.every((l) => Number(l.split(' ').at(-1)) >= 2);
  };
  await waitFor(async () => (await answered(full)) && (await answered(max1)), 30_000, 'every peer probed by both exporters');

  const perPeer = (await peerLines(full)).length / peers.length;
  assert.ok(Number.isInteger(perPeer), `the same series for every peer: ${perPeer}`);
  const [, docPerPeer, docMesh] = /(\d+) per peer: on a 64-node mesh, ([\d,]+) series per host/.exec(row('--no-collector.peers'))!;
  assert.equal(perPeer, Number(docPerPeer), `docs/cardinality.md: ${docPerPeer} series per peer, measured ${perPeer}`);
  assert.equal(Math.round((63 * perPeer) / 100) * 100, Number(docMesh.replace(',', '')), '63 peers of a 64-node mesh');
  assert.deepEqual(await peerLines(off), [], 'no per-peer series without the peers collector');
  // What the flag saves: the peer series, and the collector's own series (labelled with it, or named for the prober).
  const key = (l: string) => l.replace(/ \S+$/, '');
  const offKeys = new Set((await lines(off)).map(key));
  const saved = (await lines(full)).filter((l) => !offKeys.has(key(l)));
  assert.deepEqual(saved.filter((l) => !/[{,]peer="|collector="peers"|^ds_comm_peer_targets /.test(l)).map(key), []);
  // Per host: the number of peers known, and the collector's success, duration and last success.
  assert.equal(saved.length, perPeer * peers.length + 4);
  assert.equal((await peerLines(max1)).length, perPeer * peers.length, '--peers.max probes fewer peers per round, the series of every peer stay');
  assert.match(row('--peers.max=N'), /the series of every peer stay/);
});

test('--no-collector.textfile removes the NCCL Inspector series, nccl-tests imports and the textfile state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ds-trim-textfile-'));
  try {
    // One GPU's NCCL Inspector output: one collective kind, one peer-to-peer operation, the counters.
    for (const f of ['nccl-inspector.prom', 'nccl-inspector-stats.prom']) writeFileSync(join(dir, f), readFileSync(join(ROOT, 'test/fixtures/comm', f)));
    // And one imported nccl-tests result.
    writeFileSync(join(dir, 'nccl-tests.prom'), 'ds_nccl_test_latency_seconds{op="all_reduce",size_bytes="8",in_place="true"} 2.1e-05\n');
    const on = await testApp(['--no-collector.gpu', `--textfile.directory=${dir}`]);
    const off = await testApp(['--no-collector.gpu', `--textfile.directory=${dir}`, '--no-collector.textfile']);
    open.push(on, off);
    await Promise.all([on.scheduler.sampleAll(), off.scheduler.sampleAll()]);
    const nccl = (ls: string[]) => ls.filter((l) => l.startsWith('ds_nccl_'));
    const textfile = (ls: string[]) => ls.filter((l) => l.startsWith('ds_textfile_'));
    const [a, b] = [await lines(on), await lines(off)];
    // 2 series per collective kind and message size, 2 per peer-to-peer operation, 4 counters; the nccl-tests line.
    assert.equal(nccl(a).length, 8 + 1);
    assert.ok(textfile(a).length >= 2);
    assert.deepEqual([...nccl(b), ...textfile(b)], []);
    assert.equal(a.length - b.length, nccl(a).length + textfile(a).length + 3);
    assert.match(row('--no-collector.textfile'), /NCCL Inspector series \(2 per collective kind and message size, 2 per peer-to-peer operation and 4 counters per GPU: 14 on the simulator\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--no-collector.push removes the allocator series (7 per GPU process), training throughput and pushed collective histograms', async () => {
  const on = await testApp(['--no-collector.gpu']);
  const off = await testApp(['--no-collector.gpu', '--no-collector.push']);
  open.push(on, off);
  const device = (index: number) => ({ index, uuid: `GPU-trim-${index}`, reserved_bytes: 8e9, allocated_bytes: 6e9, inactive_split_bytes: 1e9, largest_free_block_bytes: 5e8, num_alloc_retries: 1, num_ooms: 0 });
  const body = {
    version: 1, reporter: { job: 'trim', rank: 0, pid: 4242, host: 'h1' }, devices: [device(0), device(1)],
    training: { samples: 100, steps: 10, step_durations_seconds: [0.4] }, collectives: [{ op: 'all_reduce', durations_seconds: [0.004], bytes: 1024 }],
  };
  assert.equal((await postPush(on, body)).statusCode < 300, true);
  assert.ok((await postPush(off, body)).statusCode >= 400, 'nothing to push into without the push collector');
  await Promise.all([on.scheduler.sampleAll(), off.scheduler.sampleAll()]);
  const [a, b] = [await lines(on), await lines(off)];
  const allocator = (ls: string[]) => ls.filter((l) => /^ds_(allocator_|gpu_memory_fragmentation_ratio)/.test(l));
  const pushed = (ls: string[]) => ls.filter((l) => /^ds_(allocator_|gpu_memory_fragmentation_ratio|training_|comm_collective_|exporter_push_)/.test(l));
  assert.equal(allocator(a).length, 7 * 2, 'two GPU processes (one reporter, two devices)');
  assert.ok(a.some((l) => l.startsWith('ds_training_samples_total')) && a.some((l) => l.startsWith('ds_comm_collective_latency_seconds_bucket')));
  assert.deepEqual(pushed(b), []);
  assert.match(row('--no-collector.push'), /the allocator series \(7 per GPU process\)/);
});

test('--nvml.process-memory adds one series per process on each GPU', { skip: fakeNvmlUnavailable() }, async () => {
  const config = { gpus: 2, 'gpu.0.procs': '4242:21474836480,777:1048576', 'gpu.1.procs': '900:1048576' };
  const off = await fakeNvmlApp(open, config);
  const [offLines] = [await lines(off.built)];
  await off.built.close();
  open.splice(open.indexOf(off.built), 1);
  const on = await fakeNvmlApp(open, config, [], ['--nvml.process-memory']);
  const onLines = await lines(on.built);
  const added = onLines.filter((l) => !offLines.some((o) => o.replace(/ \S+$/, '') === l.replace(/ \S+$/, '')));
  assert.deepEqual(added.map((l) => /^(\w+)\{.*pid="(\d+)"/.exec(l)?.slice(1).join(' ')).sort(), ['ds_gpu_process_memory_used_bytes 4242', 'ds_gpu_process_memory_used_bytes 777', 'ds_gpu_process_memory_used_bytes 900']);
  assert.match(row('--nvml.process-memory'), /adds one series per process on each GPU/);
});

let kubelet: FakeKubelet;
before(async () => {
  kubelet = await startFakeKubelet();
});
after(() => kubelet?.close());

test('--kubelet.enrich-labels adds a copy of every per-GPU series per extra pod on a time-shared GPU', async () => {
  const args = ['--gpu.source=simulated', '--simulate.gpus=3', '--collector.kubelet', `--kubelet.pod-resources-socket=${kubelet.socket}`, '--kubelet.interval=1s', '--kubelet.timeout=500ms'];
  let now = 1_700_000_000_000;
  const plain = await testApp(args, { now: () => now });
  const enriched = await testApp([...args, '--kubelet.enrich-labels'], { now: () => now });
  open.push(plain, enriched);
  const round = async () => {
    now += 1000;
    // The GPU collector labels with what the kubelet collector published before: two rounds settle it.
    for (const b of [plain, enriched]) {
      await b.scheduler.sampleAll();
      await b.scheduler.sampleAll();
    }
  };
  await round();
  const uuids = plain.deps.gpus.devices.map((d) => d.uuid);
  assert.equal(uuids.length, 3);
  assert.deepEqual(uuids, enriched.deps.gpus.devices.map((d) => d.uuid), 'the same simulated GPUs');
  // train holds GPU 0; nb-a and nb-b share GPU 1 (time-slicing); GPU 2 is free.
  kubelet.answer({ pod_resources: [fakePod('ml', 'train', { main: [uuids[0]] }), fakePod('lab', 'nb-a', { jupyter: [`${uuids[1]}::0`] }), fakePod('lab', 'nb-b', { jupyter: [`${uuids[1]}::1`] })] });
  await round();
  await round();
  const [a, b] = [await lines(plain), await lines(enriched)];
  const gpuSeries = (ls: string[], uuid: string) => ls.filter((l) => l.includes(`uuid="${uuid}"`) && !l.startsWith('ds_gpu_allocation_info'));
  // One extra pod on GPU 1: one more copy of each of its series; GPUs 0 and 2 keep one each.
  assert.ok(gpuSeries(a, uuids[1]).length > 50, `GPU 1 has ${gpuSeries(a, uuids[1]).length} series`);
  assert.equal(gpuSeries(b, uuids[1]).length, 2 * gpuSeries(a, uuids[1]).length);
  assert.equal(gpuSeries(b, uuids[0]).length, gpuSeries(a, uuids[0]).length);
  assert.equal(gpuSeries(b, uuids[2]).length, gpuSeries(a, uuids[2]).length);
  assert.equal(b.length - a.length, gpuSeries(a, uuids[1]).length);
  assert.match(row('--kubelet.enrich-labels'), /adds a copy of every per-GPU series per extra pod on a time-shared GPU/);
});

test('--kubelet.process-attribution adds one ds_gpu_process_info per GPU process', { skip: fakeNvmlUnavailable() }, async () => {
  const proc = mkdtempSync(join(tmpdir(), 'ds-trim-proc-'));
  try {
    const uid = (c: string) => `${c.repeat(8)}-0000-4000-8000-${c.repeat(12)}`;
    const cgroup = (podUid: string, c: string) => `0::/kubepods.slice/kubepods-pod${podUid.replace(/-/g, '_')}.slice/cri-containerd-${c.repeat(64)}.scope\n`;
    for (const [pid, text] of [['4242', cgroup(uid('a'), 'a')], ['777', cgroup(uid('a'), 'b')], ['self', cgroup(uid('e'), 'e')]]) {
      mkdirSync(join(proc, pid), { recursive: true });
      writeFileSync(join(proc, pid, 'cgroup'), text);
    }
    const config = { gpus: 1, 'gpu.0.procs': '4242:2000000000,777:1000000000' };
    const args = ['--nvml.process-memory', '--collector.kubelet', `--kubelet.pod-resources-socket=${kubelet.socket}`, `--kubelet.proc-path=${proc}`, '--kubelet.interval=1s'];
    const plain = await fakeNvmlApp(open, config, [], args);
    const uuid = plain.built.deps.gpus.devices[0].uuid;
    kubelet.answer({ pod_resources: [fakePod('ml', 'train', { main: [uuid] })] });
    const attributed = await fakeNvmlApp(open, config, [], [...args, '--kubelet.process-attribution']);
    // The kubelet collector reads the processes of the GPU collector's previous sample.
    for (const a of [plain, attributed]) {
      await a.tick();
      await a.tick();
    }
    const [a, b] = [await lines(plain.built), await lines(attributed.built)];
    const keys = new Set(a.map((l) => l.replace(/ \S+$/, '')));
    const added = b.filter((l) => !keys.has(l.replace(/ \S+$/, '')));
    assert.deepEqual(added.map((l) => /^(\w+)\{.*pid="(\d+)",namespace="([^"]*)",pod="([^"]*)"/.exec(l)?.slice(1).join(' ')).sort(), [
      'ds_gpu_process_info 4242 ml train',
      'ds_gpu_process_info 777 ml train',
    ]);
    assert.match(row('--kubelet.process-attribution'), /adds one `ds_gpu_process_info` per GPU process/);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});
