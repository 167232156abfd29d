import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { CGROUP_MAX_BYTES, parseCgroup, readProcCgroup } from '../../src/collectors/kubelet/cgroup.js';

// /proc/<pid>/cgroup → pod UID and container ID, on literals of every cgroup layout
// Kubernetes nodes use (v1, v2, hybrid; systemd and cgroupfs drivers; containerd, CRI-O,
// Docker), on processes outside pods, on garbage, and fuzzed.

const UID = '8a2f1f2e-1c1b-4c3e-9d1a-6c2b7c3f0a11';
const U_ = UID.replace(/-/g, '_');
const CID = 'd2c9a8f6e5b4a3928170f6e5d4c3b2a19087f6e5d4c3b2a1908f7e6d5c4b3a29';
const want = (containerId = CID, podUid = UID) => ({ podUid, containerId });

const V1_CGROUPFS = [
  `12:memory:/kubepods/burstable/pod${UID}/${CID}`,
  `11:cpu,cpuacct:/kubepods/burstable/pod${UID}/${CID}`,
  `10:devices:/kubepods/burstable/pod${UID}/${CID}`,
  `9:pids:/kubepods/burstable/pod${UID}/${CID}`,
  `1:name=systemd:/kubepods/burstable/pod${UID}/${CID}`,
].join('\n') + '\n';

const LITERALS: Array<[string, string, ReturnType<typeof want> | undefined]> = [
  ['v1 cgroupfs burstable (containerd or Docker)', V1_CGROUPFS, want()],
  ['v1 cgroupfs besteffort', `4:memory:/kubepods/besteffort/pod${UID}/${CID}\n`, want()],
  ['v1 cgroupfs guaranteed (no QoS level)', `4:memory:/kubepods/pod${UID}/${CID}\n`, want()],
  ['v1 systemd containerd', `12:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/cri-containerd-${CID}.scope\n1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/cri-containerd-${CID}.scope\n`, want()],
  ['v2 systemd containerd burstable', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/cri-containerd-${CID}.scope\n`, want()],
  ['v2 systemd containerd besteffort', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope\n`, want()],
  ['v2 systemd containerd guaranteed', `0::/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope\n`, want()],
  ['v2 systemd CRI-O', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-${CID}.scope\n`, want()],
  ['v2 systemd Docker (cri-dockerd)', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/docker-${CID}.scope\n`, want()],
  ['v2 cgroupfs containerd', `0::/kubepods/burstable/pod${UID}/${CID}\n`, want()],
  ['v2 cgroupfs CRI-O', `0::/kubepods/besteffort/pod${UID}/crio-${CID}\n`, want()],
  ['v2 seen from another cgroup namespace', `0::/../../kubepods-burstable-pod${U_}.slice/cri-containerd-${CID}.scope\n`, want()],
  ['v2 nested cluster (kind: kubelet-kubepods-…)', `0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope\n`, want()],
  ['v2 process in a sub-cgroup of its container', `0::/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope/init.scope\n`, want()],
  ['v2 hybrid: v1 lines then the unified line', `5:memory:/kubepods/burstable/pod${UID}/${CID}\n0::/\n`, want()],
  ['upper-case hex and no trailing newline', `0::/kubepods/burstable/pod${UID.toUpperCase()}/${CID.toUpperCase()}`, want()],
  ['static pod (32-hex UID from the manifest hash)', `0::/kubepods/burstable/pod5d1c8e2b3a4f56789abcdef012345678/${CID}\n`, want(CID, '5d1c8e2b3a4f56789abcdef012345678')],
  ['CRI-O conmon: in the pod, no container', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-conmon-${CID}.scope\n`, want('')],
  ['pod-level cgroup (no container below)', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice\n`, want('')],
  ['a v1 line with the container wins over one with the pod only', `3:cpu:/kubepods/burstable/pod${UID}\n2:memory:/kubepods/burstable/pod${UID}/${CID}\n`, want()],
  ['host process (systemd service)', '0::/system.slice/nvidia-persistenced.service\n', undefined],
  ['host user session', '0::/user.slice/user-1000.slice/session-3.scope\n', undefined],
  ['Docker outside Kubernetes (systemd)', `0::/system.slice/docker-${CID}.scope\n`, undefined],
  ['Docker outside Kubernetes (v1 cgroupfs)', `12:memory:/docker/${CID}\n`, undefined],
  ['root cgroup', '0::/\n', undefined],
  ['pod-like directory outside kubepods', `0::/machine/pod${UID}/${CID}\n`, undefined],
  ['not a UID', `0::/kubepods/burstable/podnot-a-uid/${CID}\n`, undefined],
  ['UID one digit short', `0::/kubepods/burstable/pod${UID.slice(1)}/${CID}\n`, undefined],
  ['slice naming a pod outside kubepods', `0::/kubepods.slice/machine-pod${U_}.slice/x.scope\n`, undefined],
  ['empty', '', undefined],
  ['no hierarchy id', `::/kubepods/burstable/pod${UID}/${CID}\n`, undefined],
  ['text, not a cgroup file', 'hello world\nno colons here\n', undefined],
  ['colons only', ':::::\n::\n', undefined],
];

test('cgroup literals: v1, v2, systemd and cgroupfs, each runtime, outside pods, garbage', () => {
  for (const [what, text, expected] of LITERALS) assert.deepEqual(parseCgroup(text), expected, what);
});

