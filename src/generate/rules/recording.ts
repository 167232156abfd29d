import { catalog } from '../../catalog/index.js';
import { CLUSTER_LABEL, declareRecorded, selector, type Scope } from '../promql.js';
import type { RulesConfig } from './config.js';
import { efficiencyRecordingRules } from './efficiency.js';
import { fleetRecordingRules } from './fleet.js';

/** One recording rule . */
export interface RecordingRule {
  readonly record: string;
  readonly expr: string;
}

/** Names of the fleet-level recorded series, shared with the dashboards. */
export const REC = {
  gpuUtilization: 'instance:ds_gpu_utilization:avg_rate5m',
  gpuCount: 'instance:ds_gpu_info:count',
  gpuUp: 'instance:ds_gpu_up:sum',
  memoryUsed: 'instance:ds_gpu_memory_used_bytes:sum',
  memoryTotal: 'instance:ds_gpu_memory_total_bytes:sum',
  power: 'instance:ds_gpu_power_watts:sum',
  throttle: 'instance:ds_gpu_throttle_seconds:rate5m',
  allocatedIdle: 'instance:ds_gpu_allocated_idle:count',
  fragmentationMax: 'instance:ds_gpu_memory_fragmentation_ratio:max',
  tokens: 'instance:ds_serving_tokens:rate5m',
  requests: 'instance:ds_serving_requests:rate5m',
} as const;

/** Labels each recorded series keeps beyond job and instance. */
const RECORDED_LABELS: Record<string, readonly string[]> = {
  [REC.throttle]: ['reason'],
  [REC.tokens]: ['phase'],
  [REC.requests]: ['outcome'],
};
for (const name of Object.values(REC)) declareRecorded(name, RECORDED_LABELS[name] ?? []);

/**
 * Cluster-level series (one per cluster and scrape job), aggregated from the per-host ones
 * above, for the fleet headline panels: what they read stays a handful of series whatever the
 * number of hosts and GPUs.
 */
export const CLUSTER_REC = {
  gpuUp: 'cluster:ds_gpu_up:sum',
  gpuCount: 'cluster:ds_gpu_info:count',
  gpuBusy: 'cluster:ds_gpu_busy:sum_rate5m',
  allocatedIdle: 'cluster:ds_gpu_allocated_idle:count',
  memoryUsed: 'cluster:ds_gpu_memory_used_bytes:sum',
  memoryTotal: 'cluster:ds_gpu_memory_total_bytes:sum',
  tokens: 'cluster:ds_serving_tokens:rate5m',
  gpuVerdicts: 'cluster:ds_gpu_health:count',
} as const;
const CLUSTER_RECORDED_LABELS: Record<string, readonly string[]> = { [CLUSTER_REC.tokens]: ['phase'], [CLUSTER_REC.gpuVerdicts]: ['verdict'] };
for (const name of Object.values(CLUSTER_REC)) declareRecorded(name, CLUSTER_RECORDED_LABELS[name] ?? [], ['job']);
const CLUSTER_BY = `${CLUSTER_LABEL}, job`;

// The cluster label stays in every aggregation: in a store several clusters write into, each
// keeps its own recorded series (on a single Prometheus the label is absent and changes nothing).
const BY = `${CLUSTER_LABEL}, job, instance`;

/** rate() window of the recording rules; part of the recorded names. */
export const RECORDING_WINDOW = '5m';

/** Fleet aggregation: one series per exporter (job, instance), so the fleet dashboard stays cheap. */
export function recordingRules(cfg: RulesConfig): RecordingRule[] {
  const s: Scope = { always: cfg.selector, byLabel: {} };
  const m = (metric: string, extra: string[] = []) => selector(metric, s, extra);
  // Fixed, so the recorded names (…:avg_rate5m) stay true whatever the alert windows are.
  const w = RECORDING_WINDOW;
  const rules: RecordingRule[] = [
    { record: REC.gpuUtilization, expr: `avg by (${BY}) (rate(${m('ds_gpu_busy_seconds_total')}[${w}]))` },
    { record: REC.gpuCount, expr: `count by (${BY}) (${m('ds_gpu_info')})` },
    { record: REC.gpuUp, expr: `sum by (${BY}) (${m('ds_gpu_up')})` },
    { record: REC.memoryUsed, expr: `sum by (${BY}) (${m('ds_gpu_memory_used_bytes')})` },
    { record: REC.memoryTotal, expr: `sum by (${BY}) (${m('ds_gpu_memory_total_bytes')})` },
    { record: REC.power, expr: `sum by (${BY}) (${m('ds_gpu_power_watts')})` },
    { record: REC.throttle, expr: `sum by (${BY}, reason) (rate(${m('ds_gpu_throttle_seconds_total')}[${w}]))` },
    {
      record: REC.allocatedIdle,
     
      // `and`, not `*`: a GPU shared by several pods (time-slicing) counts once instead of failing the match.
      // max without (…) collapses the per-pod copies --kubelet.enrich-labels makes of a shared GPU's series.
      expr: `count by (${BY}) ((max without (namespace, pod, container) (rate(${m('ds_gpu_busy_seconds_total')}[${w}])) < ${cfg.idleUtilization}) and on (${BY}, uuid) ${m('ds_gpu_allocation_info')})`,
    },
    { record: REC.fragmentationMax, expr: `max by (${BY}) (${m('ds_gpu_memory_fragmentation_ratio')})` },
    // From the lossless counters: exact whatever the scrape interval.
    { record: REC.tokens, expr: `sum by (${BY}, phase) (rate(${m('ds_serving_tokens_total')}[${w}]))` },
    { record: REC.requests, expr: `sum by (${BY}, outcome) (rate(${m('ds_serving_requests_total')}[${w}]))` },
    ...clusterRules((metric) => m(metric)),
    ...fleetRecordingRules(cfg),
    ...ttftSloRules(cfg),
    ...efficiencyRecordingRules(cfg),
  ];
  return rules;
}

