import { CLUSTER_LABEL, declareRecorded, selector, type Scope } from '../promql.js';
import type { RulesConfig } from './config.js';

/** One recording rule. */
interface Rec {
  readonly record: string;
  readonly expr: string;
}

/**
 * Recorded series the fleet dashboards read instead of raw per-GPU series. Three kinds:
 * cluster-level aggregates (one series per cluster and scrape job, and per reason, type, cause
 * or bucket), per-pod sums (one series per pod, not per GPU), and per-GPU rates that only the
 * bounded "which GPUs" lists read (topk/bottomk); the per-GPU error rates are recorded only for
 * GPUs and links that have errors, so they stay as few as the GPUs in trouble.
 */
export const FLEET_REC = {
  // Cluster level.
  busyBuckets: 'cluster:ds_gpu_busy_ratio_bucket:count_rate5m',
  throttle: 'cluster:ds_gpu_throttle_seconds:rate5m',
  xidGpus: 'cluster:ds_gpu_xid_errors:gpus_increase5m',
  nvlinkErrors: 'cluster:ds_gpu_nvlink_errors:rate5m',
  pcieReplays: 'cluster:ds_gpu_pcie_replays:rate5m',
  eccErrors: 'cluster:ds_gpu_ecc_errors:increase5m',
  thermalMargin: 'cluster:ds_gpu_thermal_margin_celsius:min',
  remappedRows: 'cluster:ds_gpu_remapped_rows:sum',
  retiredPages: 'cluster:ds_gpu_retired_pages:sum',
  remapPending: 'cluster:ds_gpu_row_remap_pending:sum',
  remapFailed: 'cluster:ds_gpu_row_remap_failed:sum',
  pagesPending: 'cluster:ds_gpu_retired_pages_pending:sum',
  // Per host.
  hostThermalMargin: 'instance:ds_gpu_thermal_margin_celsius:min',
  hostFailingCollectors: 'instance:ds_exporter_collector_failing:count',
  // Per pod (namespace, pod on each host).
  podMemoryUsed: 'namespace_pod:ds_gpu_memory_used_bytes:sum',
  podProcessMemory: 'namespace_pod:ds_gpu_process_memory_used_bytes:sum',
  podTensorActive: 'namespace_pod:ds_gpu_tensor_active_seconds:rate5m',
  // Per GPU, for bounded lists only.
  gpuBusy: 'gpu:ds_gpu_busy:rate5m',
  podGpuBusy: 'pod_gpu:ds_gpu_busy:rate5m',
  gpuThrottled: 'gpu:ds_gpu_throttle_seconds:rate5m',
  linkNvlinkErrors: 'link:ds_gpu_nvlink_errors:rate5m',
  gpuPcieReplays: 'gpu:ds_gpu_pcie_replays:rate5m',
} as const;

/** Upper bounds (`le`) of the busy-fraction buckets: the idle threshold, then tenths; +Inf catches readings a hair above 1. */
export const BUSY_BUCKETS = ['0.05', '0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9', '1', '+Inf'] as const;

const CLUSTER_LABELS: Record<string, readonly string[]> = {
  [FLEET_REC.busyBuckets]: ['le'],
  [FLEET_REC.throttle]: ['reason'],
  [FLEET_REC.xidGpus]: ['action'],
  [FLEET_REC.nvlinkErrors]: ['type'],
  [FLEET_REC.eccErrors]: ['type'],
  [FLEET_REC.remappedRows]: ['cause'],
  [FLEET_REC.retiredPages]: ['cause'],
};
for (const name of Object.values(FLEET_REC).filter((n) => n.startsWith('cluster:'))) declareRecorded(name, CLUSTER_LABELS[name] ?? [], ['job']);
declareRecorded(FLEET_REC.hostThermalMargin, []);
declareRecorded(FLEET_REC.hostFailingCollectors, []);
for (const n of [FLEET_REC.podMemoryUsed, FLEET_REC.podProcessMemory, FLEET_REC.podTensorActive]) declareRecorded(n, ['namespace', 'pod']);
declareRecorded(FLEET_REC.gpuBusy, ['gpu', 'uuid']);
declareRecorded(FLEET_REC.podGpuBusy, ['gpu', 'uuid', 'namespace', 'pod', 'container']);
declareRecorded(FLEET_REC.gpuThrottled, ['gpu', 'uuid', 'reason']);
declareRecorded(FLEET_REC.linkNvlinkErrors, ['gpu', 'uuid', 'link']);
declareRecorded(FLEET_REC.gpuPcieReplays, ['gpu', 'uuid']);

/** Fixed like the other recording rules' window: the recorded names say 5m. */
const W = '5m';
// The cluster label (absent on a single Prometheus) stays in every aggregation and match.
const CLUSTER = `${CLUSTER_LABEL}, job`;
const HOST = `${CLUSTER_LABEL}, job, instance`;
/** Collapses the copies `--kubelet.enrich-labels` makes of a shared GPU's series (one per pod, same value). */
const ONE_PER_GPU = 'max without (namespace, pod, container)';

