import type { MetricDef } from './types.js';

const EM = ['engine', 'model'] as const;
const Q = ['engine', 'model', 'percentile'] as const;

/** Inference engine and training throughput, normalized across engines. */
export const servingMetrics: readonly MetricDef[] = [
  { name: 'ds_engine_up', type: 'gauge', unit: '', source: 'engine', labels: ['target', 'engine'], help: '1 when the engine target answered with a parseable payload.' },
  { name: 'ds_engine_scrape_errors_total', type: 'counter', unit: '', source: 'engine', labels: ['target', 'reason'], help: 'Failed scrapes of an engine target by reason (timeout, refused, network, http_status, too_large, parse).' },
  { name: 'ds_serving_throughput_tokens_per_second', type: 'gauge', unit: 'tokens_per_second', source: 'engine', labels: ['engine', 'model', 'phase'], help: 'Tokens per second over the last sample window, from counter deltas (phase=prompt|generation).' },
  { name: 'ds_serving_requests_total', type: 'counter', unit: '', source: 'engine', labels: ['engine', 'model', 'outcome'], help: 'Finished requests by outcome, following the engine counter across its resets.' },
  { name: 'ds_serving_requests_running', type: 'gauge', unit: '', source: 'engine', labels: EM, help: 'Requests being processed.' },
  { name: 'ds_serving_requests_waiting', type: 'gauge', unit: '', source: 'engine', labels: EM, help: 'Requests queued.' },
  { name: 'ds_serving_kv_cache_usage_ratio', type: 'gauge', unit: 'ratio', source: 'engine', labels: EM, help: 'Fraction of the KV cache in use.' },
  { name: 'ds_serving_time_to_first_token_seconds', type: 'gauge', unit: 'seconds', source: 'engine', labels: Q, help: 'Time to first token over the last sample window, by percentile (p50, p90, p99).' },
  { name: 'ds_serving_inter_token_latency_seconds', type: 'gauge', unit: 'seconds', source: 'engine', labels: Q, help: 'Inter-token latency over the last sample window, by percentile (p50, p90, p99).' },
  { name: 'ds_serving_e2e_request_latency_seconds', type: 'gauge', unit: 'seconds', source: 'engine', labels: Q, help: 'End-to-end request latency over the last sample window, by percentile (p50, p90, p99).' },
  { name: 'ds_training_throughput_samples_per_second', type: 'gauge', unit: 'samples_per_second', source: 'push', labels: ['job', 'rank'], help: 'Training samples per second over the last window.' },
  { name: 'ds_training_samples_total', type: 'counter', unit: '', source: 'push', labels: ['job', 'rank'], help: 'Training samples processed.' },
  { name: 'ds_training_steps_total', type: 'counter', unit: '', source: 'push', labels: ['job', 'rank'], help: 'Training steps completed.' },
];
