import type { Collector } from '../../core/collector.js';
import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Batch } from '../../core/store.js';
import { ExpositionError, parseExposition } from '../../parse/exposition.js';
import { catalog } from '../../catalog/index.js';
import { ALIASES, COUNTERS, detectEngine, extractReading, HISTOGRAMS, type CounterId, type EngineKind, type HistId, type ModelReading } from './engines.js';
import { enginePids, type GpuEvidence, isLocalHost, resolveGpus } from './gpus.js';
import { fetchModelName, fetchPayload, ScrapeError, type EngineTarget, type ScrapeFailure } from './scrape.js';
import { counterIncrease, rebucket } from './window.js';

export interface EngineCollectorOptions {
  readonly targets: readonly EngineTarget[];
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly maxSeries: number;
  readonly logger: Logger;
  readonly now: () => number;
  /** Replaces the HTTP fetch (benchmarks); the default is fetchPayload. */
  readonly fetch?: typeof fetchPayload;
  /** Replaces the model-name lookup of engines whose metrics carry no model; the default is fetchModelName. */
  readonly fetchModel?: typeof fetchModelName;
  /** What tells the engines' GPUs apart: host GPUs, NVML process lists, kubelet allocations (ports of the other collectors). */
  readonly gpuEvidence?: () => Omit<GpuEvidence, 'enginePids'>;
  /** Finds the engine's processes by its port; the default reads /proc. */
  readonly enginePids?: (port: number) => Promise<Set<number>>;
}

/** How long the pids found listening on an engine's port are reused before looking again. */
const PID_LOOKUP_MS = 30_000;
/** How soon to look again when nothing listened on the port. */
const PID_RETRY_MS = 5_000;

/** The catalog counter (and fixed labels) each engine counter feeds. */
const COUNTER_METRIC: Readonly<Record<CounterId, { name: string; phase?: string }>> = {
  promptTokens: { name: 'ds_serving_tokens_total', phase: 'prompt' },
  generationTokens: { name: 'ds_serving_tokens_total', phase: 'generation' },
  cachedTokens: { name: 'ds_serving_prompt_cached_tokens_total' },
  prefillSeconds: { name: 'ds_serving_prefill_seconds_total' },
  decodeSeconds: { name: 'ds_serving_decode_seconds_total' },
  preemptions: { name: 'ds_serving_preemptions_total' },
  rejections: { name: 'ds_serving_rejected_requests_total' },
  specDraftTokens: { name: 'ds_serving_spec_decode_draft_tokens_total' },
  specAcceptedTokens: { name: 'ds_serving_spec_decode_accepted_tokens_total' },
};

/** The catalog histogram each engine histogram feeds, with its bounds. */
const HIST_METRIC: Readonly<Record<HistId, { name: string; bounds: readonly number[] }>> = Object.fromEntries(
  ([['ttft', 'ds_serving_time_to_first_token_seconds'], ['itl', 'ds_serving_inter_token_latency_seconds'], ['e2e', 'ds_serving_e2e_request_latency_seconds'], ['queue', 'ds_serving_queue_time_seconds']] as const).map(([id, name]) => {
    const def = catalog.find((d) => d.name === name);
    if (!def?.buckets) throw new Error(`catalog: ${name} has no buckets`);
    return [id, { name, bounds: def.buckets }];
  }),
) as Record<HistId, { name: string; bounds: readonly number[] }>;

/** A histogram in catalog buckets: cumulative counts (+Inf last) and the sum of observations. */
interface CumHist {
  cum: number[];
  sum: number;
}

