import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { defaultRulesConfig } from '../../src/generate/rules/config.js';
import { ROOT, RULE_FILES, ruleEntries } from '../generate/queries.js';
import { startAlertmanager, startWebhookReceiver, type WebhookReceiver } from '../helpers/alertmanager.js';
import { buildFakeNvml, fakeNvmlUnavailable, writeFakeNvmlConfig } from '../helpers/fake-nvml.js';
import { goTool, PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

// Alerts reach a person: an exporter on the fake NVML library loses a GPU (the fault of
// test/e2e/faults-gpu.test.ts), Prometheus (each version, with an external `cluster` label)
// evaluates the generated alert rules and fires DsGpuLost after its `for: 1m`, a real
// Alertmanager routes it through the route tree the chart documents, and a local webhook
// receiver, standing for the pager, gets it with severity, summary and runbook link.

const alertmanager = goTool('alertmanager');
const RUNNABLE = PROMETHEUS_VERSIONS.filter((v) => !v.skip);
const skip =
  fakeNvmlUnavailable() ??
  (alertmanager.skip || (RUNNABLE.length === 0 ? `no Prometheus to run: ${PROMETHEUS_VERSIONS.map((v) => v.skip).join('; ')}` : false));
const skippedVersions = PROMETHEUS_VERSIONS.filter((v) => v.skip).map((v) => `${v.label}: ${v.skip}`);

const ALERT = 'DsGpuLost';
const UUID1 = 'GPU-fake0000-0000-0000-0000-000000000001';

/** The Alertmanager route tree documented in helm/ds-exporter/README.md, receivers pointed at `webhook`. */
function documentedConfig(webhook: string): string {
  const readme = readFileSync(join(ROOT, 'helm/ds-exporter/README.md'), 'utf8');
  const block = /```yaml\n(# alertmanager\.yaml[\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'helm/ds-exporter/README.md documents an Alertmanager route tree');
  const doc = parse(block) as { route: Record<string, unknown>; receivers: Array<{ name: string }> };
  // Only the timings are shortened, so that a test does not wait for minutes.
  Object.assign(doc.route, { group_wait: '1s', group_interval: '1s', repeat_interval: '1h' });
  doc.receivers = doc.receivers.map((r) => ({ name: r.name, webhook_configs: [{ url: `${webhook}/${r.name}`, send_resolved: true }] }));
  return stringify(doc);
}

const procs: Proc[] = [];
let receiver: WebhookReceiver;

before(async () => {
  if (skip) return;
  receiver = await startWebhookReceiver();
  const am = await startAlertmanager(alertmanager.path!, documentedConfig(receiver.url));
  procs.push(am);
  const lib = buildFakeNvml();
  // About 18 NVML calls per GPU per sample: GPU 1 answers NVML_ERROR_GPU_IS_LOST from about the 8th second on.
  const config = writeFakeNvmlConfig({ gpus: 2, 'gpu.1.lost_after': 150 });
  const exporter = await startExporter(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.kubelet'], { FAKE_NVML_CONFIG: config });
  procs.push(exporter);
  for (const v of RUNNABLE) {
    procs.push(
      await startPrometheus([exporter.url], {
        binary: v.prometheus,
        ruleFiles: RULE_FILES.map((f) => join(ROOT, 'alerts', f)),
        globalExtra: ['external_labels:', `  cluster: gpu-east-${v.major}`],
        configExtra: ['alerting:', '  alertmanagers:', '    - static_configs:', `        - targets: [${JSON.stringify(am.url.replace('http://', ''))}]`],
      }),
    );
  }
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await receiver?.close();
});

test(`a lost GPU pages: ${ALERT} reaches the webhook through Alertmanager with severity, summary and runbook link`, { skip, timeout: 240_000 }, async (t) => {
  if (skippedVersions.length) t.diagnostic(`not run against ${skippedVersions.join('; ')}`);
  const rule = ruleEntries().find((r) => r.alert === ALERT)!;
  const paged = () => receiver.messages.filter((m) => m.path === '/gpu-pager').flatMap((m) => m.body.alerts.map((a) => ({ ...a, receiver: m.body.receiver })));
  const clusters = RUNNABLE.map((v) => `gpu-east-${v.major}`);
  // for: 1m after the loss at ~8 s, plus evaluation and delivery.
  await waitFor(() => clusters.every((c) => paged().some((a) => a.labels.alertname === ALERT && a.labels.cluster === c && a.status === 'firing')), 180_000, `${ALERT} from ${clusters.join(', ')} at the pager`, {
    everyMs: 1000,
  });
  assert.deepEqual(receiver.rejected, []);
  for (const c of clusters) {
    const a = paged().find((x) => x.labels.alertname === ALERT && x.labels.cluster === c)!;
    assert.equal(a.receiver, 'gpu-pager');
    assert.equal(a.labels.severity, 'critical');
    assert.equal(a.labels.uuid, UUID1, 'the lost GPU, not the healthy one');
    assert.equal(a.labels.gpu, '1');
    assert.equal(a.labels.job, 'ds-exporter');
    assert.equal(a.annotations.summary, rule.annotations!.summary);
    assert.match(a.annotations.description, /GPU 1\b|gpu 1\b|GPU-fake0000-0000-0000-0000-000000000001/, 'the description names the GPU');
    assert.equal(a.annotations.runbook_url, defaultRulesConfig.runbookUrlPattern.replace('%s', 'dsgpulost'));
    assert.match(readFileSync(join(ROOT, 'docs/runbooks.md'), 'utf8'), new RegExp(`^## ${ALERT}$`, 'm'), 'the runbook link points at a section that exists');
  }
  // Only critical alerts page; nothing but ds-exporter alerts is routed by the documented tree.
  assert.deepEqual(paged().filter((a) => a.labels.severity !== 'critical'), []);
  const healthyGpu = receiver.messages.flatMap((m) => m.body.alerts).filter((a) => a.labels.alertname === ALERT && a.labels.gpu !== '1');
  assert.deepEqual(healthyGpu, [], 'the healthy GPU is not reported lost');
});
