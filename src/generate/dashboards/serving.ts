import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { dashboardShell, queries, row, statPanel, timeSeries } from './common.js';

const EM = '{{engine}} {{model}}';

/** Serving: normalized engine metrics per engine and model, and training throughput. */
export function servingDashboard(): dashboard.Dashboard {
  const q = queries(['engine', 'model']);
  const s = q.s;
  const reqs = (...extra: string[]) => `rate(${s('ds_serving_requests_total', ...extra)}[$__rate_interval])`;
  const rate = (metric: string, ...extra: string[]) => `rate(${s(metric, ...extra)}[$__rate_interval])`;
  const tokens = (phase: string) => rate('ds_serving_tokens_total', `phase="${phase}"`);
  // Quantiles from the exported histograms, merged over hosts: exact over any window.
  const latency = (metric: string, what: string) =>
    timeSeries({
      title: `${what} percentiles`,
      description: `${what} per engine and model at p50, p90 and p99: histogram_quantile over rate() of ${metric} (the engines' histograms, followed across restarts), all hosts merged.`,
      unit: 's',
      w: 6,
      targets: [0.5, 0.9, 0.99].map((q) => ({ expr: `histogram_quantile(${q}, sum by (engine, model, le) (${rate(metric + '_bucket')}))`, legend: `${EM} p${Math.round(q * 100)}` })),
    });
  return dashboardShell({
    uid: 'ds-exporter-serving',
    title: 'ds-exporter / Serving',
    description: 'Inference engines (vLLM, SGLang, TGI, Triton, TensorRT-LLM, llama.cpp, Dynamo, the inference gateway) normalized to one set of metrics: tokens/s, requests, queue, KV cache, stall signals and latency percentiles, plus training throughput.',
    tags: ['serving'],
    filters: ['engine', 'model'],
  })
    .withRow(row('Now'))
    .withPanel(statPanel({ title: 'Generation tokens/s', description: 'Generated tokens per second of the selected engines and models (rate of ds_serving_tokens_total).', unit: 'cps', targets: [{ expr: `sum(${tokens('generation')})` }] }))
    .withPanel(statPanel({ title: 'Prompt tokens/s', description: 'Prompt tokens per second, prompt-cache hits included, of the selected engines and models.', unit: 'cps', targets: [{ expr: `sum(${tokens('prompt')})` }] }))
    .withPanel(statPanel({ title: 'Requests/s', description: 'Finished requests per second, all outcomes.', unit: 'reqps', targets: [{ expr: `sum(${reqs()})` }] }))
    .withPanel(statPanel({ title: 'Failed requests', description: 'Share of finished requests whose outcome is not success over the rate interval.', unit: 'percentunit', thresholds: [[null, 'green'], [0.01, 'orange'], [0.05, 'red']], targets: [{ expr: `sum(${reqs('outcome!="success"')}) / sum(${reqs()})` }] }))
    .withPanel(statPanel({ title: 'Waiting requests', description: 'Requests queued in the engines now.', unit: 'short', targets: [{ expr: `sum(${s('ds_serving_requests_waiting')})` }] }))
    .withPanel(statPanel({ title: 'Engines up', description: 'Engine targets that answered with a parseable payload (ds_engine_up).', unit: 'short', targets: [{ expr: `sum(${s('ds_engine_up')})` }] }))
    .withRow(row('Throughput'))
    .withPanel(timeSeries({ title: 'Tokens/s by phase', description: 'Prompt and generation tokens per second per engine and model: rate() of ds_serving_tokens_total, which follows the engines\' counters across restarts (never an engine\'s own averaged gauge).', unit: 'cps', targets: [{ expr: `sum by (engine, model, phase) (${rate('ds_serving_tokens_total')})`, legend: `${EM} {{phase}}` }] }))
    .withPanel(timeSeries({ title: 'Requests by outcome', description: 'Finished requests per second per engine, model and outcome (success, error, aborted, ...).', unit: 'reqps', stack: true, targets: [{ expr: `sum by (engine, model, outcome) (${reqs()})`, legend: `${EM} {{outcome}}` }] }))
    .withRow(row('Queue and KV cache'))
    .withPanel(timeSeries({ title: 'Running and waiting requests', description: 'Requests being processed and requests queued, per engine and model; a growing queue with a full KV cache means the engine is saturated.', unit: 'short', targets: [{ expr: `sum by (engine, model) (${s('ds_serving_requests_running')})`, legend: `${EM} running` }, { expr: `sum by (engine, model) (${s('ds_serving_requests_waiting')})`, legend: `${EM} waiting` }] }))
    .withPanel(timeSeries({ title: 'KV cache usage', description: 'Fraction of the KV cache in use per engine and model (highest host).', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `max by (engine, model) (${s('ds_serving_kv_cache_usage_ratio')})`, legend: EM }] }))
    .withRow(row('Stalls and efficiency'))
    .withPanel(timeSeries({ title: 'Prefix-cache hit ratio', description: 'Share of prompt tokens served from the prefix cache instead of being computed (cached / all prompt tokens).', unit: 'percentunit', min: 0, max: 1, w: 6, targets: [{ expr: `sum by (engine, model) (${rate('ds_serving_prompt_cached_tokens_total')}) / sum by (engine, model) (${tokens('prompt')})`, legend: EM }] }))
    .withPanel(timeSeries({ title: 'Preemptions and rejections/s', description: 'Requests preempted because the KV cache ran out (their work is recomputed) and requests refused at admission; either rising means the engine is over capacity.', unit: 'reqps', w: 6, targets: [{ expr: `sum by (engine, model) (${rate('ds_serving_preemptions_total')})`, legend: `${EM} preempted` }, { expr: `sum by (engine, model) (${rate('ds_serving_rejected_requests_total')})`, legend: `${EM} rejected` }] }))
    .withPanel(timeSeries({ title: 'Spec-decode acceptance', description: 'Share of speculative draft tokens the target model accepted; low acceptance means the draft costs more than it saves.', unit: 'percentunit', min: 0, max: 1, w: 6, targets: [{ expr: `sum by (engine, model) (${rate('ds_serving_spec_decode_accepted_tokens_total')}) / sum by (engine, model) (${rate('ds_serving_spec_decode_draft_tokens_total')})`, legend: EM }] }))
    .withPanel(timeSeries({ title: 'Mean inter-token latency', description: 'Decode time per generated token (ds_serving_decode_seconds_total / generated tokens), for engines that give time counters but no latency histogram (llama.cpp).', unit: 's', w: 6, targets: [{ expr: `sum by (engine, model) (${rate('ds_serving_decode_seconds_total')}) / sum by (engine, model) (${tokens('generation')})`, legend: EM }] }))
    .withRow(row('Latency'))
    .withPanel(latency('ds_serving_queue_time_seconds', 'Queue time'))
    .withPanel(latency('ds_serving_time_to_first_token_seconds', 'Time to first token'))
    .withPanel(latency('ds_serving_inter_token_latency_seconds', 'Inter-token latency'))
    .withPanel(latency('ds_serving_e2e_request_latency_seconds', 'End-to-end request latency'))
    .withRow(row('Training'))
    .withPanel(timeSeries({ title: 'Training samples/s', description: 'Training samples per second per training job (exported_job: the job label the reporter sent, renamed by Prometheus) and rank.', unit: 'cps', stack: true, targets: [{ expr: `sum by (exported_job, rank) (${s('ds_training_throughput_samples_per_second')})`, legend: '{{exported_job}} rank {{rank}}' }] }))
    .withPanel(timeSeries({ title: 'Training steps/s', description: 'Optimizer steps per second per training job, from rate(ds_training_steps_total); cross-checks samples/s.', unit: 'cps', targets: [{ expr: `max by (exported_job) (rate(${s('ds_training_steps_total')}[$__rate_interval]))`, legend: '{{exported_job}}' }, { expr: `sum by (exported_job) (rate(${s('ds_training_samples_total')}[$__rate_interval]))`, legend: '{{exported_job}} samples/s (counter)' }] }))
    .build();
}