interface TargetState {
  readonly target: EngineTarget;
  engine: EngineKind | 'unknown';
  /** Up or the failure message last logged; undefined before the first scrape. */
  status?: string;
  /** The last successful reading and when it was taken; dropped on failure so no rate window spans an outage. */
  prev?: { at: number; models: Map<string, ModelReading> };
  /**
   * Last raw engine counters by model and counter (and the sample that saw them), kept
   * across outages: what the engine counted while it could not be read is counted on its
   * return, and a restart (a lower value) counts from zero.
   */
  readonly lastRaw: Map<string, { raw: number; seen: number }>;
  /** Last raw histograms in catalog buckets by model and histogram, kept across outages like the counters. */
  readonly lastHist: Map<string, CumHist & { seen: number }>;
  readonly errors: Map<ScrapeFailure, number>;
  /** The model name from the engine's API, for engines whose metrics carry none; undefined until looked up. */
  model?: string;
  /** Histograms already reported as broken, so the log says it once. */
  readonly brokenLogged: Set<string>;
  /** The engine's pids (listener and descendants) and when they were looked up. */
  pids?: { at: number; pids: Set<number> };
  /** A /proc scan for them in flight (it runs beside the samples, never inside one). */
  pidLookup?: Promise<void>;
  /** The last GPU resolution logged (source or why), so the log says each change once. */
  gpuStatus?: string;
}

/** One target's contribution to an (engine, model) group in this sample. */
interface Contribution {
  promptRate?: number;
  generationRate?: number;
  running?: number;
  waiting?: number;
  kv?: number;
}

const SEP = '\u0000';
/** Samples after which the counter state of a model that disappeared is forgotten (an hour at 1 s). */
const FORGET_AFTER = 3600;

/**
 * Scrapes every engine target concurrently each sample and normalizes what it finds.
 * Counters and histograms follow the engines' own across resets and outages, so
 * `rate()` over any window is exact; the tokens/s gauge covers the window between two
 * successful scrapes of a target. Targets serving the same engine and model are
 * aggregated into one series set: counters, histograms and queue sizes add up, and
 * KV-cache usage is the highest.
 */
export class EngineCollector implements Collector {
  private readonly states: TargetState[];
  /** Running totals by engine, model and counter key, with the sample that last moved them. */
  private readonly totals = new Map<string, { value: number; seen: number }>();
  /** Running histograms by engine, model and histogram, in catalog buckets. */
  private readonly histTotals = new Map<string, CumHist & { seen: number }>();
  private tick = 0;
  private readonly fetch: typeof fetchPayload;
  private readonly fetchModel: typeof fetchModelName;