/** The cluster-level rules, from the per-host recorded series (evaluated after them in the same group). */
function clusterRules(m: (metric: string) => string): RecordingRule[] {
  const sum = (from: string) => `sum by (${CLUSTER_BY}) (${from})`;
  return [
    { record: CLUSTER_REC.gpuUp, expr: sum(m(REC.gpuUp)) },
    { record: CLUSTER_REC.gpuCount, expr: sum(m(REC.gpuCount)) },
    // Busy GPU-seconds per second: divided by the GPU count, the fleet's average utilization.
    { record: CLUSTER_REC.gpuBusy, expr: sum(`${m(REC.gpuUtilization)} * ${m(REC.gpuCount)}`) },
    { record: CLUSTER_REC.allocatedIdle, expr: sum(m(REC.allocatedIdle)) },
    { record: CLUSTER_REC.memoryUsed, expr: sum(m(REC.memoryUsed)) },
    { record: CLUSTER_REC.memoryTotal, expr: sum(m(REC.memoryTotal)) },
    { record: CLUSTER_REC.tokens, expr: `sum by (${CLUSTER_BY}, phase) (${m(REC.tokens)})` },
    // GPUs per health verdict; one verdict per GPU although --kubelet.enrich-labels copies it per pod.
    { record: CLUSTER_REC.gpuVerdicts, expr: `count by (${CLUSTER_BY}, verdict) (max without (namespace, pod, container) (${m('ds_gpu_health')}))` },
  ];
}

/** Windows of the TTFT SLO burn-rate alerts (multi-window, multi-burn-rate). */
export const SLO_WINDOWS = ['5m', '30m', '1h', '6h'] as const;

/** The recorded share of requests over the TTFT objective in `window`, per engine and model. */
export function ttftErrorRecord(window: string): string {
  return `engine_model:ds_serving_ttft_slo_errors:ratio_rate${window}`;
}
for (const w of SLO_WINDOWS) declareRecorded(ttftErrorRecord(w), ['engine', 'model']);

/**
 * A matcher for the `le` label of a bucket bound, as both Prometheus 2 ("2") and
 * Prometheus 3 (which normalizes classic-histogram bounds to "2.0") write it.
 */
export function leMatcher(bound: number): string {
  const text = String(bound);
  return Number.isInteger(bound) ? `le=~"${text}|${text}[.]0"` : `le="${text}"`;
}

/** Share of requests whose TTFT missed the objective, per (job, instance, engine, model), over each SLO window. */
function ttftSloRules(cfg: RulesConfig): RecordingRule[] {
  const bounds = catalogBuckets('ds_serving_time_to_first_token_seconds');
  if (!bounds.includes(cfg.ttftObjectiveSeconds)) {
    throw new Error(`rules config: ttftObjectiveSeconds ${cfg.ttftObjectiveSeconds} is not a bucket bound of ds_serving_time_to_first_token_seconds (${bounds.join(', ')})`);
  }
  if (!(cfg.ttftObjectiveRatio > 0 && cfg.ttftObjectiveRatio < 1)) throw new Error(`rules config: ttftObjectiveRatio ${cfg.ttftObjectiveRatio} must be between 0 and 1`);
  const s: Scope = { always: cfg.selector, byLabel: {} };
  const by = `${BY}, engine, model`;
  return SLO_WINDOWS.map((w) => ({
    record: ttftErrorRecord(w),
    expr: `1 - sum by (${by}) (rate(${selector('ds_serving_time_to_first_token_seconds_bucket', s, [leMatcher(cfg.ttftObjectiveSeconds)])}[${w}]))`
      + ` / sum by (${by}) (rate(${selector('ds_serving_time_to_first_token_seconds_count', s)}[${w}]))`,
  }));
}

function catalogBuckets(name: string): readonly number[] {
  const def = catalog.find((d) => d.name === name);
  if (!def?.buckets) throw new Error(`catalog: ${name} is not a histogram`);
  return def.buckets;
}
