import { declareRecorded, selector, type Scope } from '../promql.js';
import type { RulesConfig } from './config.js';

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
  tokens: 'instance:ds_serving_throughput_tokens_per_second:sum',
  requests: 'instance:ds_serving_requests:rate5m',
} as const;

/** Labels each recorded series keeps beyond job and instance. */
const RECORDED_LABELS: Record<string, readonly string[]> = {
  [REC.throttle]: ['reason'],
  [REC.tokens]: ['phase'],
  [REC.requests]: ['outcome'],
};
for (const name of Object.values(REC)) declareRecorded(name, RECORDED_LABELS[name] ?? []);

const BY = 'job, instance';

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
    { record: REC.tokens, expr: `sum by (${BY}, phase) (${m('ds_serving_throughput_tokens_per_second')})` },
    { record: REC.requests, expr: `sum by (${BY}, outcome) (rate(${m('ds_serving_requests_total')}[${w}]))` },
  ];
  return rules;
}