  constructor(private readonly opts: EngineCollectorOptions) {
    this.states = opts.targets.map((target) => ({ target, engine: target.kind ?? 'unknown', lastRaw: new Map(), lastHist: new Map(), errors: new Map(), brokenLogged: new Set() }));
    this.fetch = opts.fetch ?? fetchPayload;
    this.fetchModel = opts.fetchModel ?? fetchModelName;
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
    const readings = await Promise.all(this.states.map((s, i) => this.read(s, results[i], signal)));
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('sample aborted');
    const groups = new Map<string, Contribution[]>();
    const touched = new Set<string>();
    const touchedHists = new Set<string>();
    this.states.forEach((s, i) => {
      const models = readings[i];
      if (!models) {
        batch.gauge('ds_engine_up', { target: s.target.label, engine: s.engine }, 0);
        return;
      }
      batch.gauge('ds_engine_up', { target: s.target.label, engine: s.engine }, 1);
      const dt = s.prev ? (at - s.prev.at) / 1000 : 0;
      for (const [model, cur] of models) {
        const key = s.engine + SEP + model;
        const prev = dt > 0 ? s.prev!.models.get(model) : undefined;
        const c: Contribution = { running: cur.running, waiting: cur.waiting, kv: cur.kvCacheRatio };
        if (prev) {
          if (cur.promptTokens !== undefined && prev.promptTokens !== undefined) c.promptRate = counterIncrease(prev.promptTokens, cur.promptTokens) / dt;
          if (cur.generationTokens !== undefined && prev.generationTokens !== undefined) c.generationRate = counterIncrease(prev.generationTokens, cur.generationTokens) / dt;
        }
        let list = groups.get(key);
        if (!list) groups.set(key, (list = []));
        list.push(c);
        const follow = (raw: number | undefined, counterKey: string) => {
          if (raw === undefined || !Number.isFinite(raw) || raw < 0) return;
          const rk = model + SEP + counterKey;
          const last = s.lastRaw.get(rk);
          const inc = counterIncrease(last?.raw ?? 0, raw);
          s.lastRaw.set(rk, { raw, seen: this.tick });
          const tk = key + SEP + counterKey;
          const total = this.totals.get(tk);
          if (total) {
            total.value += inc;
            total.seen = this.tick;
          } else this.totals.set(tk, { value: inc, seen: this.tick });
          touched.add(tk);
        };
        follow(cur.promptTokens, 'promptTokens');
        follow(cur.generationTokens, 'generationTokens');
        for (const [id, raw] of cur.counters) follow(raw, id);
        for (const [outcome, raw] of cur.requests) follow(raw, 'req' + SEP + outcome);
        for (const id of HISTOGRAMS) {
          const h = cur[id];
          if (!h) continue;
          const cum = rebucket(h, HIST_METRIC[id].bounds);
          if (!cum) {
            const bk = model + SEP + id;
            if (!s.brokenLogged.has(bk)) {
              s.brokenLogged.add(bk);
              this.opts.logger.warn('engine histogram ignored: bucket counts go down, are not numbers, or lack +Inf', { target: s.target.label, model, histogram: HIST_METRIC[id].name });
            }
            continue;
          }
          const hk = model + SEP + id;
          const last = s.lastHist.get(hk);
          const sum = h.sum ?? 0;
          const delta = histIncrease(last, cum, sum);
          s.lastHist.set(hk, { cum, sum, seen: this.tick });
          const tk = key + SEP + id;
          let total = this.histTotals.get(tk);
          if (!total) this.histTotals.set(tk, (total = { cum: new Array<number>(cum.length).fill(0), sum: 0, seen: this.tick }));
          for (let b = 0; b < cum.length; b++) total.cum[b] += delta.cum[b];
          total.sum += delta.sum;
          total.seen = this.tick;
          touchedHists.add(tk);
        }
      }
      s.prev = { at, models };
    });
    this.writeGpus(batch, readings, at);
    for (const s of this.states) {
      for (const [reason, n] of s.errors) batch.counter('ds_engine_scrape_errors_total', { target: s.target.label, reason }, n);
    }
    for (const tk of touched) {
      const [engine, model, id, outcome] = tk.split(SEP);
      const value = this.totals.get(tk)!.value;
      if (id === 'req') batch.counter('ds_serving_requests_total', { engine, model, outcome }, value);
      else {
        const m = COUNTER_METRIC[id as CounterId];
        batch.counter(m.name, m.phase ? { engine, model, phase: m.phase } : { engine, model }, value);
      }
    }
    for (const tk of touchedHists) {
      const [engine, model, id] = tk.split(SEP);
      const t = this.histTotals.get(tk)!;
      batch.histogram(HIST_METRIC[id as HistId].name, { engine, model }, t.cum, t.sum);
    }
    for (const [key, list] of groups) {
      const [engine, model] = key.split(SEP);
      writeGroup(batch, { engine, model }, list);
    }
    if (++this.tick % 64 === 0) this.forget();
  }

  /** `ds_engine_gpu_info` for every up target whose GPUs can be told (see gpus.ts), per model it serves. */
  private writeGpus(batch: Batch, readings: ReadonlyArray<Map<string, ModelReading> | undefined>, at: number): void {
    const base = this.opts.gpuEvidence?.() ?? {};
    for (let i = 0; i < this.states.length; i++) {
      const s = this.states[i];
      const models = readings[i];
      if (!models || models.size === 0) continue;
      const opts = s.target.gpus ?? {};
      let pids: Set<number> | undefined;
      if (!opts.gpus && base.processes) {
        const url = new URL(s.target.url);
        const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
        if (isLocalHost(url.hostname)) {
          // Scanning /proc can take a while on a busy host: it runs in the background and its
          // answer is used from the next sample on.
          const stale = !s.pids || at - s.pids.at > (s.pids.pids.size === 0 ? PID_RETRY_MS : PID_LOOKUP_MS);
          if (stale && !s.pidLookup) {
            s.pidLookup = (this.opts.enginePids ?? enginePids)(port)
              .catch(() => new Set<number>())
              .then((found) => {
                s.pids = { at: this.opts.now(), pids: found };
                s.pidLookup = undefined;
              });
          }
          pids = s.pids?.pids;
        }
      }
      const r = resolveGpus(opts, { ...base, enginePids: pids });
      const status = r.source ? `${r.source}: ${r.gpus.map((g) => g.gpu).join(',')}` : r.why;
      if (status !== s.gpuStatus) {
        s.gpuStatus = status;
        if (r.source) this.opts.logger.info('engine GPUs found', { target: s.target.label, source: r.source, gpus: r.gpus.map((g) => `${g.gpu}:${g.uuid}`).join(' ') });
        else this.opts.logger.warn('engine GPUs cannot be told; no cost per token for it', { target: s.target.label, why: r.why });
      }
      if (!r.source) continue;
      for (const model of models.keys()) {
        for (const g of r.gpus) batch.info('ds_engine_gpu_info', { target: s.target.label, engine: s.engine, model, gpu: g.gpu, uuid: g.uuid, source: r.source });
      }
    }
  }

