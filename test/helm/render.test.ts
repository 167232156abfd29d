import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { allFlags, loadConfig } from '../../src/config/config.js';
import { CHART, ROOT, TEST_IMAGE_VALUES, chartCopy, ciValuesFiles, helm, type K8s, needHelm, ofKind, one, readYamlFile, render, renderRaw, scenario } from './chart.js';

const ci = (name: string) => join(CHART, 'ci', `${name}-values.yaml`);
const NS = 'gpu-mon';

function daemonSet(objs: K8s[]): K8s {
  return one(objs, 'DaemonSet');
}
function container(objs: K8s[]): any {
  const c = daemonSet(objs).spec.template.spec.containers;
  assert.equal(c.length, 1);
  return c[0];
}
function args(objs: K8s[]): string[] {
  return container(objs).args as string[];
}
function env(objs: K8s[]): Record<string, any> {
  return Object.fromEntries((container(objs).env as any[]).map((e) => [e.name, e.value ?? e.valueFrom]));
}

/** Every rule of every file under files/alerts, as the chart ships them. */
async function alertFiles(dir = join(CHART, 'files/alerts')): Promise<{ groups: any[] }[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  return Promise.all(files.map(async (f) => parseYaml(await readFile(join(dir, f), 'utf8'))));
}
async function alertNames(dir?: string): Promise<string[]> {
  return (await alertFiles(dir)).flatMap((d) => d.groups.flatMap((g: any) => g.rules.filter((r: any) => r.alert).map((r: any) => r.alert as string)));
}
async function dashboardFiles(dir = join(CHART, 'files/dashboards')): Promise<Map<string, any>> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  return new Map(await Promise.all(files.map(async (f) => [f, JSON.parse(await readFile(join(dir, f), 'utf8'))] as [string, any])));
}
function renderedAlerts(pr: K8s): string[] {
  return pr.spec.groups.flatMap((g: any) => g.rules.filter((r: any) => r.alert).map((r: any) => r.alert));
}

