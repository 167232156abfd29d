import type { MetricDef } from './types.js';

/** The exporter's own health. */
export const exporterMetrics: readonly MetricDef[] = [
  { name: 'ds_exporter_build_info', type: 'info', unit: '', source: 'exporter', labels: ['version', 'node_version'], help: 'Build of the running exporter; always 1.' },
  { name: 'ds_exporter_gpu_source_info', type: 'info', unit: '', source: 'exporter', labels: ['source'], help: 'The GPU source in use (nvml, nvidia-smi or simulated); always 1.' },
  { name: 'ds_exporter_collector_success', type: 'gauge', unit: '', source: 'exporter', labels: ['collector'], help: '1 when the last sample of the collector succeeded.' },
  { name: 'ds_exporter_collector_duration_seconds', type: 'gauge', unit: 'seconds', source: 'exporter', labels: ['collector'], help: 'Duration of the last sample of the collector.' },
  { name: 'ds_exporter_collector_last_success_timestamp_seconds', type: 'gauge', unit: 'seconds', source: 'exporter', labels: ['collector'], help: 'Unix time of the last successful sample of the collector.' },
  { name: 'ds_exporter_push_requests_total', type: 'counter', unit: '', source: 'exporter', labels: ['code'], help: 'Answers of POST /api/v1/push by HTTP status (202 accepted; 400, 401, 413, 415, 429 refused).' },
  { name: 'ds_exporter_push_reporters', type: 'gauge', unit: '', source: 'exporter', labels: [], help: 'Reporters whose pushes are held (pushed within --push.ttl).' },
];
