import assert from 'node:assert/strict';
import { test } from 'node:test';
import { catalog } from '../src/catalog/index.js';

const HEADLINE: Record<string, { type: string; labels: string[] }> = {
  ds_gpu_info: { type: 'info', labels: ['gpu', 'uuid', 'name', 'pci_bus_id', 'driver_version', 'mig_mode'] },
  ds_gpu_utilization_ratio: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_gpu_busy_seconds_total: { type: 'counter', labels: ['gpu', 'uuid'] },
  ds_gpu_allocation_info: { type: 'info', labels: ['gpu', 'uuid', 'namespace', 'pod', 'container'] },
  ds_gpu_memory_used_bytes: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_gpu_memory_total_bytes: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_gpu_memory_utilization_ratio: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_gpu_memory_fragmentation_ratio: { type: 'gauge', labels: ['gpu', 'uuid', 'pid', 'job'] },
  ds_gpu_power_watts: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_gpu_temperature_celsius: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_gpu_up: { type: 'gauge', labels: ['gpu', 'uuid'] },
  ds_serving_throughput_tokens_per_second: { type: 'gauge', labels: ['engine', 'model', 'phase'] },
  ds_serving_requests_total: { type: 'counter', labels: ['engine', 'model', 'outcome'] },
  ds_training_throughput_samples_per_second: { type: 'gauge', labels: ['job', 'rank'] },
  ds_comm_peer_latency_seconds: { type: 'histogram', labels: ['peer'] },
  ds_comm_collective_latency_seconds: { type: 'histogram', labels: ['op', 'job'] },
  ds_exporter_collector_success: { type: 'gauge', labels: ['collector'] },
  ds_exporter_collector_duration_seconds: { type: 'gauge', labels: ['collector'] },
  ds_exporter_build_info: { type: 'info', labels: ['version', 'node_version'] },
};

test('the headline metrics of the design hold their names, types and labels', () => {
  for (const [name, want] of Object.entries(HEADLINE)) {
    const def = catalog.find((m) => m.name === name);
    assert.ok(def, `${name} missing from the catalog`);
    assert.equal(def.type, want.type, name);
    assert.deepEqual([...def.labels], want.labels, name);
  }
});

test('every catalog entry follows Prometheus naming', () => {
  const seen = new Set<string>();
  for (const m of catalog) {
    assert.ok(!seen.has(m.name), `${m.name} twice`);
    seen.add(m.name);
    assert.match(m.name, /^ds_[a-z0-9_]+$/, m.name);
    assert.ok(m.help.length > 10, `${m.name}: help`);
    if (m.type === 'counter') assert.match(m.name, /_total$/, `${m.name}: counters end in _total`);
    else assert.doesNotMatch(m.name, /_total$/, `${m.name}: only counters end in _total`);
    if (m.type === 'info') assert.match(m.name, /_info$/, m.name);
    if (m.unit) assert.ok(m.name.replace(/_total$/, '').endsWith('_' + m.unit), `${m.name}: unit ${m.unit} is its suffix`);
    if (m.unit === 'ratio') assert.match(m.name, /_ratio$/);
    if (m.type === 'histogram') {
      assert.ok(m.buckets && m.buckets.length > 3, `${m.name}: buckets`);
      for (let i = 1; i < m.buckets.length; i++) assert.ok(m.buckets[i] > m.buckets[i - 1], `${m.name}: buckets ascend`);
    }
    for (const l of m.labels) assert.match(l, /^[a-z_][a-z0-9_]*$/, `${m.name}: label ${l}`);
  }
});

test('histogram buckets span the ranges the design asks for', () => {
  const peer = catalog.find((m) => m.name === 'ds_comm_peer_latency_seconds')!.buckets!;
  assert.equal(peer[0], 25e-6);
  assert.equal(peer[peer.length - 1], 10);
  const coll = catalog.find((m) => m.name === 'ds_comm_collective_latency_seconds')!.buckets!;
  assert.equal(coll[0], 10e-6);
  assert.equal(coll[coll.length - 1], 10);
});
