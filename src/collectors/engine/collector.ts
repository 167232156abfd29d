import type { Collector } from '../../core/collector.js';
import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Batch } from '../../core/store.js';
import { ExpositionError, parseExposition } from '../../parse/exposition.js';
import { detectEngine, extractReading, type EngineKind, type ModelReading } from './engines.js';
import { fetchPayload, ScrapeError, type EngineTarget, type ScrapeFailure } from './scrape.js';
import { counterIncrease, histogramDelta, histogramQuantile, mergeHist, type Hist } from './window.js';

export interface EngineCollectorOptions {
  readonly targets: readonly EngineTarget[];
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly maxSeries: number;
  readonly logger: Logger;
  readonly now: () => number;
  /** Replaces the HTTP fetch (benchmarks); the default is fetchPayload. */
  readonly fetch?: typeof fetchPayload;
}

interface TargetState {
  readonly target: EngineTarget;
  engine: EngineKind | 'unknown';
  /** Up or the failure message last logged; undefined before the first scrape. */
  status?: string;
  /** The last successful reading and when it was taken; dropped on failure so no window spans an outage. */
  prev?: { at: number; models: Map<string, ModelReading> };
  /** Last raw request counters by model and outcome (and the sample that saw them), kept across outages for the running totals. */
  readonly lastRequests: Map<string, { raw: number; seen: number }>;
  readonly errors: Map<ScrapeFailure, number>;
}

/** One target's contribution to an (engine, model) group in this sample. */
interface Contribution {
  promptRate?: number;
  generationRate?: number;
  running?: number;
  waiting?: number;
  kv?: number;
  ttft?: Hist;
  itl?: Hist;
  e2e?: Hist;
}

const PERCENTILES = [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]] as const;
const SEP = '\u0000';
/** Samples after which the request state of a model that disappeared is forgotten (an hour at 1 s). */
const FORGET_AFTER = 3600;

/**
 * Scrapes every engine target concurrently each sample and normalizes what it finds.
 * Rates and percentiles cover the window between two successful scrapes of a target.
 * Targets serving the same engine and model are aggregated into one series set:
 * throughput, request counts and queue sizes add up, KV-cache usage is the highest,
 * and percentiles come from the merged bucket deltas (the highest per-target value
 * when bucket layouts differ).
 */
export class EngineCollector implements Collector {
  private readonly states: TargetState[];
  /** Running request totals by engine, model and outcome, with the sample that last moved them. */
  private readonly totals = new Map<string, { value: number; seen: number }>();
  private tick = 0;
  private readonly fetch: typeof fetchPayload;

  constructor(private readonly opts: EngineCollectorOptions) {
    this.states = opts.targets.map((target) => ({ target, engine: target.kind ?? 'unknown', lastRequests: new Map(), errors: new Map() }));
    this.fetch = opts.fetch ?? fetchPayload;
  }

  async sample(batch: Batch, signal: AbortSignal): Promise<void> {
    const at = this.opts.now();
    const results = await Promise.all(
      this.states.map((s) =>
        this.fetch(s.target.url, { timeoutMs: this.opts.timeoutMs, maxBytes: this.opts.maxBytes, signal }).then(
          (text) => ({ text }),
          (err: unknown) => ({ err }),
        ),
      ),
    );
    // The exporter stopping (or the sample timing out) is not the targets' fault.
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('sample aborted');
    const groups = new Map<string, Contribution[]>();
    const touched = new Set<string>();
    this.states.forEach((s, i) => {
      const r = results[i];
      let models: Map<string, ModelReading>;
      try {
        if ('err' in r) throw r.err;
        let exp;
        try {
          exp = parseExposition(r.text, { maxBytes: this.opts.maxBytes, maxSeries: this.opts.maxSeries });
        } catch (err) {
          if (err instanceof ExpositionError) throw new ScrapeError(err.reason === 'too_large' ? 'too_large' : 'parse', `bad payload: ${err.message}`, { cause: err });
          throw err;
        }
        s.engine = s.target.kind ?? detectEngine(exp);
        models = extractReading(exp, s.engine).models;
      } catch (err) {
        this.markDown(s, err);
        batch.gauge('ds_engine_up', { target: s.target.label, engine: s.engine }, 0);
        return;
      }
      this.markUp(s, models.size);
      batch.gauge('ds_engine_up', { target: s.target.label, engine: s.engine }, 1);
      const dt = s.prev ? (at - s.prev.at) / 1000 : 0;
      for (const [model, cur] of models) {
        const key = s.engine + SEP + model;
        const prev = dt > 0 ? s.prev!.models.get(model) : undefined;
        const c: Contribution = { running: cur.running, waiting: cur.waiting, kv: cur.kvCacheRatio };
        if (prev) {
          if (cur.promptTokens !== undefined && prev.promptTokens !== undefined) c.promptRate = counterIncrease(prev.promptTokens, cur.promptTokens) / dt;
          if (cur.generationTokens !== undefined && prev.generationTokens !== undefined) c.generationRate = counterIncrease(prev.generationTokens, cur.generationTokens) / dt;
          if (cur.ttft && prev.ttft) c.ttft = histogramDelta(prev.ttft, cur.ttft);
          if (cur.itl && prev.itl) c.itl = histogramDelta(prev.itl, cur.itl);
          if (cur.e2e && prev.e2e) c.e2e = histogramDelta(prev.e2e, cur.e2e);
        }
        let list = groups.get(key);
        if (!list) groups.set(key, (list = []));
        list.push(c);
        for (const [outcome, raw] of cur.requests) {
          const rk = model + SEP + outcome;
          const last = s.lastRequests.get(rk);
          const inc = counterIncrease(last?.raw ?? 0, raw);
          s.lastRequests.set(rk, { raw, seen: this.tick });
          const tk = key + SEP + outcome;
          const total = this.totals.get(tk);
          if (total) {
            total.value += inc;
            total.seen = this.tick;
          } else this.totals.set(tk, { value: inc, seen: this.tick });
          touched.add(tk);
        }
      }
      s.prev = { at, models };
    });
    for (const s of this.states) {
      for (const [reason, n] of s.errors) batch.counter('ds_engine_scrape_errors_total', { target: s.target.label, reason }, n);
    }
    for (const tk of touched) {
      const [engine, model, outcome] = tk.split(SEP);
      batch.counter('ds_serving_requests_total', { engine, model, outcome }, this.totals.get(tk)!.value);
    }
    for (const [key, list] of groups) {
      const [engine, model] = key.split(SEP);
      writeGroup(batch, { engine, model }, list);
    }
    if (++this.tick % 64 === 0) this.forget();
  }

