import type { MetricDef } from './types.js';

/** The exporter's own health. */
export const exporterMetrics: readonly MetricDef[] = [
  { name: 'ds_exporter_build_info', type: 'info', unit: '', source: 'exporter', labels: ['version', 'node_version'], help: 'Build of the running exporter; always 1.' },
  { name: 'ds_exporter_gpu_source_info', type: 'info', unit: '', source: 'exporter', labels: ['source'], help: 'The GPU source in use (nvml, nvidia-smi or simulated); always 1.' },
  { name: 'ds_exporter_collector_success', type: 'gauge', unit: '', source: 'exporter', labels: ['collector'], help: '1 when the last sample of the collector succeeded.' },
  { name: 'ds_exporter_collector_duration_seconds', type: 'gauge', unit: 'seconds', source: 'exporter', labels: ['collector'], help: 'Duration of the last sample of the collector.' },
  { name: 'ds_exporter_collector_last_success_timestamp_seconds', type: 'gauge', unit: 'seconds', source: 'exporter', labels: ['collector'], help: 'Unix time of the last successful sample of the collector.' },
];
