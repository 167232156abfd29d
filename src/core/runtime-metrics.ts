import { createHistogram, PerformanceObserver } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';
import client from 'prom-client';

/**
 * How often, at least, the event loop's delay is sampled: the scheduler's timer wakes at least
 * once a second (its staleness check) and records how late each wake-up came (see
 * recordTimerDelay). A monitor of its own would wake the process once more each time (about
 * 0.07–0.1 ms of CPU on the benchmark machine); every 10 ms (prom-client's default) it cost
 * about 1 % of a core.
 */
export const EVENT_LOOP_RESOLUTION_MS = 1000;

/** How late the scheduler's wake-ups came, in ns (the event loop's delay at those moments). */
const timerDelay = createHistogram();

/** Records that a timer due `lateMs` ago has just run: the event loop was busy (or blocked) that long. */
export function recordTimerDelay(lateMs: number): void {
  // The histogram takes integers of at least 1 (ns).
  timerDelay.record(Math.max(1, Math.round(lateMs * 1e6)));
}

/**
 * prom-client's own event-loop monitor, whose statistics are all replaced here: sampled once an
 * hour it never wakes the process in practice (at a 1 s resolution it woke it once a second).
 */
const PROM_CLIENT_MONITOR_RESOLUTION_MS = 3_600_000;

const STATS = [
  ['nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', 'min'],
  ['nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', 'max'],
  ['nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.', 'mean'],
  ['nodejs_eventloop_lag_stddev_seconds', 'The standard deviation of the recorded event loop delays.', 'stddev'],
  ['nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.', 50],
  ['nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.', 90],
  ['nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', 99],
] as const;

/**
 * prom-client's gauges that end in `_total`, which Prometheus reserves for counters
 * (`promtool check metrics` rejects them): each is the sum over `type` of the gauge of the same
 * name without the suffix (`sum(nodejs_active_handles)`), so they are left out.
 */
export const DROPPED_TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/** prom-client's GC histogram: its name, help, label and buckets. */
const GC_DURATION = 'nodejs_gc_duration_seconds';
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
/** V8's collection types (GCProfiler's `gcType`) by the `kind` label prom-client gives them. */
const GC_KINDS: Record<string, string> = {
  Scavenge: 'minor',
  MinorMarkSweep: 'minor',
  MinorMarkCompact: 'minor',
  MarkSweepCompact: 'major',
  IncrementalMarking: 'incremental',
  ProcessWeakCallbacks: 'weakcb',
};
/** How often the collections recorded since the last scrape are folded into the histogram when nobody scrapes (bounds the record's memory). */
export const GC_DRAIN_INTERVAL_MS = 60_000;

/**
 * `nodejs_gc_duration_seconds` as prom-client defines it (histogram, label `kind`, the same
 * buckets), measured by V8's GC profiler instead of a `gc` PerformanceObserver: the observer runs
 * JavaScript for every collection, and Node 20 builds deprecated accessors on every GC entry
 * (about 1 ms of CPU per second at idle, as much as the collections themselves). The profiler
 * records each collection natively; the record is read when the histogram is collected (a scrape)
 * and at the latest every GC_DRAIN_INTERVAL_MS.
 */
function registerGcDuration(registry: client.Registry): void {
  registry.removeSingleMetric(GC_DURATION);
  const histogram = new client.Histogram({
    name: GC_DURATION,
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: GC_BUCKETS,
    registers: [registry],
    collect() {
      drain();
    },
  });
  const labels = new Map(Object.entries(GC_KINDS).map(([type, kind]) => [type, { kind }]));
  // Every kind is served from the start, at zero: a process that has not collected yet (or never
  // needs a major collection) still has the series, so rate() and alerts see 0, not nothing.
  for (const kind of new Set(Object.values(GC_KINDS))) histogram.zero({ kind });
  let profiler = new GCProfiler();
  profiler.start();
  const drain = () => {
    const record = profiler.stop();
    profiler = new GCProfiler();
    profiler.start();
    for (const s of record?.statistics ?? []) {
      const l = labels.get(s.gcType);
      // cost is in microseconds; a type V8 adds later is still counted, under its own name.
      histogram.observe(l ?? { kind: s.gcType }, s.cost / 1e6);
    }
  };
  setInterval(drain, GC_DRAIN_INTERVAL_MS).unref();
}

/**
 * prom-client's process and Node.js metrics under their usual names, in `registry`, with
 * the event-loop delay statistics taken from the scheduler's wake-ups (recordTimerDelay):
 * how late each came, beyond its schedule. prom-client's own monitor is left at a resolution
 * where it never runs, and its statistics are replaced.
 */
export function registerRuntimeMetrics(registry: client.Registry): void {
  // prom-client's GC observer is disconnected and replaced (see registerGcDuration).
  const observers: PerformanceObserver[] = [];
  const observe = PerformanceObserver.prototype.observe;
  PerformanceObserver.prototype.observe = function (this: PerformanceObserver, ...args: Parameters<typeof observe>) {
    observers.push(this);
    return observe.apply(this, args);
  };
  try {
    client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: PROM_CLIENT_MONITOR_RESOLUTION_MS });
  } finally {
    PerformanceObserver.prototype.observe = observe;
  }
  for (const o of observers) o.disconnect();
  registerGcDuration(registry);
  for (const name of DROPPED_TOTAL_GAUGES) registry.removeSingleMetric(name);
  const h = timerDelay;
  const seconds = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e9) : 0);
  // The first statistic's collect (prom-client collects in registration order) takes the
  // window's values and starts a new window; the others read what it took.
  let taken: Record<(typeof STATS)[number][2], number> | undefined;
  const take = () => {
    const empty = h.count === 0;
    taken = { min: empty ? 0 : seconds(h.min), max: empty ? 0 : seconds(h.max), mean: empty ? 0 : seconds(h.mean), stddev: empty ? 0 : h.stddev / 1e9, 50: empty ? 0 : seconds(h.percentile(50)), 90: empty ? 0 : seconds(h.percentile(90)), 99: empty ? 0 : seconds(h.percentile(99)) };
    h.reset();
    return taken;
  };
  STATS.forEach(([name, help, stat], i) => {
    registry.removeSingleMetric(name);
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set((i === 0 || !taken ? take() : taken)[stat]);
      },
    });
  });
}

/**
 * Registers the runtime metrics of `text` in the OpenMetrics registry `om` as well, so that one
 * event-loop monitor and one GC observer serve both formats. prom-client's OpenMetrics rendering
 * renames a counter object in place (`process_cpu_seconds_total` becomes `process_cpu_seconds`),
 * which would leave the text format without the suffix after the first OpenMetrics scrape: the
 * OpenMetrics registry gets a view of each counter whose name is its own and whose values are
 * the counter's.
 */
export function shareRuntimeMetrics(text: client.Registry, om: client.Registry<typeof client.openMetricsContentType>): void {
  for (const m of text.getMetricsAsArray()) {
    const metric = m as unknown as client.Metric & { type?: string };
    om.registerMetric(metric.type === 'counter' ? (Object.create(metric) as client.Metric) : metric);
  }
}
