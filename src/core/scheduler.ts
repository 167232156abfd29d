import type { Collector } from './collector.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';
import { EVENT_LOOP_RESOLUTION_MS, recordTimerDelay } from './runtime-metrics.js';
import type { Batch, SampleStore } from './store.js';

export interface SchedulerOptions {
  readonly store: SampleStore;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** Per-sample timeout; defaults to the collector's interval. */
  readonly timeoutMs?: number;
  /** Series of a collector that stopped succeeding disappear after this long (at least 3 intervals). */
  readonly staleAfterMs: number;
  readonly now?: () => number;
}

interface Running {
  readonly name: string;
  readonly collector: Collector;
  readonly intervalMs: number;
  /** The label set of its self-metrics, one object for the process's life (the store then recognises it without comparing). */
  readonly labels: { readonly collector: string };
  /** When its next sample is due (ms, monotonic clock); Infinity while one runs. */
  due: number;
  inFlight?: Promise<void>;
  controller?: AbortController;
  sampledOnce: boolean;
  lastError?: string;
  /**
   * The batch of its last committed sample, and of its self-metrics, cleared and written again
   * by the next sample (a batch keeps its arrays, so an unchanged sample allocates nothing).
   * A sample that failed or timed out may still be writing into its batch: that one is dropped.
   */
  batch?: Batch;
  selfBatch?: Batch;
}

/**
 * How often series of collectors that stopped succeeding are looked for. It also bounds how
 * rarely the event loop's delay is sampled: every wake-up records how late it came.
 */
const EXPIRE_EVERY_MS = EVENT_LOOP_RESOLUTION_MS;

/**
 * Work due within this much of a wake-up runs in it: collectors started a few ms apart, and
 * the expiry check, share one wake-up per interval instead of one each.
 */
const COALESCE_MS = 20;

/**
 * Runs every collector on its own interval in the background, times it, catches its
 * failures and publishes the framework's self-metrics. A scrape never waits on it.
 *
 * One timer drives everything: it wakes when the earliest collector or the expiry check is
 * due and runs all that is due then (within COALESCE_MS), so an idle exporter wakes once per
 * interval, not once per collector. Each wake-up costs about as much CPU as a small sample.
 */
export class Scheduler {
  private readonly running: Running[] = [];
  private timer?: NodeJS.Timeout;
  /** When the timer fires (monotonic clock). */
  private timerAt = Infinity;
  /** When the timer should run at the earliest: its due time, or when it was set if that was later. */
  private timerExpected = Infinity;
  private nextExpire = Infinity;
  private started = false;
  private stopped = false;
  private readonly now: () => number;
  private readyResolve!: () => void;
  /** Resolves once every collector has finished its first sample, successful or not. */
  readonly firstRound: Promise<void>;

  constructor(private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? Date.now;
    this.firstRound = new Promise((r) => (this.readyResolve = r));
  }

  /** Adds a collector; sampling starts with `start()`. */
  add(name: string, collector: Collector): void {
    const intervalMs = collector.intervalMs ?? this.opts.intervalMs;
    this.opts.store.setStaleAfter(name, Math.max(this.opts.staleAfterMs, 3 * intervalMs));
    this.running.push({ name, collector, intervalMs, labels: { collector: name }, due: Infinity, sampledOnce: false });
  }

  get collectorNames(): string[] {
    return this.running.map((r) => r.name);
  }

  get ready(): boolean {
    return this.running.every((r) => r.sampledOnce);
  }

  /** Starts every collector at once, then each on its own interval. */
  start(): void {
    if (this.running.length === 0) this.readyResolve();
    this.started = true;
    const now = performance.now();
    this.nextExpire = now + EXPIRE_EVERY_MS;
    for (const r of this.running) this.tick(r, now);
    this.arm();
  }

  /** Runs one sample of every collector now and waits for all (tests, benchmarks). */
  async sampleAll(): Promise<void> {
    await Promise.all(this.running.map((r) => this.runOnce(r)));
  }

  /** Starts a sample of `r`; its next one is due an interval after this start, or at once when it ran longer. */
  private tick(r: Running, started: number): void {
    if (this.stopped) return;
    r.due = Infinity;
    void this.runOnce(r).finally(() => {
      if (this.stopped) return;
      r.due = started + r.intervalMs;
      if (r.due <= performance.now()) {
        r.due = Infinity;
        setImmediate(() => this.tick(r, performance.now()));
      } else this.arm();
    });
  }

