import { COLLECTIVE_BUCKETS } from '../catalog/comm.js';
import { STEP_BUCKETS } from '../catalog/efficiency.js';
import type { Batch, Labels } from '../core/store.js';
import type { PushBody } from './schema.js';

/** Limits and windows of the push ingest. */
export interface PushStateOptions {
  /** A reporter's series disappear this long after its last accepted push. */
  readonly ttlMs: number;
  /** Reporters held at once; a new one beyond it is refused (429). */
  readonly maxReporters: number;
  /** Exposition samples one reporter may own; a push that would exceed it is refused (429). */
  readonly maxSeriesPerReporter: number;
  /** Collective observations waiting for the next sample, per reporter (429 beyond). */
  readonly maxPendingObservations: number;
  /** Window over which training throughput is computed from cumulative samples. */
  readonly throughputWindowMs: number;
  readonly now: () => number;
}

/** A refused push: HTTP status and a message for the reporter. */
export class PushRejection extends Error {
  override name = 'PushRejection';
  constructor(readonly statusCode: 413 | 429, message: string) {
    super(message);
  }
}

interface Device {
  index: number;
  uuid: string;
  reserved: number;
  allocated: number;
  inactiveSplit?: number;
  largestFree?: number;
}

interface Reporter {
  readonly key: string;
  readonly job: string;
  readonly rank: number;
  readonly pid: number;
  readonly host: string;
  lastSeenMs: number;
  devices: Device[];
  training?: { samples: number; steps: number };
  /** (t seconds, cumulative samples), oldest first, inside the throughput window. */
  history: Array<{ t: number; samples: number }>;
  /** Last raw cumulative value this reporter sent, by counter series key. */
  readonly raw: Map<string, number>;
  /** Every collective op this reporter reported: its histogram series stay alive with it. */
  readonly ops: Set<string>;
  readonly pending: Map<string, number[]>;
  pendingCount: number;
  /** Step durations waiting for the next sample. */
  steps: number[];
  /** The reporter sent step durations once: its step-time histogram stays alive with it. */
  timesSteps: boolean;
}

interface CounterSeries {
  readonly name: string;
  readonly labels: Labels;
  total: number;
  readonly contributors: Set<string>;
}

/** HTTP statuses counted in `ds_exporter_push_requests_total`, always exported (0 included). */
export const PUSH_CODES = ['202', '400', '401', '413', '415', '429'] as const;

const HISTORY_MAX = 1024;
/** Exposition samples of one histogram series: buckets, +Inf, _sum, _count. */
const HISTOGRAM_SAMPLES = COLLECTIVE_BUCKETS.length + 3;
/** Per device: five gauges, two counters, the rank's device info. */
const DEVICE_SERIES = 8;
const TRAINING_SERIES = 3;
/** The step-time histogram of a rank: buckets, +Inf, _sum, _count. */
const STEP_SERIES = STEP_BUCKETS.length + 3;
/** The model FLOPs counter. */
const FLOPS_SERIES = 1;
/** Per op: the histogram and the bytes counter. */
const OP_SERIES = HISTOGRAM_SAMPLES + 1;

const key = (...parts: Array<string | number>) => JSON.stringify(parts);

/**
 * Everything accepted pushes left behind, shared by the HTTP plugin (which validates and
 * calls `accept`) and the push collector (which calls `write` on every sample). A push is
 * applied whole or not at all: every check runs before the first change.
 */
export class PushState {
  private readonly reporters = new Map<string, Reporter>();
  private readonly counters = new Map<string, CounterSeries>();
  /** Answers of the push endpoint, by status. */
  readonly requests = new Map<string, number>(PUSH_CODES.map((c) => [c, 0]));

  constructor(readonly opts: PushStateOptions) {}

  get reporterCount(): number {
    return this.reporters.size;
  }

  /** Counts an answer of the endpoint. */
  count(status: number): void {
    const k = String(status);
    if (this.requests.has(k)) this.requests.set(k, this.requests.get(k)! + 1);
  }

  /** Series (exposition samples) a reporter would own after applying `body`. */
  private seriesAfter(r: Reporter | undefined, body: PushBody): number {
    const devices = body.devices?.length ?? r?.devices.length ?? 0;
    const training = body.training || r?.training ? TRAINING_SERIES : 0;
    const steps = body.training?.step_durations_seconds || r?.timesSteps ? STEP_SERIES : 0;
    const flops = body.training?.flops_per_sample !== undefined || [...(r?.raw.keys() ?? [])].some((k) => k.startsWith('["ds_training_model_flops_total"')) ? FLOPS_SERIES : 0;
    const ops = new Set(r?.ops);
    for (const c of body.collectives ?? []) ops.add(c.op);
    return devices * DEVICE_SERIES + training + steps + flops + ops.size * OP_SERIES;
  }