/** The fleet dashboards' recording rules, in evaluation order (a rule reads only rules above it). */
export function fleetRecordingRules(cfg: RulesConfig): Rec[] {
  const s: Scope = { always: cfg.selector, byLabel: {} };
  const m = (metric: string, extra: string[] = []) => selector(metric, s, extra);
  const perGpu = (expr: string) => `${ONE_PER_GPU} (${expr})`;
  const rate = (metric: string, extra: string[] = []) => perGpu(`rate(${m(metric, extra)}[${W}])`);
  const increase = (metric: string, extra: string[] = []) => perGpu(`increase(${m(metric, extra)}[${W}])`);
  const podGpu = `max by (${HOST}, namespace, pod, uuid) (${m('ds_gpu_allocation_info')})`;
  const perPod = (gpuExpr: string) => `sum by (${HOST}, namespace, pod) (${podGpu} * on (${HOST}, uuid) group_left () ${gpuExpr})`;
  const xid = m('ds_gpu_xid_errors_total');
  // An XID series is born at its first event, already at 1, where increase() sees nothing: a
  // series younger than the window counts as risen too (as in the XID alerts).
  const xidRisen = `increase(${xid}[${W}]) > 0 or (count_over_time(${xid}[${W}]) unless ignoring (action) count_over_time(${xid}[${W}] offset ${W}))`;
  return [
    // Per GPU: the busy fraction, and the same per pod holding the GPU (a shared GPU once per pod).
    { record: FLEET_REC.gpuBusy, expr: rate('ds_gpu_busy_seconds_total') },
    { record: FLEET_REC.podGpuBusy, expr: `${m('ds_gpu_allocation_info')} * on (${HOST}, uuid) group_left () ${rate('ds_gpu_busy_seconds_total')}` },
    // How many GPUs are at most this busy (cumulative, like a histogram's buckets): the fleet's utilization distribution.
    {
      record: FLEET_REC.busyBuckets,
      expr: BUSY_BUCKETS.map((le) => `label_replace(${le === '+Inf' ? `count by (${CLUSTER}) (${m(FLEET_REC.gpuBusy)})` : `sum by (${CLUSTER}) (${m(FLEET_REC.gpuBusy)} <= bool ${le})`}, "le", "${le}", "", "")`).join(' or '),
    },
    // Throttling: by reason per cluster; per GPU only where a reason other than idle held the clocks.
    { record: FLEET_REC.throttle, expr: `sum by (${CLUSTER}, reason) (${rate('ds_gpu_throttle_seconds_total')})` },
    { record: FLEET_REC.gpuThrottled, expr: `${rate('ds_gpu_throttle_seconds_total', ['reason!="gpu_idle"'])} > 0` },
    // GPUs with an XID in the window, by the catalog's action; 0 for actions seen but quiet.
    {
      record: FLEET_REC.xidGpus,
      expr: `count by (${CLUSTER}, action) (max by (${HOST}, uuid, action) (${xidRisen})) or 0 * count by (${CLUSTER}, action) (count_over_time(${xid}[${W}]))`,
    },
    { record: FLEET_REC.nvlinkErrors, expr: `sum by (${CLUSTER}, type) (${rate('ds_gpu_nvlink_errors_total')})` },
    { record: FLEET_REC.linkNvlinkErrors, expr: `sum by (${HOST}, gpu, uuid, link) (${rate('ds_gpu_nvlink_errors_total')}) > 0` },
    { record: FLEET_REC.pcieReplays, expr: `sum by (${CLUSTER}) (${rate('ds_gpu_pcie_replays_total')})` },
    { record: FLEET_REC.gpuPcieReplays, expr: `${rate('ds_gpu_pcie_replays_total')} > 0` },
    { record: FLEET_REC.eccErrors, expr: `sum by (${CLUSTER}, type) (${increase('ds_gpu_ecc_errors_total')})` },
    { record: FLEET_REC.thermalMargin, expr: `min by (${CLUSTER}) (${m('ds_gpu_thermal_margin_celsius')})` },
    { record: FLEET_REC.hostThermalMargin, expr: `min by (${HOST}) (${m('ds_gpu_thermal_margin_celsius')})` },
    { record: FLEET_REC.remappedRows, expr: `sum by (${CLUSTER}, cause) (${perGpu(m('ds_gpu_remapped_rows'))})` },
    { record: FLEET_REC.retiredPages, expr: `sum by (${CLUSTER}, cause) (${perGpu(m('ds_gpu_retired_pages'))})` },
    { record: FLEET_REC.remapPending, expr: `sum by (${CLUSTER}) (${perGpu(m('ds_gpu_row_remap_pending'))})` },
    { record: FLEET_REC.remapFailed, expr: `sum by (${CLUSTER}) (${perGpu(m('ds_gpu_row_remap_failed'))})` },
    { record: FLEET_REC.pagesPending, expr: `sum by (${CLUSTER}) (${perGpu(m('ds_gpu_retired_pages_pending'))})` },
    // Failing collectors per exporter, 0 when none fails (so that a healthy host still has a line).
    {
      record: FLEET_REC.hostFailingCollectors,
      expr: `count by (${HOST}) (${m('ds_exporter_collector_success')} == 0) or 0 * count by (${HOST}) (${m('ds_exporter_collector_success')})`,
    },
    // Per pod: memory and tensor activity of the pod's GPUs (a shared GPU counts fully for each pod).
    { record: FLEET_REC.podMemoryUsed, expr: perPod(perGpu(m('ds_gpu_memory_used_bytes'))) },
    { record: FLEET_REC.podTensorActive, expr: perPod(`sum by (${HOST}, uuid) (${rate('ds_gpu_tensor_active_seconds_total', ['pipe="any"'])})`) },
    // Per pod from the processes themselves (ds_gpu_process_info names each process's pod): a shared GPU is split, not counted twice.
    {
      record: FLEET_REC.podProcessMemory,
      expr: `sum by (${HOST}, namespace, pod) (max by (${HOST}, uuid, pid) (${m('ds_gpu_process_memory_used_bytes')}) * on (${HOST}, uuid, pid) group_left (namespace, pod) ${m('ds_gpu_process_info', ['pod!=""'])})`,
    },
  ];
}