  /** Runs what is due (collectors, the expiry check) and sets the timer for what is due next. */
  private wake(): void {
    // Scheduling runs on the monotonic clock: the injected `now` (timestamps, staleness) may be a test's frozen clock.
    const now = performance.now();
    // How late this wake-up came is the event loop's delay (nodejs_eventloop_lag_*): no monitor of its own wakes the process.
    recordTimerDelay(now - this.timerExpected);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.timerExpected = Infinity;
    if (this.stopped) return;
    const horizon = now + COALESCE_MS;
    if (this.nextExpire <= horizon) {
      this.opts.store.expire();
      this.nextExpire = now + EXPIRE_EVERY_MS;
    }
    for (const r of this.running) if (r.due <= horizon) this.tick(r, now);
    this.arm();
  }

  /** (Re)sets the one timer for the earliest due time; the expiry check alone does not keep the process alive. */
  private arm(): void {
    if (this.stopped || !this.started) return;
    let next = this.nextExpire;
    let collectorDue = false;
    for (const r of this.running) {
      if (r.due < next) next = r.due;
      if (r.due !== Infinity) collectorDue = true;
    }
    if (!this.timer || next < this.timerAt - COALESCE_MS) {
      clearTimeout(this.timer);
      const now = performance.now();
      this.timerAt = next;
      this.timerExpected = Math.max(next, now);
      this.timer = setTimeout(() => this.wake(), Math.max(0, next - now));
    }
    // A pending sample keeps the process alive, as its own timer did; the expiry check does not.
    if (collectorDue) this.timer.ref();
    else this.timer.unref();
  }

  private runOnce(r: Running): Promise<void> {
    // A sample that ignores its abort signal must not pile up behind itself.
    if (r.inFlight) return r.inFlight;
    const p = this.execute(r).finally(() => {
      r.inFlight = undefined;
    });
    r.inFlight = p;
    return p;
  }

  private async execute(r: Running): Promise<void> {
    const { store, logger } = this.opts;
    const controller = new AbortController();
    r.controller = controller;
    const timeoutMs = this.opts.timeoutMs ?? r.intervalMs;
    const batch = r.batch ?? store.batch(r.name);
    r.batch = undefined;
    batch.clear();
    const t0 = process.hrtime.bigint();
    let ok = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort(new Error(`timed out after ${timeoutMs} ms`));
          reject(new Error(`sample timed out after ${timeoutMs} ms`));
        }, timeoutMs);
      });
      await Promise.race([r.collector.sample(batch, controller.signal), timeout]);
      if (!this.stopped) store.commit(batch);
      ok = true;
      r.batch = batch;
      if (r.lastError !== undefined) logger.info('collector recovered', { collector: r.name });
      r.lastError = undefined;
    } catch (err) {
      const msg = describeError(err);
      // Log a failure when it starts or changes, not on every tick.
      if (msg !== r.lastError) logger.warn('collector failed', { collector: r.name, err: msg });
      r.lastError = msg;
    } finally {
      clearTimeout(timer);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (this.stopped) return;
    const self = (r.selfBatch ??= store.batch(`exporter:${r.name}`));
    self.clear();
    const labels = r.labels;
    self.gauge('ds_exporter_collector_success', labels, ok ? 1 : 0);
    self.gauge('ds_exporter_collector_duration_seconds', labels, seconds);
    const prevSuccess = this.lastSuccess.get(r.name);
    const lastSuccess = ok ? this.now() / 1000 : prevSuccess;
    if (lastSuccess !== undefined) {
      this.lastSuccess.set(r.name, lastSuccess);
      self.gauge('ds_exporter_collector_last_success_timestamp_seconds', labels, lastSuccess);
    }
    store.commit(self);
    if (!r.sampledOnce) {
      r.sampledOnce = true;
      if (this.ready) this.readyResolve();
    }
  }

  private readonly lastSuccess = new Map<string, number>();

  /** Stops sampling, aborts in-flight samples, waits for them and closes every collector. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const r of this.running) r.controller?.abort(new Error('exporter stopping'));
    await Promise.allSettled(this.running.map((r) => r.inFlight));
    await Promise.allSettled(this.running.map((r) => r.collector.close?.()));
  }
}