  /** Applies a validated push, or throws PushRejection and changes nothing. */
  accept(body: PushBody): void {
    const now = this.opts.now();
    this.expire();
    const { job, rank, pid, host } = body.reporter;
    const rk = key(job, rank, pid, host);
    let r = this.reporters.get(rk);
    if (!r && this.reporters.size >= this.opts.maxReporters) {
      throw new PushRejection(429, `too many reporters (${this.opts.maxReporters}, --push.max-reporters); retry after an idle one expires`);
    }
    const series = this.seriesAfter(r, body);
    if (series > this.opts.maxSeriesPerReporter) {
      throw new PushRejection(429, `reporter would own ${series} series, more than ${this.opts.maxSeriesPerReporter} (--push.max-series-per-reporter)`);
    }
    const incoming = (body.collectives ?? []).reduce((n, c) => n + c.durations_seconds.length, 0) + (body.training?.step_durations_seconds?.length ?? 0);
    if ((r?.pendingCount ?? 0) + incoming > this.opts.maxPendingObservations) {
      throw new PushRejection(429, `too many collective observations waiting for the next sample (${this.opts.maxPendingObservations}); push less often`);
    }

    // Every check passed: apply.
    if (!r) {
      r = { key: rk, job, rank, pid, host, lastSeenMs: now, devices: [], history: [], raw: new Map(), ops: new Set(), pending: new Map(), pendingCount: 0, steps: [], timesSteps: false };
      this.reporters.set(rk, r);
    }
    r.lastSeenMs = now;
    const pidLabel = String(pid);

    if (body.devices) {
      const keep = new Set<string>();
      r.devices = body.devices.map((d) => {
        const labels = { gpu: String(d.index), uuid: d.uuid ?? '', pid: pidLabel, job };
        this.follow(r!, 'ds_allocator_alloc_retries_total', labels, d.num_alloc_retries, keep);
        this.follow(r!, 'ds_allocator_ooms_total', labels, d.num_ooms, keep);
        return { index: d.index, uuid: d.uuid ?? '', reserved: d.reserved_bytes, allocated: d.allocated_bytes, inactiveSplit: d.inactive_split_bytes, largestFree: d.largest_free_block_bytes };
      });
      this.detach(r, (k) => k.startsWith('["ds_allocator_') && !keep.has(k));
    }

    if (body.training) {
      const t = body.timestamp ?? now / 1000;
      const { samples, steps } = body.training;
      const last = r.history[r.history.length - 1];
      // A restart (counter drop) or a clock step back starts a new window.
      if (last && (t < last.t || samples < last.samples)) r.history = [];
      r.history.push({ t, samples });
      const from = t - this.opts.throughputWindowMs / 1000;
      // Keep one point at or before the window start so the window is covered whole.
      while (r.history.length > 2 && (r.history[1].t <= from || r.history.length > HISTORY_MAX)) r.history.shift();
      const labels = { job, rank: String(rank) };
      const prevSamples = r.training?.samples;
      r.training = { samples, steps };
      this.follow(r, 'ds_training_samples_total', labels, samples);
      this.follow(r, 'ds_training_steps_total', labels, steps);
      const durations = body.training.step_durations_seconds;
      if (durations) {
        r.timesSteps = true;
        for (const d of durations) r.steps.push(d);
        r.pendingCount += durations.length;
      }
      const fps = body.training.flops_per_sample;
      if (fps !== undefined) {
        // FLOPs follow the samples: the increase since the last push (all samples of a new or
        // restarted process) times the FLOPs per sample declared now.
        const flopsLabels = { job, rank: String(rank), dtype: body.training.dtype ?? 'bf16' };
        const done = prevSamples === undefined || samples < prevSamples ? samples : samples - prevSamples;
        const s = this.series('ds_training_model_flops_total', flopsLabels);
        s.total += done * fps;
        s.contributors.add(r.key);
        r.raw.set(key('ds_training_model_flops_total', ...Object.values(flopsLabels)), samples);
      }
    }

    for (const c of body.collectives ?? []) {
      r.ops.add(c.op);
      let list = r.pending.get(c.op);
      if (!list) r.pending.set(c.op, (list = []));
      for (const d of c.durations_seconds) list.push(d);
      r.pendingCount += c.durations_seconds.length;
      const s = this.series('ds_comm_collective_bytes_total', { op: c.op, job });
      s.contributors.add(r.key);
      s.total += c.bytes ?? 0;
    }
  }

