import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { testApp } from '../helpers/app.js';
import { buildFakeNvml, fakeNvmlUnavailable, writeFakeNvmlConfig } from '../helpers/fake-nvml.js';
import { fakeNvmlControl } from '../helpers/fake-nvml-control.js';
import { type FakeKubelet, fakePod, startFakeKubelet } from '../helpers/fake-kubelet.js';
import { snapshotOf } from '../../src/http/snapshot.js';

// --kubelet.process-attribution end to end: processes from the fake NVML library, their
// cgroups from a fake /proc, their pods from the fake kubelet, through app.inject('/metrics').

const skip = fakeNvmlUnavailable();
const uuid = (i: number) => `GPU-fake0000-0000-0000-0000-00000000000${i}`;
const UID_TRAIN = '11111111-2222-4333-8444-555555555555';
const UID_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const UID_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const cid = (c: string) => c.repeat(64).slice(0, 64);
const v2 = (uid: string, id: string) => `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-${id}.scope\n`;
const v1 = (uid: string, id: string) => `12:memory:/kubepods/besteffort/pod${uid}/${id}\n1:name=systemd:/kubepods/besteffort/pod${uid}/${id}\n`;

let kubelet: FakeKubelet;
let proc: string;
const open: Array<{ close(): Promise<void> }> = [];
before(async () => {
  kubelet = await startFakeKubelet();
  proc = mkdtempSync(join(tmpdir(), 'dsx-fake-proc-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});
after(async () => {
  await kubelet?.close();
  rmSync(proc, { recursive: true, force: true });
});

function writeProc(pid: number | 'self', text: string): void {
  mkdirSync(join(proc, String(pid)), { recursive: true });
  writeFileSync(join(proc, String(pid), 'cgroup'), text);
}

/** `pid namespace/pod/container pod_uid container_id` of each ds_gpu_process_info line. */
function processInfo(body: string): string[] {
  return body
    .split('\n')
    .filter((l) => l.startsWith('ds_gpu_process_info{'))
    .map((l) => {
      const m = /gpu="(\d)",uuid="([^"]*)",pid="(\d+)",namespace="([^"]*)",pod="([^"]*)",container="([^"]*)",pod_uid="([^"]*)",container_id="([^"]*)"\} 1$/.exec(l);
      assert.ok(m, l);
      assert.equal(m[2], uuid(Number(m[1])));
      return `${m[1]} ${m[3]} ${m[4]}/${m[5]}/${m[6]} ${m[7] || '-'} ${m[8] ? m[8].slice(0, 4) : '-'}`;
    })
    .sort();
}

test('GPU processes get their pods: exclusive GPU, time-sliced GPU, host process, exited process', { skip }, async () => {
  const lib = buildFakeNvml();
  // GPU 0: train alone. GPU 1: nb-a and nb-b share it. GPU 2: nb-a alone, plus a host process
  // and a process that exits between NVML's list and the read of its cgroup.
  writeFakeNvmlConfig({ gpus: 3, 'gpu.0.procs': '1000:2000000000', 'gpu.1.procs': '2001:3000000000,2002:1000000000', 'gpu.2.procs': '3001:500000000,3002:100000000,3003:7000000' });
  const ctl = fakeNvmlControl(lib);
  let nowUs = 1_800_000_000_000_000;
  ctl.setTimeUs(nowUs);
  writeProc(1000, v2(UID_TRAIN, cid('1')));
  writeProc(2001, v1(UID_A, cid('a')));
  writeProc(2002, v2(UID_B, cid('b')));
  writeProc(3001, v1(UID_A, cid('a')));
  writeProc(3002, '0::/system.slice/nvidia-persistenced.service\n');
  // 3003 has no /proc entry: it exited.
  writeProc('self', '0::/kubepods.slice/kubepods-pod99999999_0000_4000_8000_000000000099.slice/cri-containerd-' + cid('e') + '.scope\n');
  kubelet.answer({
    pod_resources: [
      fakePod('ml', 'train', { trainer: [uuid(0)] }),
      fakePod('lab', 'nb-a', { jupyter: [`${uuid(1)}::0`, uuid(2)] }),
      fakePod('lab', 'nb-b', { jupyter: [`${uuid(1)}::1`] }),
    ],
  });
  const built = await testApp(
    ['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim', '--nvml.process-memory', '--collector.kubelet', '--kubelet.process-attribution', `--kubelet.proc-path=${proc}`, `--kubelet.pod-resources-socket=${kubelet.socket}`, '--kubelet.interval=1s'],
    { now: () => Math.floor(nowUs / 1000) },
  );
  open.push(built);
  const round = async () => {
    nowUs += 1_000_000;
    ctl.setTimeUs(nowUs);
    // The kubelet collector reads the processes of the GPU collector's previous sample.
    await built.scheduler.sampleAll();
    await built.scheduler.sampleAll();
    return (await built.app.inject({ url: '/metrics' })).body;
  };
  let body = await round();
  assert.deepEqual(processInfo(body), [
    '0 1000 ml/train/trainer 11111111-2222-4333-8444-555555555555 1111',
    '1 2001 lab/nb-a/jupyter aaaaaaaa-0000-4000-8000-00000000000a aaaa',
    '1 2002 lab/nb-b/jupyter bbbbbbbb-0000-4000-8000-00000000000b bbbb',
    '2 3001 lab/nb-a/jupyter aaaaaaaa-0000-4000-8000-00000000000a aaaa',
    '2 3002 // - -',
    '2 3003 // - -',
  ]);
  assert.match(body, /ds_exporter_collector_success\{collector="kubelet"\} 1/);
  // Every process series has its info series: the documented join loses nothing.
  const pids = body.split('\n').filter((l) => l.startsWith('ds_gpu_process_memory_used_bytes{')).map((l) => /pid="(\d+)"/.exec(l)![1]).sort();
  assert.deepEqual(pids, ['1000', '2001', '2002', '3001', '3002', '3003']);

  // The training process exits between NVML's list and /proc: unresolved, nothing fails.
  rmSync(join(proc, '1000'), { recursive: true });
  body = await round();
  assert.ok(processInfo(body).includes('0 1000 // - -'), processInfo(body).join('\n'));
  assert.ok(processInfo(body).includes('1 2002 lab/nb-b/jupyter bbbbbbbb-0000-4000-8000-00000000000b bbbb'));
  assert.match(body, /ds_exporter_collector_success\{collector="kubelet"\} 1/);

  // nb-a's /proc is gone too (no hostPID looks like this for every process): nb-b's is still
  // the only UID left on GPU 1, but nb-a and nb-b both hold GPU 1: b is learned from before.
  rmSync(join(proc, '2001'), { recursive: true });
  rmSync(join(proc, '3001'), { recursive: true });
  body = await round();
  assert.deepEqual(processInfo(body), ['0 1000 // - -', '1 2001 // - -', '1 2002 lab/nb-b/jupyter bbbbbbbb-0000-4000-8000-00000000000b bbbb', '2 3001 // - -', '2 3002 // - -', '2 3003 // - -']);
});

test('a process whose cgroup names the exporter\'s own pod is a pid from another pid namespace: unresolved', { skip }, async () => {
  const lib = buildFakeNvml();
  writeFakeNvmlConfig({ gpus: 1, 'gpu.0.procs': '7:1000' });
  const ownUid = '99999999-0000-4000-8000-000000000099';
  const dir = mkdtempSync(join(tmpdir(), 'dsx-fake-proc-'));
  for (const pid of ['self', '7']) {
    mkdirSync(join(dir, pid));
    writeFileSync(join(dir, pid, 'cgroup'), v2(ownUid, cid('e')));
  }
  kubelet.answer({ pod_resources: [fakePod('ml', 'train', { trainer: [uuid(0)] })] });
  const built = await testApp(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim', '--nvml.process-memory', '--collector.kubelet', '--kubelet.process-attribution', `--kubelet.proc-path=${dir}`, `--kubelet.pod-resources-socket=${kubelet.socket}`]);
  open.push(built);
  await built.scheduler.sampleAll();
  await built.scheduler.sampleAll();
  assert.deepEqual(processInfo((await built.app.inject({ url: '/metrics' })).body), ['0 7 // - -']);
  rmSync(dir, { recursive: true, force: true });
});

test('no hostPID (no GPU process in /proc): every process unresolved, one warning in the log', { skip }, async () => {
  const lib = buildFakeNvml();
  writeFakeNvmlConfig({ gpus: 2, 'gpu.0.procs': '5000:1000', 'gpu.1.procs': '5001:1000,5002:1000' });
  const empty = mkdtempSync(join(tmpdir(), 'dsx-fake-proc-'));
  kubelet.answer({ pod_resources: [fakePod('ml', 'train', { trainer: [uuid(0), uuid(1)] })] });
  const lines: string[] = [];
  const { buildApp } = await import('../../src/app.js');
  const { createLogger } = await import('../../src/core/logger.js');
  const config = loadConfig(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim', '--nvml.process-memory', '--collector.kubelet', '--kubelet.process-attribution', `--kubelet.proc-path=${empty}`, `--kubelet.pod-resources-socket=${kubelet.socket}`], {});
  const built = await buildApp(config, { logger: createLogger('info', (l) => lines.push(l)), processMetrics: false, minRenderIntervalMs: 0 });
  open.push(built);
  for (let i = 0; i < 3; i++) await built.scheduler.sampleAll();
  assert.deepEqual(processInfo((await built.app.inject({ url: '/metrics' })).body), ['0 5000 // - -', '1 5001 // - -', '1 5002 // - -']);
  const warnings = lines.filter((l) => /level=warn.*process attribution.*hostPID/.test(l));
  assert.equal(warnings.length, 1, lines.join('\n'));
  rmSync(empty, { recursive: true, force: true });
});

test('--kubelet.process-attribution needs --nvml.process-memory and --collector.kubelet, named in one line', () => {
  const err = (argv: string[]) => {
    try {
      loadConfig(argv, {});
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.message;
    }
    return undefined;
  };
  assert.match(err(['--kubelet.process-attribution'])!, /^--kubelet\.process-attribution needs --collector\.kubelet and --nvml\.process-memory/);
  assert.match(err(['--kubelet.process-attribution', '--collector.kubelet'])!, /^--kubelet\.process-attribution needs --nvml\.process-memory \(/);
  assert.match(err(['--kubelet.process-attribution', '--nvml.process-memory'])!, /^--kubelet\.process-attribution needs --collector\.kubelet \(/);
  assert.equal(err(['--kubelet.process-attribution', '--nvml.process-memory', '--collector.kubelet']), undefined);
  for (const m of [err(['--kubelet.process-attribution'])!]) assert.equal(m.split('\n').length, 1);
});

test('without the flag, no ds_gpu_process_info and no /proc read', { skip }, async () => {
  const lib = buildFakeNvml();
  writeFakeNvmlConfig({ gpus: 1, 'gpu.0.procs': '1000:1000' });
  kubelet.answer({ pod_resources: [fakePod('ml', 'train', { trainer: [uuid(0)] })] });
  const built = await testApp(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim', '--nvml.process-memory', '--collector.kubelet', '--kubelet.proc-path=/nonexistent', `--kubelet.pod-resources-socket=${kubelet.socket}`]);
  open.push(built);
  await built.scheduler.sampleAll();
  await built.scheduler.sampleAll();
  const body = (await built.app.inject({ url: '/metrics' })).body;
  assert.doesNotMatch(body, /ds_gpu_process_info/);
  assert.match(body, /ds_gpu_process_memory_used_bytes\{gpu="0",[^}]*pid="1000"\} 1000/);
});

test('--simulate: the serving process of every GPU has its ds_gpu_process_info, in the pod holding the GPU', async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=4']);
  open.push(built);
  await built.scheduler.sampleAll();
  const m = snapshotOf(built.store).metrics;
  const procs = m.ds_gpu_process_memory_used_bytes.map((s) => `${s.labels.uuid} ${s.labels.pid}`).sort();
  assert.equal(procs.length, 4);
  assert.deepEqual(m.ds_gpu_process_info.map((s) => `${s.labels.uuid} ${s.labels.pid}`).sort(), procs);
  for (const s of m.ds_gpu_process_info) {
    const a = m.ds_gpu_allocation_info.find((x) => x.labels.uuid === s.labels.uuid)!;
    assert.deepEqual([s.labels.namespace, s.labels.pod, s.labels.container], [a.labels.namespace, a.labels.pod, a.labels.container]);
    assert.match(s.labels.pod_uid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(s.labels.container_id, /^[0-9a-f]{64}$/);
  }
  // One pod, one UID; two pods, two UIDs.
  const uidOf = new Map(m.ds_gpu_process_info.map((s) => [s.labels.pod, s.labels.pod_uid]));
  assert.equal(new Set(uidOf.values()).size, uidOf.size);
  assert.equal(uidOf.size, 2);
});
