import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, type PromResult, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

const HEADLINE = [
  'ds_gpu_info', 'ds_gpu_utilization_ratio', 'ds_gpu_busy_seconds_total', 'ds_gpu_allocation_info',
  'ds_gpu_memory_used_bytes', 'ds_gpu_memory_total_bytes', 'ds_gpu_memory_utilization_ratio',
  'ds_gpu_memory_fragmentation_ratio', 'ds_gpu_power_watts', 'ds_gpu_temperature_celsius', 'ds_gpu_up',
  'ds_serving_throughput_tokens_per_second', 'ds_serving_requests_total', 'ds_training_throughput_samples_per_second',
  'ds_comm_peer_latency_seconds_bucket', 'ds_comm_collective_latency_seconds_bucket',
  'ds_exporter_collector_success', 'ds_exporter_collector_duration_seconds', 'ds_exporter_build_info',
];

for (const v of PROMETHEUS_VERSIONS) {
  describe(`Prometheus ${v.label}`, { skip: v.skip }, () => {
    let exporter: Proc;
    let prom: Awaited<ReturnType<typeof startPrometheus>>;

    before(async () => {
      exporter = await startExporter(['--simulate', '--simulate.gpus=4']);
      prom = await startPrometheus([exporter.url], { binary: v.prometheus });
    });
    after(async () => {
      await prom?.stop();
      await exporter?.stop();
    });

    test('a real Prometheus scrapes a simulated exporter and every headline metric is queryable', { timeout: 90_000 }, async () => {
      await waitFor(async () => (await prom.query('up{job="ds-exporter"} == 1')).length === 1, 30_000, 'target up');
      // A few scrapes so that rate() has two points.
      await waitFor(async () => (await prom.query('rate(ds_gpu_busy_seconds_total[10s])')).length === 4, 30_000, 'rate of busy seconds');
      const missing: string[] = [];
      for (const name of HEADLINE) {
        const r = await prom.query(name);
        if (r.length === 0) missing.push(name);
      }
      assert.deepEqual(missing, [], `not queryable: ${missing.join(', ')}`);
      const util: PromResult[] = await prom.query('rate(ds_gpu_busy_seconds_total[10s])');
      for (const s of util) {
        const val = Number(s.value[1]);
        assert.ok(val >= 0 && val <= 1.05, `busy rate ${val} is a utilization`);
      }
      const info = await prom.query('ds_exporter_gpu_source_info');
      assert.equal(info[0].metric.source, 'simulated');
      // The standard process counters arrive under their standard names.
      assert.equal((await prom.query('process_cpu_seconds_total')).length, 1, 'process_cpu_seconds_total');
      // Prometheus parsed the scrape without errors (OpenMetrics negotiated).
      const health = (await (await fetch(`${prom.url}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ health: string; lastError: string }> } };
      assert.equal(health.data.activeTargets[0].health, 'up', health.data.activeTargets[0].lastError);
    });
  });
}