  /**
   * Drops request totals of models not seen for FORGET_AFTER samples, so an engine that
   * keeps inventing model names cannot grow this state without bound. A model that comes
   * back later starts again from the engine's own count.
   */
  private forget(): void {
    const before = this.tick - FORGET_AFTER;
    for (const [k, t] of this.totals) if (t.seen < before) this.totals.delete(k);
    // A target that is down keeps its last counts, so its return is not counted twice.
    for (const s of this.states) if (s.prev) for (const [k, r] of s.lastRequests) if (r.seen < before) s.lastRequests.delete(k);
  }

  private markDown(s: TargetState, err: unknown): void {
    const reason: ScrapeFailure = err instanceof ScrapeError ? err.reason : 'parse';
    s.errors.set(reason, (s.errors.get(reason) ?? 0) + 1);
    s.prev = undefined;
    const msg = err instanceof ScrapeError ? err.message : describeError(err);
    if (s.status !== msg) this.opts.logger.warn('engine target down', { target: s.target.label, reason, err: msg });
    s.status = msg;
  }

  private markUp(s: TargetState, models: number): void {
    const status = models > 0 ? `up ${s.engine}` : 'up without engine metrics';
    if (s.status === status) return;
    if (models > 0) {
      this.opts.logger.info(s.status === undefined ? 'engine target up' : 'engine target recovered', { target: s.target.label, engine: s.engine });
    } else {
      this.opts.logger.warn('engine target answered, but with no metrics of a known engine', { target: s.target.label, engine: s.engine });
    }
    s.status = status;
  }
}

function sumOf(values: Array<number | undefined>): number | undefined {
  let out: number | undefined;
  for (const v of values) if (v !== undefined) out = (out ?? 0) + v;
  return out;
}

function percentileOf(q: number, hists: Array<Hist | undefined>): number | undefined {
  const present = hists.filter((h): h is Hist => h !== undefined);
  if (present.length === 0) return undefined;
  let merged: Hist | undefined = present[0];
  for (let i = 1; i < present.length && merged; i++) merged = mergeHist(merged, present[i]);
  if (merged) return histogramQuantile(q, merged);
  // Layouts differ: report the worst target rather than a wrong merge.
  let worst: number | undefined;
  for (const h of present) {
    const v = histogramQuantile(q, h);
    if (v !== undefined && (worst === undefined || v > worst)) worst = v;
  }
  return worst;
}

/** Sets a gauge only for a finite value: a broken engine reading is absent, never Inf. */
function put(batch: Batch, name: string, labels: Record<string, string>, v: number | undefined): void {
  if (v !== undefined && Number.isFinite(v)) batch.gauge(name, labels, v);
}

function writeGroup(batch: Batch, em: { engine: string; model: string }, list: Contribution[]): void {
  const prompt = sumOf(list.map((c) => c.promptRate));
  const generation = sumOf(list.map((c) => c.generationRate));
  put(batch, 'ds_serving_throughput_tokens_per_second', { ...em, phase: 'prompt' }, prompt);
  put(batch, 'ds_serving_throughput_tokens_per_second', { ...em, phase: 'generation' }, generation);
  put(batch, 'ds_serving_requests_running', em, sumOf(list.map((c) => c.running)));
  put(batch, 'ds_serving_requests_waiting', em, sumOf(list.map((c) => c.waiting)));
  const kvs = list.map((c) => c.kv).filter((v): v is number => v !== undefined);
  if (kvs.length) put(batch, 'ds_serving_kv_cache_usage_ratio', em, Math.max(...kvs));
  for (const [percentile, q] of PERCENTILES) {
    const l = { ...em, percentile };
    const ttft = percentileOf(q, list.map((c) => c.ttft));
    const itl = percentileOf(q, list.map((c) => c.itl));
    const e2e = percentileOf(q, list.map((c) => c.e2e));
    put(batch, 'ds_serving_time_to_first_token_seconds', l, ttft);
    put(batch, 'ds_serving_inter_token_latency_seconds', l, itl);
    put(batch, 'ds_serving_e2e_request_latency_seconds', l, e2e);
  }
}