  /**
   * Follows a reporter's cumulative value into a counter series that survives restarts:
   * the series adds the reporter's increase, or its whole value after a drop (restart)
   * or when the reporter is new (a new process contributes all it counted).
   */
  private follow(r: Reporter, name: string, labels: Labels, raw: number | undefined, keep?: Set<string>): void {
    if (raw === undefined) return;
    const s = this.series(name, labels);
    const sk = key(name, ...Object.values(labels));
    keep?.add(sk);
    const prev = r.raw.get(sk);
    s.total += prev === undefined || raw < prev ? raw : raw - prev;
    s.contributors.add(r.key);
    r.raw.set(sk, raw);
  }

  private series(name: string, labels: Labels): CounterSeries {
    const sk = key(name, ...Object.values(labels));
    let s = this.counters.get(sk);
    if (!s) this.counters.set(sk, (s = { name, labels, total: 0, contributors: new Set() }));
    return s;
  }

  /** Removes the reporter from counter series matching `match`; series nobody feeds disappear. */
  private detach(r: Reporter, match: (seriesKey: string) => boolean): void {
    for (const [sk, s] of this.counters) {
      if (!s.contributors.has(r.key) || !match(sk)) continue;
      s.contributors.delete(r.key);
      r.raw.delete(sk);
      if (s.contributors.size === 0) this.counters.delete(sk);
    }
  }

  /** Forgets reporters that have not pushed for the TTL, with every series only they fed. */
  expire(): number {
    const now = this.opts.now();
    let n = 0;
    for (const r of this.reporters.values()) {
      if (now - r.lastSeenMs <= this.opts.ttlMs) continue;
      this.reporters.delete(r.key);
      this.detach(r, () => true);
      n++;
    }
    return n;
  }

  /** Writes the current series into a sample batch and hands over the waiting observations. */
  write(batch: Batch): void {
    this.expire();
    // Two reporters can map to the same label set (e.g. pid 1 in two containers without
    // GPU UUIDs): the one that pushed last wins for gauges.
    const gauges = new Map<string, { name: string; labels: Labels; value: number }>();
    const set = (name: string, labels: Labels, value: number | undefined) => {
      if (value !== undefined) gauges.set(key(name, ...Object.values(labels)), { name, labels, value });
    };
    const ordered = [...this.reporters.values()].sort((a, b) => a.lastSeenMs - b.lastSeenMs);
    for (const r of ordered) {
      for (const d of r.devices) {
        const l = { gpu: String(d.index), uuid: d.uuid, pid: String(r.pid), job: r.job };
        set('ds_gpu_memory_fragmentation_ratio', l, d.reserved > 0 ? (d.reserved - d.allocated) / d.reserved : 0);
        set('ds_allocator_reserved_bytes', l, d.reserved);
        set('ds_allocator_allocated_bytes', l, d.allocated);
        set('ds_allocator_inactive_split_bytes', l, d.inactiveSplit);
        set('ds_allocator_largest_free_block_bytes', l, d.largestFree);
        // The GPUs a rank trains on, for model FLOPs utilization; a device without a UUID cannot be matched to a GPU.
        if (d.uuid) set('ds_training_device_info', { job: r.job, rank: String(r.rank), gpu: String(d.index), uuid: d.uuid }, 1);
      }
      const rate = throughput(r.history);
      if (rate !== undefined) set('ds_training_throughput_samples_per_second', { job: r.job, rank: String(r.rank) }, rate);
      for (const op of r.ops) {
        const labels = { op, job: r.job };
        const pending = r.pending.get(op);
        if (pending?.length) for (const v of pending) batch.observe('ds_comm_collective_latency_seconds', labels, v);
        else batch.keep('ds_comm_collective_latency_seconds', labels);
      }
      const rl = { job: r.job, rank: String(r.rank) };
      if (r.steps.length) for (const v of r.steps) batch.observe('ds_training_step_seconds', rl, v);
      else if (r.timesSteps) batch.keep('ds_training_step_seconds', rl);
      r.steps = [];
      r.pending.clear();
      r.pendingCount = 0;
    }
    for (const g of gauges.values()) batch.gauge(g.name, g.labels, g.value);
    for (const s of this.counters.values()) batch.counter(s.name, s.labels, s.total);
    batch.gauge('ds_exporter_push_reporters', {}, this.reporters.size);
    for (const [code, n] of this.requests) batch.counter('ds_exporter_push_requests_total', { code }, n);
  }
}

/** Samples per second between the oldest and newest point of the window; undefined before two points. */
export function throughput(history: ReadonlyArray<{ t: number; samples: number }>): number | undefined {
  if (history.length < 2) return undefined;
  const a = history[0];
  const b = history[history.length - 1];
  const dt = b.t - a.t;
  return dt > 0 ? (b.samples - a.samples) / dt : undefined;
}