  /**
   * One target's payload as readings by model, or undefined when the target is down
   * (logged and counted). Engines whose metrics carry no model name get it from their API.
   */
  private async read(s: TargetState, r: { text: string } | { err: unknown }, signal: AbortSignal): Promise<Map<string, ModelReading> | undefined> {
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
      return undefined;
    }
    this.markUp(s, models.size);
    if (s.engine !== 'unknown' && !ALIASES[s.engine].modelLabel && models.has('unknown')) {
      // Looked up once per up period: an engine restarted behind the same URL may serve another model.
      if (s.model === undefined) {
        s.model = (await this.fetchModel(s.target.url, s.engine, { timeoutMs: this.opts.timeoutMs, maxBytes: 1 << 20, signal }).catch(() => undefined)) ?? 'unknown';
        if (s.model === 'unknown') this.opts.logger.info('engine names no model; its series carry model="unknown"', { target: s.target.label, engine: s.engine });
      }
      if (s.model !== 'unknown') {
        models.set(s.model, models.get('unknown')!);
        models.delete('unknown');
      }
    }
    return models;
  }

  /**
   * Drops running totals of models not seen for FORGET_AFTER samples, so an engine that
   * keeps inventing model names cannot grow this state without bound. A model that comes
   * back later starts again from the engine's own count.
   */
  private forget(): void {
    const before = this.tick - FORGET_AFTER;
    for (const [k, t] of this.totals) if (t.seen < before) this.totals.delete(k);
    for (const [k, t] of this.histTotals) if (t.seen < before) this.histTotals.delete(k);
    // A target that is down keeps its last counts, so its return is not counted twice.
    for (const s of this.states) {
      if (!s.prev) continue;
      for (const [k, r] of s.lastRaw) if (r.seen < before) s.lastRaw.delete(k);
      for (const [k, r] of s.lastHist) if (r.seen < before) s.lastHist.delete(k);
    }
  }

  private markDown(s: TargetState, err: unknown): void {
    const reason: ScrapeFailure = err instanceof ScrapeError ? err.reason : 'parse';
    s.errors.set(reason, (s.errors.get(reason) ?? 0) + 1);
    s.prev = undefined;
    s.model = undefined;
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

/**
 * What a histogram gained since the last reading of the same target: the difference,
 * or everything when any count or the sum went down (the engine restarted).
 */
function histIncrease(last: CumHist | undefined, cum: number[], sum: number): CumHist {
  if (!last || last.cum.length !== cum.length || sum < last.sum) return { cum, sum };
  const d = new Array<number>(cum.length);
  for (let i = 0; i < cum.length; i++) {
    // Interpolated counts carry float noise: a dip within it is no dip.
    const eps = 1e-9 * Math.max(1, cum[i]);
    d[i] = cum[i] - last.cum[i];
    if (d[i] < -eps) return { cum, sum };
    // A bucket that lost observations (its cumulative gain dips) cannot happen without a restart.
    if (i > 0 && d[i] < d[i - 1] - eps) return { cum, sum };
    d[i] = Math.max(d[i], i > 0 ? d[i - 1] : 0);
  }
  return { cum: d, sum: sum - last.sum };
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
}
