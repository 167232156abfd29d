import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { ROOT } from '../generate/queries.js';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, type PromResult, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

// A simulated host with injected faults, scraped by a real Prometheus that evaluates the
// generated alert rules: the health alerts fire for the faulty GPUs and only for them.
// The rules are the generated ones with the health alerts' `for` cut to 2s (the expressions
// are unchanged), so the test does not wait a minute per alert.

const RUNNABLE = PROMETHEUS_VERSIONS.filter((v) => !v.skip);
const HEALTH_ALERTS = new Set(['DsGpuNeedsReset', 'DsGpuNodeNeedsReboot', 'DsGpuNeedsAction', 'DsGpuRowRemapFailed', 'DsGpuFellOffTheBus']);
let exporter: Proc;
let dir: string;
let rules: string;

before(async () => {
  if (RUNNABLE.length === 0) return;
  dir = mkdtempSync(join(tmpdir(), 'dsx-health-rules-'));
  const doc = parse(readFileSync(join(ROOT, 'alerts', 'ds-exporter-alerts.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; for?: string }> }> };
  for (const g of doc.groups) for (const r of g.rules) if (r.alert && HEALTH_ALERTS.has(r.alert)) r.for = '2s';
  rules = join(dir, 'alerts.yaml');
  writeFileSync(rules, stringify(doc));
  // GPU 1: the driver asks for a reset; GPU 2 falls off the bus after 3 s; GPU 3 a failed row remap; GPU 0 stays healthy.
  exporter = await startExporter(['--simulate', '--simulate.gpus=4', '--simulate.fault=gpu1:reset,gpu2:lost@3s,gpu3:row_remap_failed', '--no-collector.peers']);
});
after(async () => {
  await exporter?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const has1 = (alerts: PromResult[], name: string, gpu: string) => alerts.some((a) => a.metric.alertname === name && a.metric.gpu === gpu);

for (const v of PROMETHEUS_VERSIONS) {
  test(`Prometheus ${v.label}: simulated faults fire DsGpuNeedsReset and DsGpuFellOffTheBus, for those GPUs only`, { skip: v.skip, timeout: 120_000 }, async () => {
    const prom = await startPrometheus([exporter.url], { binary: v.prometheus, ruleFiles: [rules] });
    const firing = async (): Promise<PromResult[]> => prom.query('ALERTS{alertstate="firing"}');
    try {
      await waitFor(async () => {
        const a = await firing();
        return has1(a, 'DsGpuNeedsReset', '1') && has1(a, 'DsGpuFellOffTheBus', '2') && has1(a, 'DsGpuRowRemapFailed', '3');
      }, 90_000, `the health alerts (${prom.output()})`);
      const alerts = await firing();
      const health = alerts.filter((a) => HEALTH_ALERTS.has(a.metric.alertname)).map((a) => `${a.metric.alertname} gpu ${a.metric.gpu}`).sort();
      assert.deepEqual(health, ['DsGpuFellOffTheBus gpu 2', 'DsGpuNeedsReset gpu 1', 'DsGpuRowRemapFailed gpu 3'], 'no health alert for GPU 0, no reboot alert for the lost GPU');
      const reset = alerts.find((a) => a.metric.alertname === 'DsGpuNeedsReset')!;
      assert.equal(reset.metric.action, 'reset_gpu');
      assert.equal(reset.metric.reason, 'recovery_action');
      assert.equal(reset.metric.severity, 'critical');
      // What the exporter says about the lost GPU: verdict lost, its XID 79 counted with the catalog's action.
      const lost = await prom.query('ds_gpu_health{gpu="2"}');
      assert.equal(lost.length, 1);
      assert.equal(lost[0].metric.verdict, 'lost');
      const xid = await prom.query('ds_gpu_xid_errors_total{gpu="2",xid="79"}');
      assert.equal(xid[0]?.metric.action, 'restart_bm');
      // The rest of the host goes on: the healthy GPU is ok and the exporter's collectors succeed.
      const ok = await prom.query('ds_gpu_health{gpu="0"}');
      assert.equal(ok[0]?.metric.verdict, 'ok');
      const failing = await prom.query('ds_exporter_collector_success == 0');
      assert.deepEqual(failing.map((f) => f.metric.collector), []);
    } finally {
      await prom.stop();
    }
  });
}
