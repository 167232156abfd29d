import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { attributeProcesses, type GpuProcess, type Learned } from '../../src/collectors/kubelet/attribute.js';
import type { GpuAllocation } from '../../src/collectors/kubelet/match.js';

// Which pod a GPU process belongs to, from its cgroup's pod UID and the kubelet's
// allocations (which name pods, not UIDs).

const GPUS = [
  { gpu: '0', uuid: 'GPU-0', migUuids: [] },
  { gpu: '1', uuid: 'GPU-1', migUuids: [] },
  { gpu: '2', uuid: 'GPU-2', migUuids: ['MIG-2a', 'MIG-2b'] },
];
const alloc = (uuid: string, pod: string, container = 'main', gpu = ''): GpuAllocation => ({ gpu, uuid, namespace: 'ns', pod, container });
const proc = (uuid: string, pid: number, podUid = '', containerId = ''): GpuProcess => ({ gpu: uuid.slice(4), uuid, pid, podUid, containerId });
/** `pid:namespace/pod/container` for each row, sorted. */
const who = (r: ReturnType<typeof attributeProcesses>) => r.rows.map((x) => `${x.pid}:${x.namespace}/${x.pod}/${x.container}`).sort();

test('one holder: the process is its container; the UID is learned', () => {
  const r = attributeProcesses([proc('GPU-0', 10, 'uid-a', 'c-a')], GPUS, [alloc('GPU-0', 'a')]);
  assert.deepEqual(r.rows, [{ gpu: '0', uuid: 'GPU-0', pid: '10', namespace: 'ns', pod: 'a', container: 'main', pod_uid: 'uid-a', container_id: 'c-a' }]);
  assert.deepEqual([...r.learned.pods], [['uid-a', { namespace: 'ns', pod: 'a' }]]);
  assert.deepEqual([...r.learned.containers], [['c-a', 'main']]);
});

test('time-sliced GPU: a UID learned on an exclusive GPU, the other by elimination', () => {
  // a holds GPU 0 alone and shares GPU 1 with b.
  const allocations = [alloc('GPU-0', 'a'), alloc('GPU-1', 'a'), alloc('GPU-1', 'b', 'side')];
  const r = attributeProcesses([proc('GPU-0', 10, 'uid-a'), proc('GPU-1', 11, 'uid-a'), proc('GPU-1', 20, 'uid-b')], GPUS, allocations);
  assert.deepEqual(who(r), ['10:ns/a/main', '11:ns/a/main', '20:ns/b/side']);
});

test('time-sliced GPU with nothing to tell the pods apart: unresolved, UIDs kept', () => {
  const allocations = [alloc('GPU-1', 'a'), alloc('GPU-1', 'b')];
  const r = attributeProcesses([proc('GPU-1', 10, 'uid-a', 'c-a'), proc('GPU-1', 20, 'uid-b', 'c-b')], GPUS, allocations);
  assert.deepEqual(who(r), ['10://', '20://']);
  assert.deepEqual(r.rows.map((x) => [x.pod_uid, x.container_id]), [['uid-a', 'c-a'], ['uid-b', 'c-b']]);
  assert.equal(r.learned.pods.size, 0);
});

test('a UID learned while its pod was alone holds when a second pod starts sharing the GPU', () => {
  const one = attributeProcesses([proc('GPU-1', 10, 'uid-a')], GPUS, [alloc('GPU-1', 'a')]);
  const two = attributeProcesses([proc('GPU-1', 10, 'uid-a'), proc('GPU-1', 20, 'uid-b')], GPUS, [alloc('GPU-1', 'a'), alloc('GPU-1', 'b')], one.learned);
  assert.deepEqual(who(two), ['10:ns/a/main', '20:ns/b/main']);
  // Without the earlier round, nothing can be told.
  assert.deepEqual(who(attributeProcesses([proc('GPU-1', 10, 'uid-a'), proc('GPU-1', 20, 'uid-b')], GPUS, [alloc('GPU-1', 'a'), alloc('GPU-1', 'b')])), ['10://', '20://']);
});

test('what was learned is dropped when the UID has no process left or the pod is gone', () => {
  const learned: Learned = { pods: new Map([['uid-old', { namespace: 'ns', pod: 'a' }], ['uid-gone', { namespace: 'ns', pod: 'z' }]]), containers: new Map([['c-old', 'main']]) };
  // Pod a was recreated under the same name with a new UID.
  const r = attributeProcesses([proc('GPU-0', 10, 'uid-new', 'c-new')], GPUS, [alloc('GPU-0', 'a')], learned);
  assert.deepEqual(who(r), ['10:ns/a/main']);
  assert.deepEqual([...r.learned.pods.keys()], ['uid-new']);
  assert.deepEqual([...r.learned.containers.keys()], ['c-new']);
});

test('a process without a pod UID (host process, unreadable /proc) is never attributed', () => {
  const r = attributeProcesses([proc('GPU-0', 10), proc('GPU-0', 11, 'uid-a')], GPUS, [alloc('GPU-0', 'a')]);
  assert.deepEqual(who(r), ['10://', '11:ns/a/main']);
});

test('a process of another pod on an exclusively held GPU: neither is trusted', () => {
  // Two UIDs on GPU 0, held by a alone: one of them does not belong there, and nothing says which.
  const r = attributeProcesses([proc('GPU-0', 10, 'uid-a'), proc('GPU-0', 11, 'uid-x')], GPUS, [alloc('GPU-0', 'a')]);
  assert.deepEqual(who(r), ['10://', '11://']);
});

