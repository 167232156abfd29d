import type { Collector } from './collector.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';
import type { SampleStore } from './store.js';

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
  timer?: NodeJS.Timeout;
  inFlight?: Promise<void>;
  controller?: AbortController;
  sampledOnce: boolean;
  lastError?: string;
}

/**
 * Runs every collector on its own interval in the background, times it, catches its
 * failures and publishes the framework's self-metrics. A scrape never waits on it.
 */
export class Scheduler {
  private readonly running: Running[] = [];
  private expireTimer?: NodeJS.Timeout;
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
    this.running.push({ name, collector, intervalMs, sampledOnce: false });
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
    for (const r of this.running) this.tick(r);
    this.expireTimer = setInterval(() => this.opts.store.expire(), 1000);
    this.expireTimer.unref();
  }

  /** Runs one sample of every collector now and waits for all (tests, benchmarks). */
  async sampleAll(): Promise<void> {
    await Promise.all(this.running.map((r) => this.runOnce(r)));
  }

  private tick(r: Running): void {
    if (this.stopped) return;
    const started = this.now();
    void this.runOnce(r).finally(() => {
      if (this.stopped) return;
      const wait = Math.max(0, r.intervalMs - (this.now() - started));
      r.timer = setTimeout(() => this.tick(r), wait);
    });
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
    const batch = store.batch(r.name);
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
    const self = store.batch(`exporter:${r.name}`);
    const labels = { collector: r.name };
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
    clearInterval(this.expireTimer);
    for (const r of this.running) {
      clearTimeout(r.timer);
      r.controller?.abort(new Error('exporter stopping'));
    }
    await Promise.allSettled(this.running.map((r) => r.inFlight));
    await Promise.allSettled(this.running.map((r) => r.collector.close?.()));
  }
}
