import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gpuAllocations, resolveDevice } from '../../src/collectors/kubelet/match.js';
import { type FakeKubelet, fakePod, startFakeKubelet } from '../helpers/fake-kubelet.js';
import { testApp } from '../helpers/app.js';

const gpus = [
  { index: 0, uuid: 'GPU-aaaa' },
  { index: 1, uuid: 'GPU-bbbb' },
];

test('device ids by UUID, time-slicing replica, index and MIG UUID', () => {
  assert.deepEqual(resolveDevice('GPU-aaaa', gpus), { gpu: '0', uuid: 'GPU-aaaa' });
  assert.deepEqual(resolveDevice('GPU-bbbb::3', gpus), { gpu: '1', uuid: 'GPU-bbbb' });
  assert.deepEqual(resolveDevice('nvidia1', gpus), { gpu: '1', uuid: 'GPU-bbbb' });
  assert.deepEqual(resolveDevice('0', gpus), { gpu: '0', uuid: 'GPU-aaaa' });
  assert.deepEqual(resolveDevice('MIG-1234', gpus), { gpu: '', uuid: 'MIG-1234' });
  assert.deepEqual(resolveDevice('nvidia7', gpus), { gpu: '7', uuid: '' });
});

test('only GPU resources count, and replicas of one GPU in one container count once', () => {
  const row = (resourceName: string, deviceId: string, pod = 'p') => ({ namespace: 'ns', pod, container: 'c', resourceName, deviceId });
  const a = gpuAllocations([row('nvidia.com/gpu', 'GPU-aaaa::0'), row('nvidia.com/gpu', 'GPU-aaaa::1'), row('cpu', '3'), row('nvidia.com/mig-1g.10gb', 'MIG-x'), row('example.com/gpu', 'GPU-bbbb')], gpus, ['example.com/gpu']);
  assert.deepEqual(a.map((x) => `${x.gpu}/${x.uuid}`).sort(), ['/MIG-x', '0/GPU-aaaa', '1/GPU-bbbb']);
});

let kubelet: FakeKubelet;
before(async () => {
  kubelet = await startFakeKubelet();
});
after(() => kubelet?.close());

const pod = (name: string, devices: string[]) => fakePod('inference', name, { vllm: devices });

test('allocation series follow pods as they come and go; the GPUs come from the GPU collector', async () => {
  let responses: object[] = [{ pod_resources: [pod('a', ['GPU-0'])] }, { pod_resources: [pod('a', ['GPU-0']), pod('b', ['nvidia1'])] }, { pod_resources: [pod('b', ['nvidia1'])] }];
  const first = kubelet.calls;
  kubelet.answer((call) => responses[Math.min(call - first, responses.length - 1)]);
  const built = await testApp(['--gpu.source=simulated', '--simulate.gpus=2', '--collector.kubelet', `--kubelet.pod-resources-socket=${kubelet.socket}`]);
  const uuids = () => built.deps.gpus.devices;
  await built.scheduler.sampleAll();
  // The fake kubelet names GPU 0 by the simulated UUID from the second call on.
  const u0 = uuids()![0].uuid;
  responses = responses.map((r) => JSON.parse(JSON.stringify(r).replaceAll('GPU-0', u0)));
  const metrics = async () => (await built.app.inject({ url: '/metrics' })).body.split('\n').filter((l) => l.startsWith('ds_gpu_allocation_info{'));
  await built.scheduler.sampleAll();
  let lines = await metrics();
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.ok(lines.some((l) => l.includes(`gpu="0",uuid="${u0}",namespace="inference",pod="a",container="vllm"`)), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes(`gpu="1",uuid="${uuids()![1].uuid}",namespace="inference",pod="b"`)), lines.join('\n'));
  await built.scheduler.sampleAll();
  lines = await metrics();
  assert.equal(lines.length, 1, lines.join("\n") + ` calls=${kubelet.calls}`);
  assert.match(lines[0], /pod="b"/);
  assert.match((await built.app.inject({ url: '/metrics' })).body, /ds_exporter_collector_success\{collector="kubelet"\} 1/);
  await built.close();
});

test('a missing socket fails the kubelet collector visibly and nothing else', async () => {
  const built = await testApp(['--gpu.source=simulated', '--simulate.gpus=1', '--collector.kubelet', `--kubelet.pod-resources-socket=${kubelet.path('missing.sock')}`, '--kubelet.timeout=300ms']);
  await built.scheduler.sampleAll();
  const body = (await built.app.inject({ url: '/metrics' })).body;
  assert.match(body, /ds_exporter_collector_success\{collector="kubelet"\} 0/);
  assert.match(body, /ds_exporter_collector_success\{collector="gpu"\} 1/);
  assert.doesNotMatch(body, /ds_gpu_allocation_info\{/);
  await built.close();
});

test('a socket that is not a kubelet (garbage server) fails visibly', async () => {
  const { createServer } = await import('node:net');
  const bad = kubelet.path('bad.sock');
  const srv = createServer((c) => c.end('HTTP/1.1 400 nope\r\n\r\n')).listen(bad);
  const built = await testApp(['--gpu.source=simulated', '--simulate.gpus=1', '--collector.kubelet', `--kubelet.pod-resources-socket=${bad}`, '--kubelet.timeout=500ms']);
  await built.scheduler.sampleAll();
  assert.match((await built.app.inject({ url: '/metrics' })).body, /ds_exporter_collector_success\{collector="kubelet"\} 0/);
  await built.close();
  srv.close();
});
