import type { MetricDef } from './types.js';

const EM = ['engine', 'model'] as const;

/** Bounds of the latency histograms: the engines' own bounds (vLLM, SGLang) merged, so re-bucketing is exact for them. */
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 15, 20, 25, 30, 40, 80, 160, 640, 2560];
export const ITL_BUCKETS = [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
export const REQUEST_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

/** Inference engine and training throughput, normalized across engines. */
export const servingMetrics: readonly MetricDef[] = [
  { name: 'ds_engine_up', type: 'gauge', unit: '', source: 'engine', labels: ['target', 'engine'], help: '1 when the engine target answered with a parseable payload.' },
  { name: 'ds_engine_scrape_errors_total', type: 'counter', unit: '', source: 'engine', labels: ['target', 'reason'], help: 'Failed scrapes of an engine target by reason (timeout, refused, network, http_status, too_large, parse).' },
  { name: 'ds_serving_tokens_total', type: 'counter', unit: '', source: 'engine', labels: ['engine', 'model', 'phase'], help: 'Tokens processed, following the engine counters across their resets (phase=prompt: every prompt token, prompt-cache hits included; phase=generation: generated tokens).' },
  { name: 'ds_serving_prompt_cached_tokens_total', type: 'counter', unit: '', source: 'engine', labels: EM, help: 'Prompt tokens served from the prefix (prompt) cache instead of being computed; a part of phase="prompt" of ds_serving_tokens_total.' },
  { name: 'ds_serving_throughput_tokens_per_second', type: 'gauge', unit: 'tokens_per_second', source: 'engine', labels: ['engine', 'model', 'phase'], help: 'Tokens per second over the last sample window, from ds_serving_tokens_total (for readers without Prometheus; rate() the counter instead).' },
  { name: 'ds_serving_requests_total', type: 'counter', unit: '', source: 'engine', labels: ['engine', 'model', 'outcome'], help: 'Finished requests by outcome, following the engine counter across its resets.' },
  { name: 'ds_serving_requests_running', type: 'gauge', unit: '', source: 'engine', labels: EM, help: 'Requests being processed.' },
  { name: 'ds_serving_requests_waiting', type: 'gauge', unit: '', source: 'engine', labels: EM, help: 'Requests queued.' },
  { name: 'ds_serving_kv_cache_usage_ratio', type: 'gauge', unit: 'ratio', source: 'engine', labels: EM, help: 'Fraction of the KV cache in use.' },
  { name: 'ds_serving_prefill_seconds_total', type: 'counter', unit: 'seconds', source: 'engine', labels: EM, help: 'Time requests spent in prefill (prompt processing), summed over requests.' },
  { name: 'ds_serving_decode_seconds_total', type: 'counter', unit: 'seconds', source: 'engine', labels: EM, help: 'Time requests spent decoding, summed over requests; divided by generated tokens it is the mean inter-token latency.' },
  { name: 'ds_serving_preemptions_total', type: 'counter', unit: '', source: 'engine', labels: EM, help: 'Requests preempted (or retracted) because the KV cache ran out; their work is recomputed.' },
  { name: 'ds_serving_rejected_requests_total', type: 'counter', unit: '', source: 'engine', labels: EM, help: 'Requests refused at admission (queue full, overloaded) before any work was done.' },
  { name: 'ds_serving_spec_decode_draft_tokens_total', type: 'counter', unit: '', source: 'engine', labels: EM, help: 'Speculative decoding: tokens proposed by the draft.' },
  { name: 'ds_serving_spec_decode_accepted_tokens_total', type: 'counter', unit: '', source: 'engine', labels: EM, help: 'Speculative decoding: draft tokens accepted by the target model.' },
  { name: 'ds_serving_time_to_first_token_seconds', type: 'histogram', unit: 'seconds', source: 'engine', labels: EM, buckets: TTFT_BUCKETS, help: 'Time to first token, the engine histogram followed across its resets and re-bucketed onto these bounds (an observation never moves to a lower bucket).' },
  { name: 'ds_serving_inter_token_latency_seconds', type: 'histogram', unit: 'seconds', source: 'engine', labels: EM, buckets: ITL_BUCKETS, help: 'Inter-token latency, the engine histogram followed across its resets and re-bucketed onto these bounds.' },
  { name: 'ds_serving_e2e_request_latency_seconds', type: 'histogram', unit: 'seconds', source: 'engine', labels: EM, buckets: REQUEST_BUCKETS, help: 'End-to-end request latency, the engine histogram followed across its resets and re-bucketed onto these bounds.' },
  { name: 'ds_serving_queue_time_seconds', type: 'histogram', unit: 'seconds', source: 'engine', labels: EM, buckets: REQUEST_BUCKETS, help: 'Time requests waited in the engine queue before being scheduled, the engine histogram followed across its resets and re-bucketed onto these bounds.' },
  { name: 'ds_training_throughput_samples_per_second', type: 'gauge', unit: 'samples_per_second', source: 'push', labels: ['job', 'rank'], help: 'Training samples per second over the last window.' },
  { name: 'ds_training_samples_total', type: 'counter', unit: '', source: 'push', labels: ['job', 'rank'], help: 'Training samples processed.' },
  { name: 'ds_training_steps_total', type: 'counter', unit: '', source: 'push', labels: ['job', 'rank'], help: 'Training steps completed.' },
];
