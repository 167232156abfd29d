import { histogramSeries, type Exposition, type Family, type SampleLabels } from '../../parse/exposition.js';
import { scaleHist, type Hist } from './window.js';

/** Engines recognized from their payload (the `engine` label value). */
export const ENGINE_KINDS = ['vllm', 'sglang', 'tgi', 'triton', 'trtllm', 'llamacpp', 'dynamo', 'epp'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

/** A metric of an engine; `where` keeps only samples with these label values. */
export interface Source {
  readonly name: string;
  readonly where?: Readonly<Record<string, string>>;
  /** Factor to the exported unit (ms histograms: 0.001; percent gauges: 0.01). */
  readonly scale?: number;
  /** The source is a histogram whose `_sum` is the counter wanted (e.g. per-request prefill time). */
  readonly histSum?: boolean;
}

/** Monotonic counters the engines expose, followed across resets into catalog counters. */
export const COUNTERS = ['promptTokens', 'generationTokens', 'cachedTokens', 'prefillSeconds', 'decodeSeconds', 'preemptions', 'rejections', 'specDraftTokens', 'specAcceptedTokens'] as const;
export type CounterId = (typeof COUNTERS)[number];

/** Latency histograms the engines expose, re-bucketed onto the catalog's bounds. */
export const HISTOGRAMS = ['ttft', 'itl', 'e2e', 'queue'] as const;
export type HistId = (typeof HISTOGRAMS)[number];

/** Where each normalized value comes from, per engine; the first source holding a model wins. */
export interface EngineAliases {
  /** Label holding the model; absent: the engine exposes none and the model comes from its API (or is `unknown`). */
  readonly modelLabel?: string;
  /** Family-name prefixes that identify the engine. */
  readonly detect: readonly string[];
  /** Engine counters, by the catalog counter they feed. */
  readonly counters?: Partial<Record<CounterId, readonly Source[]>>;
  /**
   * The engine's prompt-token counter leaves out prompt-cache hits (llama.cpp): the
   * exported prompt tokens are that counter plus the cached tokens, so "prompt" means all
   * prompt tokens processed on every engine.
   */
  readonly promptExcludesCached?: boolean;
  /** Finished-request counters with a finish-reason label, mapped by `outcomeOf`. */
  readonly requestsByReason?: readonly Source[];
  readonly reasonLabel?: string;
  /** Finished-request counters of one fixed outcome. */
  readonly requestsSuccess?: readonly Source[];
  readonly requestsError?: readonly Source[];
  readonly requestsAborted?: readonly Source[];
  /** All finished requests; success is this minus errors and aborts. */
  readonly requestsAll?: readonly Source[];
  readonly running?: readonly Source[];
  readonly waiting?: readonly Source[];
  /** KV-cache usage as a 0..1 ratio after `scale`. */
  readonly kvCache?: readonly Source[];
  /** KV-cache usage as used/total blocks (both sources required). */
  readonly kvCacheUsedTotal?: { readonly used: Source; readonly total: Source };
  /** Latency histograms, in seconds after `scale`. */
  readonly histograms?: Partial<Record<HistId, readonly Source[]>>;
}

const p = (name: string, extra: Partial<Source> = {}): Source => ({ name, ...extra });
const sum = (name: string, extra: Partial<Source> = {}): Source => ({ name, histSum: true, ...extra });

/**
 * The alias table. Names vary across engine versions; newer names come first. A name
 * with an engine prefix is also matched with the other separator (`sglang:` and
 * `sglang_`), and counters with and without `_total`. docs/engines.md cites the engine
 * version each row was checked against.
 */
export const ALIASES: Readonly<Record<EngineKind, EngineAliases>> = {
  vllm: {
    modelLabel: 'model_name',
    detect: ['vllm:', 'vllm_'],
    counters: {
      // vLLM counts every prompt token, prefix-cache hits included.
      promptTokens: [p('vllm:prompt_tokens_total')],
      generationTokens: [p('vllm:generation_tokens_total')],
      // Local and external (KV connector) hits; older versions count local hits only.
      cachedTokens: [p('vllm:prompt_tokens_cached_total'), p('vllm:prefix_cache_hits_total'), p('vllm:gpu_prefix_cache_hits_total')],
      prefillSeconds: [sum('vllm:request_prefill_time_seconds')],
      decodeSeconds: [sum('vllm:request_decode_time_seconds')],
      preemptions: [p('vllm:num_preemptions_total')],
      rejections: [p('vllm:admission_rejections_total')],
      specDraftTokens: [p('vllm:spec_decode_num_draft_tokens_total')],
      specAcceptedTokens: [p('vllm:spec_decode_num_accepted_tokens_total')],
    },
    requestsByReason: [p('vllm:request_success_total')],
    reasonLabel: 'finished_reason',
    running: [p('vllm:num_requests_running')],
    waiting: [p('vllm:num_requests_waiting')],
    kvCache: [p('vllm:kv_cache_usage_perc'), p('vllm:gpu_cache_usage_perc')],
    histograms: {
      ttft: [p('vllm:time_to_first_token_seconds')],
      itl: [p('vllm:inter_token_latency_seconds'), p('vllm:time_per_output_token_seconds')],
      e2e: [p('vllm:e2e_request_latency_seconds')],
      queue: [p('vllm:request_queue_time_seconds')],
    },
  },
  sglang: {
    modelLabel: 'model_name',
    detect: ['sglang:', 'sglang_'],
    counters: {
      promptTokens: [p('sglang:prompt_tokens_total')],
      generationTokens: [p('sglang:generation_tokens_total')],
      cachedTokens: [p('sglang:cached_tokens_total')],
      // SGLang calls preemption "retraction"; its speculative decoding has gauges only.
      preemptions: [p('sglang:num_retracted_requests_total')],
    },
    requestsAll: [p('sglang:num_requests_total')],
    requestsAborted: [p('sglang:num_aborted_requests_total')],
    running: [p('sglang:num_running_reqs')],
    waiting: [p('sglang:num_queue_reqs')],
    kvCache: [p('sglang:token_usage')],
    histograms: {
      ttft: [p('sglang:time_to_first_token_seconds')],
      itl: [p('sglang:inter_token_latency_seconds'), p('sglang:time_per_output_token_seconds')],
      e2e: [p('sglang:e2e_request_latency_seconds')],
      queue: [p('sglang:queue_time_seconds')],
    },
  },
  tgi: {
    detect: ['tgi_'],
    counters: {
      // TGI has no token counters: the per-request length histograms' sums count the tokens.
      promptTokens: [sum('tgi_request_input_length')],
      generationTokens: [sum('tgi_request_generated_tokens')],
      // The concurrency limit turning a request away.
      rejections: [p('tgi_request_failure', { where: { err: 'overloaded' } })],
    },
    requestsSuccess: [p('tgi_request_success')],
    requestsError: [p('tgi_request_failure')],
    running: [p('tgi_batch_current_size')],
    waiting: [p('tgi_queue_size')],
    histograms: {
      itl: [p('tgi_request_mean_time_per_token_duration')],
      e2e: [p('tgi_request_duration')],
      queue: [p('tgi_request_queue_duration')],
    },
  },
  triton: {
    modelLabel: 'model',
    detect: ['nv_inference_', 'nv_trt_llm_'],
    counters: {
      rejections: [p('nv_inference_request_failure', { where: { reason: 'REJECTED' } })],
    },
    requestsSuccess: [p('nv_inference_request_success')],
    requestsError: [p('nv_inference_request_failure')],
    running: [p('nv_trt_llm_request_metrics', { where: { request_type: 'active' } })],
    waiting: [p('nv_trt_llm_request_metrics', { where: { request_type: 'waiting' } }), p('nv_inference_pending_request_count')],
    kvCacheUsedTotal: {
      used: p('nv_trt_llm_kv_cache_block_metrics', { where: { kv_cache_block_type: 'used' } }),
      total: p('nv_trt_llm_kv_cache_block_metrics', { where: { kv_cache_block_type: 'max' } }),
    },
    kvCache: [p('nv_trt_llm_kv_cache_block_metrics', { where: { kv_cache_block_type: 'fraction' } })],
    histograms: {
      ttft: [p('nv_inference_first_response_histogram_ms', { scale: 0.001 })],
    },
  },
  trtllm: {
    modelLabel: 'model_name',
    detect: ['trtllm_', 'trtllm:'],
    counters: {
      promptTokens: [p('trtllm_prompt_tokens_total')],
      generationTokens: [p('trtllm_generation_tokens_total')],
      cachedTokens: [p('trtllm_prompt_cached_tokens_total')],
      prefillSeconds: [sum('trtllm_request_prefill_time_seconds')],
      decodeSeconds: [sum('trtllm_request_decode_time_seconds')],
      specDraftTokens: [p('trtllm_spec_decode_num_draft_tokens_total')],
      specAcceptedTokens: [p('trtllm_spec_decode_num_accepted_tokens_total')],
    },
    requestsByReason: [p('trtllm_request_success_total')],
    reasonLabel: 'finished_reason',
    running: [p('trtllm_num_requests_running')],
    waiting: [p('trtllm_num_requests_waiting')],
    kvCache: [p('trtllm_kv_cache_utilization'), p('trtllm_kv_cache_usage_perc')],
    histograms: {
      ttft: [p('trtllm_time_to_first_token_seconds')],
      itl: [p('trtllm_inter_token_latency_seconds'), p('trtllm_time_per_output_token_seconds')],
      e2e: [p('trtllm_e2e_request_latency_seconds')],
      queue: [p('trtllm_request_queue_time_seconds')],
    },
  },
  llamacpp: {
    detect: ['llamacpp:', 'llamacpp_'],
    counters: {
      promptTokens: [p('llamacpp:prompt_tokens_total')],
      generationTokens: [p('llamacpp:tokens_predicted_total')],
      cachedTokens: [p('llamacpp:prompt_tokens_cached_total')],
      prefillSeconds: [p('llamacpp:prompt_seconds_total')],
      decodeSeconds: [p('llamacpp:tokens_predicted_seconds_total')],
      specDraftTokens: [p('llamacpp:spec_decode_num_draft_tokens_total')],
      specAcceptedTokens: [p('llamacpp:spec_decode_num_accepted_tokens_total')],
    },
    promptExcludesCached: true,
    running: [p('llamacpp:requests_processing')],
    waiting: [p('llamacpp:requests_deferred')],
    // Older servers only; current ones expose no KV-cache usage.
    kvCache: [p('llamacpp:kv_cache_usage_ratio')],
  },
  dynamo: {
    modelLabel: 'model',
    detect: ['dynamo_frontend_', 'dynamo_component_'],
    counters: {
      // The frontend counts prompts only per request (a histogram); its _sum is the count of tokens.
      promptTokens: [sum('dynamo_frontend_input_sequence_tokens')],
      generationTokens: [p('dynamo_frontend_output_tokens_total'), sum('dynamo_frontend_output_sequence_tokens')],
      cachedTokens: [sum('dynamo_frontend_cached_tokens')],
      rejections: [p('dynamo_frontend_model_rejection_total')],
    },
    requestsByReason: [p('dynamo_frontend_requests_total')],
    reasonLabel: 'status',
    running: [p('dynamo_frontend_active_requests'), p('dynamo_frontend_inflight_requests')],
    // Requests not yet at their first token (prefill included).
    waiting: [p('dynamo_frontend_queued_requests')],
    // Worker endpoints: a 0..1 fraction despite the name.
    kvCache: [p('dynamo_component_gpu_cache_usage_percent'), p('dynamo_component_kvstats_gpu_cache_usage_percent')],
    histograms: {
      ttft: [p('dynamo_frontend_time_to_first_token_seconds')],
      itl: [p('dynamo_frontend_inter_token_latency_seconds')],
      e2e: [p('dynamo_frontend_request_duration_seconds')],
    },
  },
  epp: {
    // The endpoint picker of the Gateway API Inference Extension (llm-d-router): the
    // gateway's view of every request to a pool, by the model the client asked for.
    modelLabel: 'model_name',
    detect: ['llm_d_epp_', 'inference_objective_', 'inference_model_', 'inference_pool_'],
    counters: {
      promptTokens: [sum('llm_d_epp_request_input_tokens'), sum('inference_objective_input_tokens'), sum('inference_model_input_tokens')],
      generationTokens: [sum('llm_d_epp_request_output_tokens'), sum('inference_objective_output_tokens'), sum('inference_model_output_tokens')],
      cachedTokens: [sum('llm_d_epp_request_cached_tokens'), sum('inference_objective_prompt_cached_tokens')],
    },
    requestsAll: [p('llm_d_epp_request_total'), p('inference_objective_request_total'), p('inference_model_request_total')],
    requestsError: [p('llm_d_epp_request_error_total'), p('inference_objective_request_error_total'), p('inference_model_request_error_total')],
    running: [p('llm_d_epp_request_running'), p('inference_objective_running_requests'), p('inference_model_running_requests')],
    histograms: {
      ttft: [p('llm_d_epp_request_ttft_seconds'), p('inference_objective_request_ttft_seconds')],
      itl: [p('llm_d_epp_request_streaming_itl_seconds')],
      e2e: [p('llm_d_epp_request_duration_seconds'), p('inference_objective_request_duration_seconds'), p('inference_model_request_duration_seconds')],
    },
  },
};

/** What one payload says about one model, in cumulative form (the window is computed later). */
export interface ModelReading {
  /** All prompt tokens processed, prompt-cache hits included. */
  promptTokens?: number;
  generationTokens?: number;
  /** The other engine counters (cumulative as the engine counts them). */
  readonly counters: Map<CounterId, number>;
  /** Finished requests by outcome, cumulative as the engine counts them. */
  readonly requests: Map<string, number>;
  running?: number;
  waiting?: number;
  kvCacheRatio?: number;
  /** Cumulative histograms in seconds, with their `_sum` where the engine gives it. */
  ttft?: Hist;
  itl?: Hist;
  e2e?: Hist;
  queue?: Hist;
}

/** What one payload says, by model. */
export interface EngineReading {
  readonly engine: EngineKind | 'unknown';
  readonly models: Map<string, ModelReading>;
}

/** Maps an engine's finish reason to an outcome: success, aborted or error. */
export function outcomeOf(reason: string | undefined): 'success' | 'aborted' | 'error' {
  const r = (reason ?? '').toLowerCase();
  if (/abort|cancel/.test(r)) return 'aborted';
  if (/error|fail/.test(r)) return 'error';
  return 'success';
}

/** The engine whose prefixes name the most families; `unknown` when none does. */
export function detectEngine(exp: Exposition): EngineKind | 'unknown' {
  let best: EngineKind | 'unknown' = 'unknown';
  let bestCount = 0;
  for (const kind of ENGINE_KINDS) {
    const prefixes = ALIASES[kind].detect;
    let n = 0;
    for (const name of exp.families.keys()) if (prefixes.some((pre) => name.startsWith(pre))) n++;
    if (n > bestCount) {
      best = kind;
      bestCount = n;
    }
  }
  return best;
}

const PREFIX_RE = /^(vllm|sglang|llamacpp|trtllm|tgi)[:_](.*)$/;

/** Names under which `name` may appear: both prefix separators, with and without `_total`. */
export function nameVariants(name: string): string[] {
  const m = PREFIX_RE.exec(name);
  const base = m ? [`${m[1]}:${m[2]}`, `${m[1]}_${m[2]}`] : [name];
  if (m && base[1] === name) base.reverse();
  const out: string[] = [];
  for (const b of base) {
    out.push(b);
    out.push(b.endsWith('_total') ? b.slice(0, -6) : b + '_total');
  }
  return out;
}

function findFamily(exp: Exposition, name: string): Family | undefined {
  for (const n of nameVariants(name)) {
    const f = exp.families.get(n);
    if (f && f.samples.length > 0) return f;
  }
  return undefined;
}

function matches(labels: SampleLabels, where: Source['where']): boolean {
  if (!where) return true;
  for (const [k, v] of Object.entries(where)) if (labels[k] !== v) return false;
  return true;
}

/**
 * The plain samples (not _created, _bucket, ...) of a source by model, summed over other
 * labels (e.g. vLLM's per-engine-core `engine` label), or their maximum with `max`.
 */
function valuesByModel(exp: Exposition, src: Source, modelLabel: string | undefined, label?: string, combine: 'sum' | 'max' = 'sum'): Map<string, number> | undefined {
  if (src.histSum) {
    const hs = histsByModel(exp, src, modelLabel);
    if (!hs) return undefined;
    const out = new Map<string, number>();
    for (const [m, h] of hs) if (h.sum !== undefined) out.set(m, h.sum * (src.scale ?? 1));
    return out.size ? out : undefined;
  }
  const f = findFamily(exp, src.name);
  if (!f || f.type === 'histogram' || f.type === 'summary') return undefined;
  const out = new Map<string, number>();
  for (const s of f.samples) {
    if (s.name !== f.name && s.name !== f.name + '_total') continue;
    if (!matches(s.labels, src.where) || !Number.isFinite(s.value)) continue;
    const model = (modelLabel && s.labels[modelLabel]) || 'unknown';
    const key = label === undefined ? model : model + '\u0000' + (s.labels[label] ?? '');
    const v = s.value * (src.scale ?? 1);
    const prev = out.get(key);
    out.set(key, prev === undefined ? v : combine === 'max' ? Math.max(prev, v) : prev + v);
  }
  return out.size ? out : undefined;
}

function histsByModel(exp: Exposition, src: Source, modelLabel: string | undefined): Map<string, { hist: Hist; sum?: number }> | undefined {
  let series = histogramSeries(exp, src.name);
  if (series.length === 0) {
    for (const n of nameVariants(src.name)) {
      series = histogramSeries(exp, n);
      if (series.length) break;
    }
  }
  const out = new Map<string, { hist: Hist; sum?: number }>();
  for (const s of series) {
    if (!matches(s.labels, src.where)) continue;
    const model = (modelLabel && s.labels[modelLabel]) || 'unknown';
    const sum = s.sum !== undefined && Number.isFinite(s.sum) ? s.sum : undefined;
    const hist = scaleHist({ bounds: s.bounds, counts: s.counts, sum }, src.scale ?? 1);
    const prev = out.get(model);
    if (!prev) out.set(model, { hist, sum });
    else if (prev.hist.bounds.length === hist.bounds.length && prev.hist.bounds.every((b, i) => b === hist.bounds[i])) {
      // Several series of one model (e.g. vLLM's per-engine-core label) add up.
      const both = prev.sum !== undefined && sum !== undefined ? prev.sum + sum : undefined;
      out.set(model, { hist: { bounds: hist.bounds, counts: prev.hist.counts.map((c, i) => c + hist.counts[i]), sum: prev.hist.sum !== undefined && hist.sum !== undefined ? prev.hist.sum + hist.sum : undefined }, sum: both });
    }
  }
  return out.size ? out : undefined;
}

/**
 * Reads one payload through the alias table of `engine`. Pure: the same payload gives
 * the same reading. Values the engine does not expose stay undefined.
 */
export function extractReading(exp: Exposition, engine: EngineKind | 'unknown'): EngineReading {
  const models = new Map<string, ModelReading>();
  if (engine === 'unknown') return { engine, models };
  const a = ALIASES[engine];
  const model = (m: string): ModelReading => {
    let r = models.get(m);
    if (!r) models.set(m, (r = { counters: new Map(), requests: new Map() }));
    return r;
  };
  /** For each model, the first source that has it. */
  const firstPerModel = (sources: readonly Source[] | undefined, set: (r: ModelReading, v: number) => void, combine: 'sum' | 'max' = 'sum') => {
    const done = new Set<string>();
    for (const src of sources ?? []) {
      const vals = valuesByModel(exp, src, a.modelLabel, undefined, combine);
      if (!vals) continue;
      for (const [m, v] of vals) {
        if (done.has(m)) continue;
        done.add(m);
        set(model(m), v);
      }
    }
  };
  const firstHistPerModel = (sources: readonly Source[] | undefined, set: (r: ModelReading, h: Hist) => void) => {
    const done = new Set<string>();
    for (const src of sources ?? []) {
      const hs = histsByModel(exp, src, a.modelLabel);
      if (!hs) continue;
      for (const [m, h] of hs) {
        if (done.has(m)) continue;
        done.add(m);
        set(model(m), h.hist);
      }
    }
  };
  for (const id of COUNTERS) {
    if (id === 'promptTokens' || id === 'generationTokens') continue;
    firstPerModel(a.counters?.[id], (r, v) => r.counters.set(id, v));
  }
  firstPerModel(a.counters?.promptTokens, (r, v) => (r.promptTokens = v));
  firstPerModel(a.counters?.generationTokens, (r, v) => (r.generationTokens = v));
  if (a.promptExcludesCached) {
    for (const r of models.values()) {
      const cached = r.counters.get('cachedTokens');
      if (r.promptTokens !== undefined && cached !== undefined) r.promptTokens += cached;
    }
  }
  firstPerModel(a.running, (r, v) => (r.running = v));
  firstPerModel(a.waiting, (r, v) => (r.waiting = v));
  if (a.kvCacheUsedTotal) {
    const used = valuesByModel(exp, a.kvCacheUsedTotal.used, a.modelLabel);
    const total = valuesByModel(exp, a.kvCacheUsedTotal.total, a.modelLabel);
    for (const [m, u] of used ?? []) {
      const t = total?.get(m);
      if (t !== undefined && t > 0) model(m).kvCacheRatio = u / t;
    }
  }
  firstPerModel(a.kvCache, (r, v) => {
    if (r.kvCacheRatio !== undefined) return;
    // A ratio above 1 can only be a percentage; anything beyond 100 is nonsense and dropped.
    const ratio = v > 1 && v <= 100 ? v / 100 : v;
    if (ratio >= 0 && ratio <= 1) r.kvCacheRatio = ratio;
  }, 'max');
  for (const id of HISTOGRAMS) firstHistPerModel(a.histograms?.[id], (r, h) => (r[id] = h));

  // Requests: by finish reason, by fixed outcome, or all minus the failed ones.
  const addReq = (m: string, outcome: string, v: number) => {
    const reqs = model(m).requests;
    reqs.set(outcome, (reqs.get(outcome) ?? 0) + v);
  };
  for (const src of a.requestsByReason ?? []) {
    const vals = valuesByModel(exp, src, a.modelLabel, a.reasonLabel ?? 'finished_reason');
    if (!vals) continue;
    for (const [key, v] of vals) {
      const [m, reason] = key.split('\u0000');
      addReq(m, outcomeOf(reason), v);
    }
    break;
  }
  const fixed = (sources: readonly Source[] | undefined, outcome: string) => {
    for (const src of sources ?? []) {
      const vals = valuesByModel(exp, src, a.modelLabel);
      if (!vals) continue;
      for (const [m, v] of vals) addReq(m, outcome, v);
      return vals;
    }
    return undefined;
  };
  fixed(a.requestsSuccess, 'success');
  const errors = fixed(a.requestsError, 'error');
  const aborted = fixed(a.requestsAborted, 'aborted');
  for (const src of a.requestsAll ?? []) {
    const vals = valuesByModel(exp, src, a.modelLabel);
    if (!vals) continue;
    for (const [m, v] of vals) addReq(m, 'success', Math.max(0, v - (aborted?.get(m) ?? 0) - (errors?.get(m) ?? 0)));
    break;
  }
  return { engine, models };
}