test('container: the only one of the pod on the GPU, else one learned from the container ID, else empty', () => {
  // Pod a has two containers sharing GPU 1 (time-slicing replicas); c1 holds GPU 0 alone.
  const allocations = [alloc('GPU-0', 'a', 'c1'), alloc('GPU-1', 'a', 'c1'), alloc('GPU-1', 'a', 'c2')];
  const r = attributeProcesses([proc('GPU-0', 10, 'uid-a', 'id-1'), proc('GPU-1', 11, 'uid-a', 'id-1'), proc('GPU-1', 12, 'uid-a', 'id-2')], GPUS, allocations);
  assert.deepEqual(who(r), ['10:ns/a/c1', '11:ns/a/c1', '12:ns/a/']);
});

test('MIG: a pod holding a MIG device holds its GPU; two pods on two MIG devices are told apart only by elimination', () => {
  const alone = attributeProcesses([proc('GPU-2', 10, 'uid-a')], GPUS, [alloc('MIG-2a', 'a')]);
  assert.deepEqual(who(alone), ['10:ns/a/main']);
  const both = attributeProcesses([proc('GPU-2', 10, 'uid-a'), proc('GPU-2', 20, 'uid-b')], GPUS, [alloc('MIG-2a', 'a'), alloc('MIG-2b', 'b')]);
  assert.deepEqual(who(both), ['10://', '20://']);
  const withHint = attributeProcesses([proc('GPU-0', 9, 'uid-a'), proc('GPU-2', 10, 'uid-a'), proc('GPU-2', 20, 'uid-b')], GPUS, [alloc('GPU-0', 'a'), alloc('MIG-2a', 'a'), alloc('MIG-2b', 'b')]);
  assert.deepEqual(who(withHint), ['10:ns/a/main', '20:ns/b/main', '9:ns/a/main']);
});

test('a process of a known pod on a GPU the pod was not given is still that pod\'s process', () => {
  const r = attributeProcesses([proc('GPU-0', 10, 'uid-a'), proc('GPU-1', 11, 'uid-a')], GPUS, [alloc('GPU-0', 'a')]);
  assert.deepEqual(who(r), ['10:ns/a/main', '11:ns/a/']);
});

test('a device the kubelet named by index counts for that GPU', () => {
  assert.deepEqual(who(attributeProcesses([proc('GPU-1', 10, 'uid-a')], GPUS, [alloc('', 'a', 'main', '1')])), ['10:ns/a/main']);
});

test('fuzz: a pod only with evidence, never two pods for one UID or two UIDs for one pod, independent of order', () => {
  const pods = ['a', 'b', 'c', 'd'];
  const arb = fc.record({
    allocations: fc.array(fc.record({ g: fc.constantFrom('GPU-0', 'GPU-1', 'GPU-2', 'MIG-2a'), pod: fc.constantFrom(...pods), c: fc.constantFrom('x', 'y') }), { maxLength: 8 }),
    processes: fc.array(fc.record({ g: fc.constantFrom('GPU-0', 'GPU-1', 'GPU-2'), uid: fc.constantFrom('', 'u1', 'u2', 'u3', 'u4', 'u5'), cid: fc.constantFrom('', 'k1', 'k2') }), { maxLength: 10 }),
  });
  fc.assert(
    fc.property(arb, fc.nat(), ({ allocations, processes }, seed) => {
      const al = allocations.map((a) => alloc(a.g, a.pod, a.c));
      const ps = processes.map((p, i) => proc(p.g, 100 + i, p.uid, p.cid));
      const r = attributeProcesses(ps, GPUS, al);
      const podOfUid = new Map<string, string>();
      for (const row of r.rows) {
        if (!row.pod) {
          assert.equal(row.container, '');
          continue;
        }
        assert.notEqual(row.pod_uid, '', 'attributed without a pod UID');
        // Evidence: the pod holds a GPU on which a process of this UID runs (the process itself
        // may use a GPU its pod was not given; it is still that pod's process).
        const devices = (uuid: string) => (uuid === 'GPU-2' ? ['GPU-2', 'MIG-2a'] : [uuid]);
        const uidGpus = ps.filter((p) => p.podUid === row.pod_uid).map((p) => p.uuid);
        assert.ok(al.some((a) => a.pod === row.pod && uidGpus.some((g) => devices(g).includes(a.uuid))), `pod ${row.pod} holds no GPU of ${row.pod_uid}`);
        if (row.container) assert.ok(al.some((a) => a.pod === row.pod && a.container === row.container));
        assert.equal(podOfUid.get(row.pod_uid) ?? row.pod, row.pod, 'one UID, one pod');
        podOfUid.set(row.pod_uid, row.pod);
      }
      assert.equal(new Set(podOfUid.values()).size, podOfUid.size, 'one pod, one UID');
      // The same input in another order gives the same attribution.
      const shuffled = [...ps].sort((x, y) => ((x.pid * 7919 + seed) % 101) - ((y.pid * 7919 + seed) % 101));
      assert.deepEqual(who(attributeProcesses(shuffled, GPUS, [...al].reverse())), who(r));
    }),
    { numRuns: 10_000 },
  );
});