describe('helm lint --strict', needHelm, () => {
  test('the chart with every ci values file', async () => {
    const files = await ciValuesFiles();
    assert.ok(files.length >= 6, `ci scenarios: ${files.map(scenario).join(', ')}`);
    for (const f of files) {
      const r = await helm(['lint', '--strict', CHART, '-f', TEST_IMAGE_VALUES, '-f', f]);
      assert.equal(r.code, 0, `${scenario(f)}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });
});

describe('helm package', needHelm, () => {
  test('the packaged chart holds the templates, schema, README and the generated files, not ci/', async () => {
    const out = await mkdtemp(join(tmpdir(), 'ds-package-'));
    try {
      const r = await helm(['package', CHART, '--destination', out]);
      assert.equal(r.code, 0, r.stderr);
      const tgz = (await readdir(out)).find((f) => f.endsWith('.tgz'))!;
      const list = execFileSync('tar', ['-tzf', join(out, tgz)], { encoding: 'utf8' }).split('\n');
      for (const f of ['Chart.yaml', 'values.yaml', 'values.schema.json', 'README.md', 'templates/NOTES.txt', 'templates/daemonset.yaml']) assert.ok(list.includes(`ds-exporter/${f}`), f);
      for (const f of await readdir(join(CHART, 'files/alerts'))) assert.ok(list.includes(`ds-exporter/files/alerts/${f}`), f);
      for (const f of await readdir(join(CHART, 'files/dashboards'))) assert.ok(list.includes(`ds-exporter/files/dashboards/${f}`), f);
      assert.deepEqual(list.filter((f) => f.startsWith('ds-exporter/ci/')), []);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

const K8S_STRICT = join(ROOT, '.test-tools/bin/k8s-strict');
const needStrict = !needHelm.skip && !existsSync(K8S_STRICT) ? { skip: 'k8s-strict not built: run scripts/setup-test-tools.sh (go build in test/tools/k8s-strict)' } : needHelm;

/** Decodes manifests strictly into the Kubernetes and Prometheus Operator Go types. */
function strictDecode(manifests: string): Promise<{ code: number; problems: string[]; objects: { kind: string }[] }> {
  return new Promise((done, fail) => {
    const child = execFile(K8S_STRICT, [], { timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (code !== 0 && code !== 1) return fail(new Error(`k8s-strict failed (${code}): ${stderr}`));
      done({ code, ...(JSON.parse(stdout) as { problems: string[]; objects: { kind: string }[] }) });
    });
    child.stdin!.end(manifests);
  });
}

describe('rendered objects decode strictly into the API types', needStrict, () => {
  test('every ci scenario: no unknown or misspelt field, valid names, labels, ports and keys', async () => {
    for (const f of await ciValuesFiles()) {
      const r = await renderRaw({ valuesFiles: [f], monitoringApi: true });
      assert.equal(r.code, 0, r.stderr);
      const { code, problems, objects } = await strictDecode(r.stdout);
      assert.deepEqual(problems, [], scenario(f));
      assert.equal(code, 0);
      assert.ok(objects.some((o) => o.kind === 'DaemonSet'));
    }
  });

  test('the decoder catches a misspelt field and a bad port name', async () => {
    const r = await renderRaw({ valuesFiles: [ci('monitoring')], monitoringApi: true });
    const typo = await strictDecode(r.stdout.replace('honorLabels:', 'honourLabels:'));
    assert.equal(typo.code, 1);
    assert.ok(typo.problems.some((p) => p.includes('ServiceMonitor') && p.includes('honourLabels')), typo.problems.join('; '));
    const port = await strictDecode(r.stdout.replace('- name: probe-udp\n              containerPort', '- name: probe_udp_port_too_long\n              containerPort'));
    assert.equal(port.code, 1);
    assert.ok(port.problems.some((p) => p.includes('probe_udp_port_too_long')), port.problems.join('; '));
  });
});

describe('every ci scenario renders', needHelm, () => {
  test('with and without the Prometheus Operator API, always hardened', async () => {
    for (const f of await ciValuesFiles()) {
      for (const monitoringApi of [true, false]) {
        const objs = await render({ valuesFiles: [f], monitoringApi, namespace: NS });
        const what = `${scenario(f)} (monitoring API ${monitoringApi ? 'on' : 'off'})`;
        assertHardened(objs, what);
        if (!monitoringApi) {
          assert.deepEqual(objs.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/')), [], `${what}: operator objects without the API`);
        }
        for (const o of objs) assert.equal(o.metadata.namespace, NS, `${what}: ${o.kind} ${o.metadata.name} namespace`);
      }
    }
  });
});

function assertHardened(objs: K8s[], what: string): void {
  const pod = daemonSet(objs).spec.template.spec;
  const c = container(objs);
  assert.equal(pod.hostPID, false, `${what}: hostPID`);
  assert.equal(pod.hostIPC, false, `${what}: hostIPC`);
  assert.equal(pod.automountServiceAccountToken, false, `${what}: service account token`);
  assert.equal(pod.securityContext.runAsNonRoot, true, `${what}: pod runAsNonRoot`);
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault', `${what}: pod seccomp`);
  const sc = c.securityContext;
  assert.equal(sc.runAsNonRoot, true, `${what}: runAsNonRoot`);
  assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, `${what}: numeric non-root user, got ${sc.runAsUser}`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation`);
  assert.equal(sc.privileged, false, `${what}: privileged`);
  assert.deepEqual(sc.capabilities.drop, ['ALL'], `${what}: capabilities drop`);
  assert.equal(sc.capabilities.add, undefined, `${what}: no capability added`);
  assert.equal(sc.seccompProfile.type, 'RuntimeDefault', `${what}: seccomp`);
  assert.ok(!JSON.stringify(objs).includes('SYS_ADMIN'), `${what}: SYS_ADMIN appears`);
  assert.ok(c.resources.limits.cpu && c.resources.limits.memory, `${what}: resource limits`);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory, `${what}: resource requests`);
  assert.ok(args(objs).some((a) => /^--gpu\.source=(nvml|nvidia-smi)$/.test(a)), `${what}: a real GPU source`);
  assert.ok(!args(objs).includes('--simulate'), `${what}: simulated`);
  // readOnlyRootFilesystem: the only writable place is an emptyDir on /tmp.
  const tmp = c.volumeMounts.find((m: any) => m.mountPath === '/tmp');
  assert.ok(tmp && pod.volumes.find((v: any) => v.name === tmp.name).emptyDir, `${what}: /tmp emptyDir`);
}

describe('default values', needHelm, () => {
  test('a DaemonSet on GPU nodes reading NVML through the NVIDIA runtime', async () => {
    const objs = await render({ valuesFiles: [ci('default')], namespace: NS });
    const ds = daemonSet(objs);
    const pod = ds.spec.template.spec;
    assert.equal(ds.metadata.name, 'gpu-ds-exporter');
    assert.deepEqual(pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms, [
      { matchExpressions: [{ key: 'nvidia.com/gpu.present', operator: 'In', values: ['true'] }] },
    ]);
    assert.ok(pod.tolerations.some((t: any) => t.key === 'nvidia.com/gpu' && t.operator === 'Exists'));
    assert.equal(pod.hostNetwork, false);
    assert.equal(pod.dnsPolicy, 'ClusterFirst');
    assert.equal(pod.runtimeClassName, undefined);
    assert.equal(pod.priorityClassName, undefined);
    const e = env(objs);
    assert.equal(e.NVIDIA_VISIBLE_DEVICES, 'all');
    assert.equal(e.NVIDIA_DRIVER_CAPABILITIES, 'utility');
    assert.deepEqual(e.NODE_NAME, { fieldRef: { fieldPath: 'spec.nodeName' } });
    const c = container(objs);
    const chart = await readYamlFile(join(CHART, 'Chart.yaml'));
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(chart.appVersion, pkg.version, 'Chart.yaml appVersion follows package.json');
    assert.equal(c.image, `registry.example.com/ds-exporter:${chart.appVersion}`);
    assert.deepEqual(args(objs), ['--web.listen-address=:9842', '--gpu.source=nvml', '--log.level=info', `--peers.dns=gpu-ds-exporter-peers.${NS}.svc`, '--collector.kubelet', '--kubelet.pod-resources-socket=/var/lib/kubelet/pod-resources/kubelet.sock']);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'http', scheme: 'HTTP' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'http', scheme: 'HTTP' });
    assert.deepEqual(c.ports, [
      { name: 'http', containerPort: 9842, protocol: 'TCP' },
      { name: 'probe-udp', containerPort: 9842, protocol: 'UDP' },
    ]);
    assert.deepEqual(ofKind(objs, 'Secret'), []);
    assert.deepEqual(ofKind(objs, 'ConfigMap'), []);
    assert.deepEqual(ofKind(objs, 'NetworkPolicy'), []);
    assert.equal(one(objs, 'ServiceAccount').automountServiceAccountToken, false);
    // The only host path is the kubelet pod-resources directory, read-only; no host ports.
    assert.deepEqual(pod.volumes.filter((v: any) => v.hostPath).map((v: any) => v.hostPath), [{ path: '/var/lib/kubelet/pod-resources', type: 'Directory' }]);
    assert.deepEqual(c.volumeMounts.find((m: any) => m.name === 'pod-resources'), { name: 'pod-resources', mountPath: '/var/lib/kubelet/pod-resources', readOnly: true });
    assert.ok(c.ports.every((p: any) => p.hostPort === undefined), 'no hostPort');
  });

  test('kubelet attribution: the socket mount adds no privilege; off, the pod has no host path at all', async () => {
    const on = await render({ namespace: NS, set: ['kubelet.resourceNames={example.com/gpu,nvidia.com/gpu.shared}'] });
    const c = container(on);
    assert.ok(args(on).includes('--kubelet.resource-names=example.com/gpu,nvidia.com/gpu.shared'));
    assert.equal(c.securityContext.privileged ?? false, false);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(daemonSet(on).spec.template.spec.hostPID ?? false, false);
    const off = await render({ namespace: NS, set: ['kubelet.enabled=false'] });
    assert.ok(daemonSet(off).spec.template.spec.volumes.every((v: any) => !v.hostPath), 'no hostPath volume');
    assert.ok(!args(off).some((a) => a.startsWith('--collector.kubelet')));
  });

  test('kubelet.enrichLabels: --kubelet.enrich-labels only when set, and only with the kubelet collector', async () => {
    assert.ok(!args(await render({ namespace: NS })).includes('--kubelet.enrich-labels'), 'off by default');
    const on = await render({ namespace: NS, set: ['kubelet.enrichLabels=true'] });
    assert.ok(args(on).includes('--kubelet.enrich-labels'));
    assert.ok(args(on).includes('--collector.kubelet'));
    // The exporter accepts what the chart passes.
    assert.equal(loadConfig(args(on).filter((a) => !a.startsWith('--peers.dns')), {}).flags.bool('kubelet.enrich-labels'), true);
    const orphan = await renderRaw({ namespace: NS, set: ['kubelet.enabled=false', 'kubelet.enrichLabels=true'] });
    assert.notEqual(orphan.code, 0);
    assert.match(orphan.stderr, /kubelet\.enrichLabels needs kubelet\.enabled/);
  });

  test('kubelet.processAttribution: hostPID and the two flags only when set, and no other privilege', async () => {
    const off = await render({ namespace: NS });
    assert.equal(daemonSet(off).spec.template.spec.hostPID, false, 'hostPID off by default');
    assert.ok(!args(off).some((a) => a === '--kubelet.process-attribution' || a === '--nvml.process-memory'));
    const on = await render({ namespace: NS, set: ['kubelet.processAttribution=true'] });
    assert.equal(daemonSet(on).spec.template.spec.hostPID, true);
    assert.deepEqual(args(on), [...args(off), '--kubelet.process-attribution', '--nvml.process-memory']);
    // Everything else is byte for byte the default: no capability, host path, host network or IPC, privilege or user change.
    const strip = (objs: K8s[]) => {
      const copy = structuredClone(objs);
      const pod = one(copy, 'DaemonSet').spec.template.spec;
      delete pod.hostPID;
      pod.containers[0].args = pod.containers[0].args.filter((a: string) => a !== '--kubelet.process-attribution' && a !== '--nvml.process-memory');
      return copy;
    };
    assert.deepEqual(strip(on), strip(off));
    // The exporter accepts what the chart passes.
    const config = loadConfig(args(on).filter((a) => !a.startsWith('--peers.dns')), {});
    assert.equal(config.flags.bool('kubelet.process-attribution'), true);
    const orphan = await renderRaw({ namespace: NS, set: ['kubelet.enabled=false', 'kubelet.processAttribution=true'] });
    assert.notEqual(orphan.code, 0);
    assert.match(orphan.stderr, /kubelet\.processAttribution needs kubelet\.enabled/);
    const smi = await renderRaw({ namespace: NS, set: ['gpuSource=nvidia-smi', 'kubelet.processAttribution=true'] });
    assert.notEqual(smi.code, 0);
    assert.match(smi.stderr, /kubelet\.processAttribution needs .*nvml/);
  });

  test('the headless Service the peer prober resolves, and the metrics Service', async () => {
    const objs = await render({ namespace: NS });
    const services = ofKind(objs, 'Service');
    assert.equal(services.length, 2);
    const headless = one(objs, 'Service', (s) => s.spec.clusterIP === 'None');
    assert.equal(headless.spec.publishNotReadyAddresses, true);
    assert.deepEqual(
      headless.spec.ports.map((p: any) => [p.name, p.port, p.protocol]),
      [['http', 9842, 'TCP'], ['probe-udp', 9842, 'UDP']],
    );
    const peersArg = args(objs).find((a) => a.startsWith('--peers.dns='));
    assert.equal(peersArg, `--peers.dns=${headless.metadata.name}.${NS}.svc`);
    const metrics = one(objs, 'Service', (s) => s.spec.clusterIP !== 'None');
    assert.equal(metrics.spec.type, 'ClusterIP');
    assert.deepEqual(metrics.spec.ports, [{ name: 'http', port: 9842, targetPort: 'http', protocol: 'TCP' }]);
    // Both select exactly the DaemonSet's pods.
    const podLabels = daemonSet(objs).spec.template.metadata.labels;
    for (const s of services) for (const [k, v] of Object.entries(s.spec.selector)) assert.equal(podLabels[k], v, `${s.metadata.name} selector ${k}`);
  });

  test('peers off: no headless Service, no --peers.dns, no UDP port; a custom cluster domain is appended', async () => {
    const off = await render({ set: ['peers.enabled=false'] });
    assert.equal(ofKind(off, 'Service').length, 1);
    assert.ok(!args(off).some((a) => a.startsWith('--peers.dns')));
    assert.deepEqual(container(off).ports.map((p: any) => p.protocol), ['TCP']);
    const domain = await render({ set: ['peers.clusterDomain=cluster.local', 'port=9100'], namespace: 'x' });
    assert.ok(args(domain).includes('--peers.dns=gpu-ds-exporter-peers.x.svc.cluster.local'));
    assert.ok(args(domain).includes('--web.listen-address=:9100'));
    assert.deepEqual(one(domain, 'Service', (s) => s.spec.clusterIP === 'None').spec.ports.map((p: any) => p.port), [9100, 9100]);
  });

  test('options: runtimeClassName, priorityClassName, extraArgs, env, gpuSource, probes off', async () => {
    const objs = await render({
      set: ['runtimeClassName=nvidia', 'priorityClassName=system-node-critical', 'extraArgs[0]=--engine.target=vllm=http://127.0.0.1:8000/metrics', 'env[0].name=DS_EXPORTER_SAMPLE_INTERVAL', 'env[0].value=2s', 'gpuSource=nvidia-smi', 'livenessProbe.enabled=false', 'readinessProbe.enabled=false'],
    });
    const pod = daemonSet(objs).spec.template.spec;
    assert.equal(pod.runtimeClassName, 'nvidia');
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.equal(args(objs).at(-1), '--engine.target=vllm=http://127.0.0.1:8000/metrics');
    assert.ok(args(objs).includes('--gpu.source=nvidia-smi'));
    assert.equal(env(objs).DS_EXPORTER_SAMPLE_INTERVAL, '2s');
    assert.equal(env(objs).NVIDIA_VISIBLE_DEVICES, 'all');
    assert.equal(container(objs).livenessProbe, undefined);
    assert.equal(container(objs).readinessProbe, undefined);
  });

  test('the flags the chart passes are flags of the exporter', async (t) => {
    const known = new Set(allFlags().map((f) => f.name));
    // Flags of parts built separately (peer prober, push API); the check turns strict once they are in.
    const later = new Set(['peers.dns', 'push.token-file']);
    const passed = new Set<string>();
    for (const f of await ciValuesFiles()) {
      const rendered = args(await render({ valuesFiles: [f] }));
      for (const a of rendered) passed.add(/^--([^=]+)/.exec(a)![1]);
      // The exporter's own parser accepts the values too (listen address, enums).
      const config = loadConfig(rendered.filter((a) => !later.has(/^--([^=]+)/.exec(a)![1])), {});
      assert.equal(config.listenPort, 9842, scenario(f));
      assert.equal(config.flags.string('gpu.source'), 'nvml', scenario(f));
    }
    const unknown = [...passed].filter((n) => !known.has(n));
    assert.deepEqual(unknown.filter((n) => !later.has(n)), [], 'flags unknown to the exporter');
    const missing = unknown.filter((n) => later.has(n));
    if (missing.length > 0) t.diagnostic(`not yet flags of this build (the pods would refuse them): ${missing.map((n) => `--${n}`).join(', ')}`);
  });
});

describe('kube-prometheus-stack objects', needHelm, () => {
  test('monitoring scenario with the API: ServiceMonitor on the metrics Service only', async () => {
    const objs = await render({ valuesFiles: [ci('monitoring')], monitoringApi: true, namespace: NS });
    const sm = one(objs, 'ServiceMonitor');
    assert.equal(sm.metadata.labels.release, 'kube-prometheus-stack');
    assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
    const ep = sm.spec.endpoints[0];
    assert.equal(ep.port, 'http');
    assert.equal(ep.path, '/metrics');
    assert.equal(ep.scheme, 'http');
    assert.equal(ep.interval, '15s');
    assert.ok(ep.relabelings.some((r: any) => r.targetLabel === 'node' && r.sourceLabels[0] === '__meta_kubernetes_pod_node_name'));
    const matches = (s: K8s) => Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels[k] === v);
    const selected = ofKind(objs, 'Service').filter(matches);
    assert.equal(selected.length, 1, 'the ServiceMonitor selects exactly one Service');
    assert.notEqual(selected[0].spec.clusterIP, 'None', 'never the headless one (each pod would be scraped twice)');
    assert.ok(selected[0].spec.ports.some((p: any) => p.name === ep.port));
    const pod = daemonSet(objs).spec.template.spec;
    assert.equal(pod.runtimeClassName, 'nvidia');
    assert.equal(pod.priorityClassName, 'system-node-critical');
  });

  test('the PrometheusRule holds exactly the rules of files/alerts minus the disabled ones', async () => {
    const values = await readYamlFile(ci('monitoring'));
    const disabled: string[] = values.prometheusRule.disabledAlerts;
    const all = await alertNames();
    assert.ok(all.length >= 2, 'files/alerts holds alerts');
    for (const d of disabled) assert.ok(all.includes(d), `${d} is in files/alerts`);
    const pr = one(await render({ valuesFiles: [ci('monitoring')], monitoringApi: true }), 'PrometheusRule');
    assert.equal(pr.metadata.labels.release, 'kube-prometheus-stack');
    assert.deepEqual(renderedAlerts(pr).sort(), all.filter((a) => !disabled.includes(a)).sort());
    for (const g of pr.spec.groups) for (const r of g.rules) if (r.alert) assert.equal(r.labels.team, 'ml-platform', `${r.alert}: additionalRuleLabels`);
    // Nothing disabled: every alert, each rule as in its file (expr, for, labels, annotations).
    const full = one(await render({ set: ['prometheusRule.enabled=true'], monitoringApi: true }), 'PrometheusRule');
    const expected = (await alertFiles()).flatMap((d) => d.groups);
    assert.deepEqual(full.spec.groups, expected);
  });

  test('without the API, ServiceMonitor and PrometheusRule are not rendered but dashboards are', async () => {
    const objs = await render({ valuesFiles: [ci('monitoring')], monitoringApi: false });
    assert.deepEqual(ofKind(objs, 'ServiceMonitor'), []);
    assert.deepEqual(ofKind(objs, 'PrometheusRule'), []);
    assert.equal(ofKind(objs, 'ConfigMap').length, (await dashboardFiles()).size);
  });

  test('one ConfigMap per dashboard file, labelled for the Grafana sidecar, with the folder annotation', async () => {
    const files = await dashboardFiles();
    assert.ok(files.size >= 1);
    const cms = ofKind(await render({ valuesFiles: [ci('monitoring')], monitoringApi: true }), 'ConfigMap');
    assert.equal(cms.length, files.size);
    const seen = new Map<string, any>();
    for (const cm of cms) {
      assert.equal(cm.metadata.labels.grafana_dashboard, '1');
      assert.equal(cm.metadata.annotations.grafana_folder, 'GPU');
      const keys = Object.keys(cm.data);
      assert.equal(keys.length, 1);
      seen.set(keys[0], JSON.parse(cm.data[keys[0]]));
    }
    assert.deepEqual([...seen.keys()].sort(), [...files.keys()].sort());
    for (const [f, d] of files) assert.deepEqual(seen.get(f), d, `${f}: content`);
    const off = await render({ monitoringApi: true });
    assert.deepEqual(ofKind(off, 'ConfigMap'), []);
  });

  test('any number of alert and dashboard files: groups merged, emptied groups dropped, recording rules kept', async () => {
    const copy = await chartCopy();
    try {
      const alerts = join(copy.dir, 'files/alerts');
      const dashboards = join(copy.dir, 'files/dashboards');
      await writeFile(join(alerts, 'zz-extra.yaml'), 'groups:\n  - name: extra-a\n    rules:\n      - record: ds:gpu_utilization:avg\n        expr: avg(ds_gpu_utilization_ratio)\n      - alert: ExtraOne\n        expr: vector(1)\n  - name: extra-b\n    rules:\n      - alert: ExtraTwo\n        expr: vector(2)\n        labels:\n          severity: info\n');
      for (const name of ['Extra Board', 'third_board']) {
        await writeFile(join(dashboards, `${name}.json`), JSON.stringify({ uid: name.toLowerCase().replace(/\W/g, '-'), title: name, panels: [] }));
      }
      const base = { chart: copy.dir, monitoringApi: true, set: ['prometheusRule.enabled=true', 'dashboards.enabled=true'] };
      const objs = await render(base);
      const expected = await alertNames(alerts);
      assert.ok(expected.includes('ExtraOne') && expected.includes('ExtraTwo'));
      const pr = one(objs, 'PrometheusRule');
      assert.deepEqual(renderedAlerts(pr).sort(), [...expected].sort());
      assert.ok(pr.spec.groups.find((g: any) => g.name === 'extra-a').rules.some((r: any) => r.record === 'ds:gpu_utilization:avg'));
      const cms = ofKind(objs, 'ConfigMap');
      assert.equal(cms.length, (await dashboardFiles(dashboards)).size);
      assert.equal(new Set(cms.map((c) => c.metadata.name)).size, cms.length, 'distinct ConfigMap names');
      for (const c of cms) {
        assert.match(c.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        for (const k of Object.keys(c.data)) assert.match(k, /^[-._a-zA-Z0-9]+$/, 'a valid ConfigMap key');
      }
      assert.ok(cms.some((c) => JSON.parse(Object.values(c.data)[0] as string).title === 'Extra Board'));
      // Disabling the only alert of a group drops the group; recording rules stay.
      const less = one(await render({ ...base, set: [...base.set, 'prometheusRule.disabledAlerts[0]=ExtraTwo', 'prometheusRule.disabledAlerts[1]=ExtraOne'] }), 'PrometheusRule');
      assert.equal(less.spec.groups.find((g: any) => g.name === 'extra-b'), undefined);
      assert.deepEqual(less.spec.groups.find((g: any) => g.name === 'extra-a').rules.map((r: any) => r.record ?? r.alert), ['ds:gpu_utilization:avg']);
      // A rule file that does not parse fails the render, naming the file.
      await writeFile(join(alerts, 'broken.yaml'), 'groups: [\n');
      const broken = await renderRaw(base);
      assert.notEqual(broken.code, 0);
      assert.match(broken.stderr, /broken\.yaml/);
    } finally {
      await copy.cleanup();
    }
  });

  test('a disabled alert that does not exist fails the install', async () => {
    const r = await renderRaw({ set: ['prometheusRule.enabled=true', 'prometheusRule.disabledAlerts[0]=NoSuchAlert'], monitoringApi: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no alert named "NoSuchAlert"/);
  });
});

describe('security options', needHelm, () => {
  test('web config Secret, TLS Secret and push token are mounted and passed', async () => {
    const values = await readYamlFile(ci('webconfig-token'));
    const objs = await render({ valuesFiles: [ci('webconfig-token')], monitoringApi: true });
    const c = container(objs);
    const pod = daemonSet(objs).spec.template.spec;
    const mountOf = (flag: string) => {
      const path = args(objs).find((a) => a.startsWith(`--${flag}=`))?.split('=')[1];
      assert.ok(path, `--${flag} passed`);
      const m = c.volumeMounts.find((v: any) => path.startsWith(`${v.mountPath}/`));
      assert.ok(m, `${path} is under a mount`);
      assert.equal(m.readOnly, true);
      const vol = pod.volumes.find((v: any) => v.name === m.name);
      return { path, file: path.slice(m.mountPath.length + 1), secret: vol.secret };
    };
    const web = mountOf('web.config.file');
    const webSecret = one(objs, 'Secret', (s) => s.metadata.name === web.secret.secretName);
    assert.deepEqual(web.secret.items, [{ key: 'web-config.yml', path: web.file }]);
    assert.deepEqual(parseYaml(webSecret.stringData['web-config.yml']), values.webConfig.config);
    const push = mountOf('push.token-file');
    const pushSecret = one(objs, 'Secret', (s) => s.metadata.name === push.secret.secretName);
    const key = push.secret.items.find((i: any) => i.path === push.file).key;
    assert.equal(Buffer.from(pushSecret.data[key], 'base64').toString(), values.push.token);
    const tls = c.volumeMounts.find((m: any) => m.mountPath === '/etc/ds-exporter/tls');
    assert.equal(pod.volumes.find((v: any) => v.name === tls.name).secret.secretName, values.webConfig.tlsSecret);
    assert.ok(values.webConfig.config.tls_server_config.cert_file.startsWith('/etc/ds-exporter/tls/'));
    // Secrets roll the pods when they change.
    const ann = daemonSet(objs).spec.template.metadata.annotations;
    assert.match(ann['checksum/web-config'], /^[a-f0-9]{64}$/);
    assert.match(ann['checksum/push-token'], /^[a-f0-9]{64}$/);
    // Basic auth: kubelet probes cannot authenticate, so they check the TCP port; the scrape uses HTTPS.
    assert.deepEqual(c.livenessProbe.tcpSocket, { port: 'http' });
    assert.deepEqual(c.readinessProbe.tcpSocket, { port: 'http' });
    const ep = one(objs, 'ServiceMonitor').spec.endpoints[0];
    assert.equal(ep.scheme, 'https');
    assert.deepEqual(ep.tlsConfig, values.serviceMonitor.tlsConfig);
    assert.deepEqual(ep.basicAuth, values.serviceMonitor.basicAuth);
  });

  test('TLS without basic auth keeps HTTP probes, over HTTPS; probe headers keep HTTP probes under basic auth', async () => {
    const tlsOnly = await render({ set: ['webConfig.enabled=true', 'webConfig.config.tls_server_config.cert_file=/c', 'webConfig.config.tls_server_config.key_file=/k'] });
    assert.deepEqual(container(tlsOnly).readinessProbe.httpGet, { path: '/readyz', port: 'http', scheme: 'HTTPS' });
    const headers = await render({ valuesFiles: [ci('webconfig-token')], set: ['probeHttpHeaders[0].name=Authorization', 'probeHttpHeaders[0].value=Basic eDp5'] });
    assert.deepEqual(container(headers).livenessProbe.httpGet.httpHeaders, [{ name: 'Authorization', value: 'Basic eDp5' }]);
    assert.equal(container(headers).livenessProbe.httpGet.scheme, 'HTTPS');
  });

  test('existing Secrets are referenced, not rendered', async () => {
    const objs = await render({ set: ['webConfig.enabled=true', 'webConfig.existingSecret=my-web', 'push.existingSecret=my-push', 'push.existingSecretKey=tok'] });
    assert.deepEqual(ofKind(objs, 'Secret'), []);
    const vols = daemonSet(objs).spec.template.spec.volumes;
    assert.equal(vols.find((v: any) => v.secret?.secretName === 'my-web').secret.items[0].key, 'web-config.yml');
    assert.deepEqual(vols.find((v: any) => v.secret?.secretName === 'my-push').secret.items, [{ key: 'tok', path: 'token' }]);
    assert.equal(daemonSet(objs).spec.template.metadata.annotations, undefined);
  });

  test('hostNetwork: ClusterFirstWithHostNet and host ports on the same number', async () => {
    const objs = await render({ valuesFiles: [ci('hostnetwork')] });
    const pod = daemonSet(objs).spec.template.spec;
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
    assert.equal(pod.runtimeClassName, 'nvidia');
    for (const p of container(objs).ports) assert.equal(p.hostPort, p.containerPort);
  });

  test('NetworkPolicy: the peer mesh (TCP and UDP), Prometheus, and extra rules', async () => {
    const values = await readYamlFile(ci('networkpolicy'));
    const objs = await render({ valuesFiles: [ci('networkpolicy')] });
    const np = one(objs, 'NetworkPolicy');
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    assert.deepEqual(np.spec.podSelector.matchLabels, daemonSet(objs).spec.selector.matchLabels);
    const [peers, metrics, ...extra] = np.spec.ingress;
    assert.deepEqual(peers.from, [{ podSelector: { matchLabels: daemonSet(objs).spec.selector.matchLabels } }]);
    assert.deepEqual(peers.ports, [{ port: 9842, protocol: 'TCP' }, { port: 9842, protocol: 'UDP' }]);
    assert.equal(metrics.from[0].podSelector.matchLabels['app.kubernetes.io/name'], 'prometheus');
    assert.deepEqual(metrics.ports, [{ port: 9842, protocol: 'TCP' }]);
    assert.deepEqual(extra, values.networkPolicy.extraIngress);
  });

  test('image: digest wins over the tag; tag defaults to appVersion', async () => {
    const values = await readYamlFile(ci('digest'));
    const objs = await render({ valuesFiles: [ci('digest')] });
    assert.equal(container(objs).image, `registry.example.com/platform/ds-exporter@${values.image.digest}`);
    assert.equal(container(objs).imagePullPolicy, 'Always');
    assert.deepEqual(daemonSet(objs).spec.template.spec.imagePullSecrets, [{ name: 'regcred' }]);
    const tagged = await render({ set: ['image.tag=1.2.3'] });
    assert.equal(container(tagged).image, 'registry.example.com/ds-exporter:1.2.3');
    const split = await render({ set: ['image.registry=registry.example.com/', 'image.repository=team/ds-exporter'] });
    assert.equal(container(split).image, `registry.example.com/team/ds-exporter:${(await readYamlFile(join(CHART, 'Chart.yaml'))).appVersion}`);
  });

  test('no image set: install fails with the way to build and push one, not an image pull loop', async () => {
    const chart = await readYamlFile(join(CHART, 'Chart.yaml'));
    for (const set of [[], ['image.repository=']]) {
      const r = await renderRaw({ image: false, set });
      assert.notEqual(r.code, 0, 'rendered without an image');
      assert.match(r.stderr, /image\.repository is not set, and no public ds-exporter image exists: build one with `npm run image`/);
      assert.ok(r.stderr.includes(`skopeo copy oci-archive:dist/ds-exporter-oci.tar docker://REGISTRY/ds-exporter:${chart.appVersion}`), r.stderr);
      assert.ok(r.stderr.includes('--set image.repository=REGISTRY/ds-exporter'), r.stderr);
    }
    // `helm lint` renders with required values relaxed: it reports the message, and passes.
    const lint = await helm(['lint', '--strict', CHART]);
    assert.match(lint.stdout + lint.stderr, /image\.repository is not set/);
  });

  test('the README push and install commands give the image the chart pulls', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const push = /skopeo copy oci-archive:(\S+) docker:\/\/(\S+)/.exec(readme);
    assert.ok(push, 'README shows skopeo copy');
    assert.equal(push[1], 'dist/ds-exporter-oci.tar');
    const install = /helm install \S+ \.\/helm\/ds-exporter[^\n]*(?:\\\n[^\n]*)*--set image\.repository=(\S+)/.exec(readme);
    assert.ok(install, 'README installs the chart with --set image.repository');
    const registry = 'registry.example.com/platform';
    const objs = await render({ image: false, set: [`image.repository=${install[1].replace('$REGISTRY', registry)}`] });
    assert.equal(container(objs).image, push[2].replace('$REGISTRY', registry));
  });
});

describe('NOTES.txt', needHelm, () => {
  /** NOTES.txt is not printed by `helm template`: render it as a template of a chart copy. */
  async function notes(set: string[], monitoringApi = false): Promise<string> {
    const copy = await chartCopy();
    try {
      const text = await readFile(join(copy.dir, 'templates/NOTES.txt'), 'utf8');
      await writeFile(join(copy.dir, 'templates/zz-notes.yaml'), `{{- define "notes-under-test" }}\n${text}\n{{- end }}\nkind: NotesUnderTest\ntext: {{ include "notes-under-test" . | toJson }}\n`);
      const objs = await render({ chart: copy.dir, set, monitoringApi });
      return one(objs, 'NotesUnderTest').text as string;
    } finally {
      await copy.cleanup();
    }
  }

  test('says how to reach /metrics and what to check, and warns about what was not created', async () => {
    const text = await notes(['serviceMonitor.enabled=true', 'prometheusRule.enabled=true']);
    assert.match(text, /port-forward svc\/gpu-ds-exporter 9842:9842/);
    assert.match(text, /curl -s http:\/\/127\.0\.0\.1:9842\/metrics/);
    assert.match(text, /ds_gpu_up/);
    assert.match(text, /serviceMonitor\.enabled is true but the cluster does not serve monitoring\.coreos\.com\/v1/);
    assert.match(text, /prometheusRule\.enabled is true but/);
    const withApi = await notes(['serviceMonitor.enabled=true', 'gpuSource=auto'], true);
    assert.doesNotMatch(withApi, /does not serve/);
    assert.match(withApi, /WARNING: gpuSource=auto falls back to a simulator/);
  });
});