test('huge input is parsed in linear time', () => {
  const inputs = [
    `0::/${'a/'.repeat(500_000)}`,
    '0:'.repeat(500_000),
    `${'1:x:/kubepods/burstable/podz\n'.repeat(40_000)}0::/kubepods/pod${UID}/${CID}\n`,
    ':'.repeat(1_000_000),
    '\n'.repeat(1_000_000),
    `0::/kubepods/${'pod'.repeat(300_000)}`,
    `0::/${'kubepods-'.repeat(100_000)}pod${U_}.slice/x`,
  ];
  const t0 = performance.now();
  const results = inputs.map((t) => parseCgroup(t));
  const ms = performance.now() - t0;
  assert.deepEqual(results, [undefined, undefined, want(), undefined, undefined, undefined, undefined]);
  assert.ok(ms < 5000, `${ms.toFixed(0)} ms for ~6 MB`);
});

const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const noPodSegment = fc.stringMatching(/^[a-oq-z0-9._@-]{1,24}$/);

test('fuzz: any text parses without throwing, to undefined or a well-formed identity', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: fc.constantFrom(...'0:/\n-_.kubepods-slice-scope-crio-docker-8a2f1c'), maxLength: 400 })), (text) => {
      const r = parseCgroup(text);
      if (r === undefined) return;
      assert.match(r.podUid, /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/);
      assert.match(r.containerId, /^([0-9a-f]{12,128})?$/);
    }),
    { numRuns: 10_000 },
  );
});

test('fuzz: every generated Kubernetes cgroup layout gives back its pod UID and container ID', () => {
  const layout = fc.record({
    uid: fc.uuid(),
    id: hex(64),
    qos: fc.constantFrom('', 'burstable', 'besteffort'),
    driver: fc.constantFrom('systemd', 'cgroupfs'),
    runtime: fc.constantFrom('containerd', 'crio', 'docker'),
    version: fc.constantFrom('v1', 'v2', 'hybrid'),
    upper: fc.boolean(),
    noise: fc.array(noPodSegment, { maxLength: 3 }),
  });
  fc.assert(
    fc.property(layout, ({ uid, id, qos, driver, runtime, version, upper, noise }) => {
      const u = upper ? uid.toUpperCase() : uid;
      const c = upper ? id.toUpperCase() : id;
      let path: string;
      if (driver === 'systemd') {
        const scope = `${runtime === 'containerd' ? 'cri-containerd' : runtime}-${c}.scope`;
        const u_ = u.replace(/-/g, '_');
        path = qos ? `/kubepods.slice/kubepods-${qos}.slice/kubepods-${qos}-pod${u_}.slice/${scope}` : `/kubepods.slice/kubepods-pod${u_}.slice/${scope}`;
      } else {
        path = `/kubepods${qos ? `/${qos}` : ''}/pod${u}/${runtime === 'crio' ? `crio-${c}` : c}`;
      }
      // Unrelated lines (other hierarchies, outside pods) around the pod's line.
      const others = noise.map((s, i) => `${20 + i}:cpuset:/${s}`);
      const lines = version === 'v1' ? [...others, `7:memory:${path}`, `1:name=systemd:${path}`] : version === 'v2' ? [...others, `0::${path}`] : [...others, `4:pids:${path}`, '0::/'];
      assert.deepEqual(parseCgroup(lines.join('\n') + '\n'), { podUid: uid.toLowerCase(), containerId: id });
    }),
    { numRuns: 10_000 },
  );
});

test('fuzz: paths outside Kubernetes pods give undefined', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(20), fc.constantFrom('', 'memory', 'cpu,cpuacct', 'name=systemd'), fc.array(noPodSegment, { maxLength: 8 })), { maxLength: 12 }), (rows) => {
      const text = rows.map(([h, c, segs]) => `${h}:${c}:/${segs.join('/')}`).join('\n');
      assert.equal(parseCgroup(text), undefined);
    }),
    { numRuns: 10_000 },
  );
});

const dir = mkdtempSync(join(tmpdir(), 'dsx-proc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('reading /proc/<pid>/cgroup: present, exited, capped, unreadable, never throws', async () => {
  mkdirSync(join(dir, '42'));
  writeFileSync(join(dir, '42', 'cgroup'), V1_CGROUPFS);
  mkdirSync(join(dir, '43'));
  writeFileSync(join(dir, '43', 'cgroup'), 'x'.repeat(3 * CGROUP_MAX_BYTES));
  mkdirSync(join(dir, '44', 'cgroup'), { recursive: true });
  mkdirSync(join(dir, 'self'));
  writeFileSync(join(dir, 'self', 'cgroup'), '0::/\n');
  assert.deepEqual(await readProcCgroup(dir, 42), { ok: true, text: V1_CGROUPFS });
  const exited = await readProcCgroup(dir, 99);
  assert.deepEqual(exited, { ok: false, gone: true, error: 'ENOENT' });
  const big = await readProcCgroup(dir, 43);
  assert.ok(big.ok && big.text.length === CGROUP_MAX_BYTES, 'capped');
  const small = await readProcCgroup(dir, 43, 10);
  assert.ok(small.ok && small.text === 'x'.repeat(10));
  const notFile = await readProcCgroup(dir, 44);
  assert.equal(notFile.ok, false);
  assert.equal(!notFile.ok && notFile.gone, false, 'a directory is not an exited process');
  assert.deepEqual(await readProcCgroup(dir, 'self'), { ok: true, text: '0::/\n' });
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.equal((await readProcCgroup(dir, bad)).ok, false);
  // The real /proc: this process is no pod (or is, when the tests run in one); either way it parses.
  const self = await readProcCgroup('/proc', process.pid);
  assert.ok(self.ok);
  parseCgroup(self.text);
});
