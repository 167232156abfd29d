import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import type * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { EFF } from '../rules/efficiency.js';
import { FLEET_REC } from '../rules/fleet.js';
import { CLUSTER_REC, REC } from '../rules/recording.js';
import { PROFILING_NOTE } from './profiling.js';
import { bucketHeatmap, dashboardShell, type Q, queries, recordingRulesPanel, row, statPanel, tablePanel, timeSeries, UTILIZATION_NOTE } from './common.js';

/**
 * Rows of the fleet's per-GPU tables: they list GPUs from a recorded per-GPU busy fraction
 * (one series per allocated GPU), bounded so a fleet of thousands stays readable.
 */
export const FLEET_TABLE_ROWS = 100;

/** What the fleet's per-pod panels read and how they attribute GPUs to pods. */
const FLEET_POD_NOTE = 'Read from per-pod recording rules (one series per pod on each host, not per GPU): the pod is the one the kubelet assigned the GPU to (ds_gpu_allocation_info, joined on job, instance and uuid when the rules are evaluated), GPUs assigned to no pod are left out, and the namespace and pod variables filter the pods. One line per pod: at fleet scale narrow it with the namespace and pod variables.';

/** Where the per-GPU lists come from and why they stay small. */
const BOUNDED_NOTE = 'Bounded: the list reads a recorded per-GPU series';

/** GPU busy time per pod, from the per-pod recording rule. */
function fleetPodBusyPanel(q: Q): timeseries.PanelBuilder {
  return timeSeries({
    title: 'GPU busy by pod',
    description: `Busy fraction of the GPUs of each pod over the last 5 minutes, summed over its GPUs (${EFF.podBusy}; 1 = one GPU busy all the time, so a pod holding 4 GPUs tops out at 400%); a GPU shared by several pods counts fully for each. ${FLEET_POD_NOTE} ${UTILIZATION_NOTE}`,
    unit: 'percentunit', min: 0,
    targets: [{ expr: `sum by (namespace, pod) (${q.s(EFF.podBusy)})`, legend: '{{namespace}}/{{pod}}' }],
  });
}

/** Device memory used per pod, from the per-pod recording rule. */
function fleetPodMemoryPanel(q: Q): timeseries.PanelBuilder {
  return timeSeries({
    title: 'GPU memory used by pod',
    description: `Device memory in use on the GPUs of each pod (ds_gpu_memory_used_bytes, driver view: includes the allocator cache and the CUDA context), summed over its GPUs (${FLEET_REC.podMemoryUsed}); a GPU shared by several pods counts fully for each. ${FLEET_POD_NOTE}`,
    unit: 'bytes', min: 0,
    targets: [{ expr: `sum by (namespace, pod) (${q.s(FLEET_REC.podMemoryUsed)})`, legend: '{{namespace}}/{{pod}}' }],
  });
}

/** Device memory per pod from the GPU processes, from the per-pod recording rule. */
function fleetPodProcessMemoryPanel(q: Q): timeseries.PanelBuilder {
  return timeSeries({
    title: 'GPU memory by pod (processes)',
    description: `Device memory used by the GPU processes of each pod (ds_gpu_process_memory_used_bytes, needs --nvml.process-memory), each process attributed to the pod its cgroup names (ds_gpu_process_info, needs --kubelet.process-attribution and hostPID), summed per pod by the recording rule ${FLEET_REC.podProcessMemory}. Unlike "GPU memory used by pod", a GPU shared by several pods is split between them by process; the CUDA context and processes that could not be attributed are left out. One line per pod: at fleet scale narrow it with the namespace and pod variables.`,
    unit: 'bytes', min: 0,
    targets: [{ expr: `sum by (namespace, pod) (${q.s(FLEET_REC.podProcessMemory)})`, legend: '{{namespace}}/{{pod}}' }],
  });
}

/** Busy, SM and tensor activity per pod, from the per-pod recording rules. */
function fleetPodActivityPanel(q: Q): timeseries.PanelBuilder {
  const r = (name: string) => `sum by (namespace, pod) (${q.s(name)})`;
  return timeSeries({
    title: 'Busy vs SM and tensor activity by pod',
    description: `Busy fraction, SM activity and tensor activity of the GPUs of each pod over the last 5 minutes, summed over its GPUs (1 = one GPU all the time; ${EFF.podBusy}, ${EFF.podSmActive}, ${FLEET_REC.podTensorActive}). ${FLEET_POD_NOTE} ${PROFILING_NOTE} ${UTILIZATION_NOTE}`,
    unit: 'percentunit', min: 0,
    targets: [
      { expr: r(EFF.podBusy), legend: '{{namespace}}/{{pod}} busy' },
      { expr: r(EFF.podSmActive), legend: '{{namespace}}/{{pod}} SM active' },
      { expr: r(FLEET_REC.podTensorActive), legend: '{{namespace}}/{{pod}} tensor' },
    ],
  });
}

/**
 * Fleet overview: every exporter at once, from recording rules only (cluster level, per host,
 * per pod, and per-GPU series read only through topk/bottomk), so that what a panel reads does
 * not grow with the number of GPUs.
 */
export function fleetDashboard(): dashboard.Dashboard {
  const q = queries(['namespace', 'pod']);
  const s = q.s;
  const podGpuBusy = s(FLEET_REC.podGpuBusy);
  return dashboardShell({
    uid: 'ds-exporter-fleet',
    title: 'ds-exporter / Fleet overview',
    description: 'All GPU hosts at once: utilization, idle-but-allocated GPUs, memory, fragmentation, throughput, hot and throttled GPUs, exporter health. Every panel but the hottest GPUs reads recorded series, so the dashboard stays cheap over thousands of GPUs: it needs the recording rules, alerts/ds-exporter-rules.yaml (the chart\'s PrometheusRule ships them); the "Recording rules" panel says whether they are loaded.',
    tags: ['fleet'],
    filters: ['namespace', 'pod'],
  })
    .withRow(row('Fleet now'))
    .withPanel(recordingRulesPanel(q, REC.gpuCount))
    .withPanel(statPanel({ title: 'GPUs up', description: `GPUs answering the driver (sum of ds_gpu_up; cluster-level recording rule ${CLUSTER_REC.gpuUp}).`, unit: 'short', targets: [{ expr: `sum(${s(CLUSTER_REC.gpuUp)})` }] }))
    .withPanel(statPanel({ title: 'GPUs seen', description: `GPUs known to the exporters (count of ds_gpu_info; ${CLUSTER_REC.gpuCount}); more than "GPUs up" means some are lost.`, unit: 'short', targets: [{ expr: `sum(${s(CLUSTER_REC.gpuCount)})` }] }))
    .withPanel(statPanel({ title: 'Fleet GPU utilization', description: `Average busy fraction of all GPUs over the last 5 minutes (cluster-level recording rules: busy GPU-seconds per second over the GPU count). ${UTILIZATION_NOTE}`, unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `sum(${s(CLUSTER_REC.gpuBusy)}) / sum(${s(CLUSTER_REC.gpuCount)})` }] }))
    .withPanel(statPanel({ title: 'Allocated but idle GPUs', description: `GPUs that the kubelet assigned to a pod (ds_gpu_allocation_info) but that were busy under 5% of the last 5 minutes (${CLUSTER_REC.allocatedIdle}).`, unit: 'short', thresholds: [[null, 'green'], [1, 'orange']], targets: [{ expr: `sum(${s(CLUSTER_REC.allocatedIdle)}) or vector(0)` }] }))
    .withPanel(statPanel({ title: 'GPU memory in use', description: 'Device memory used across the fleet, as a fraction of all device memory (cluster-level recording rules).', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `sum(${s(CLUSTER_REC.memoryUsed)}) / sum(${s(CLUSTER_REC.memoryTotal)})` }] }))
    .withPanel(statPanel({ title: 'Generated tokens/s', description: `Generation tokens per second of every engine in the fleet (${CLUSTER_REC.tokens}).`, unit: 'cps', targets: [{ expr: `sum(${s(CLUSTER_REC.tokens, 'phase="generation"')})` }] }))
    .withRow(row('Utilization'))
    .withPanel(bucketHeatmap({
      title: 'GPU utilization distribution',
      description: `How many GPUs ran at each busy fraction over time: each row is a band of busy fraction over the last 5 minutes (under 5%, then tenths), each cell the number of GPUs in it (cluster-level recording rule ${FLEET_REC.busyBuckets}, cumulative buckets like a histogram's; not filtered by instance, namespace or pod). A bright bottom row is idle capacity; which GPUs they are is in the tables below. ${UTILIZATION_NOTE}`,
      unit: 'percentunit', w: 24, h: 10,
      targets: [{ expr: `sum by (le) (${s(FLEET_REC.busyBuckets)})`, legend: '{{le}}', format: 'heatmap' }],
    }))
    .withPanel(timeSeries({ title: 'GPU utilization by host', description: `Average busy fraction of the GPUs of each exporter (recording rule ${REC.gpuUtilization}). ${UTILIZATION_NOTE}`, unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s(REC.gpuUtilization), legend: '{{instance}}' }] }))
    .withPanel(tablePanel({
      title: 'Allocated but idle GPUs',
      description: `The ${FLEET_TABLE_ROWS} least busy GPUs allocated to a pod (a GPU shared by several pods shows once per pod) whose busy fraction over the last 5 minutes is under 5%: capacity paid for and unused. ${BOUNDED_NOTE}, ${FLEET_REC.podGpuBusy} (one per allocated GPU and pod), through bottomk(${FLEET_TABLE_ROWS}); the count of all of them is the "Allocated but idle GPUs" stat. ${UTILIZATION_NOTE}`,
      unit: 'percentunit', columns: ['instance', 'gpu', 'namespace', 'pod', 'container'], sortBy: 'Value',
      targets: [{ expr: `bottomk(${FLEET_TABLE_ROWS}, ${podGpuBusy} < 0.05)`, format: 'table', instant: true }],
    }))
    .withPanel(tablePanel({
      title: 'GPU allocation and utilization',
      description: `The ${FLEET_TABLE_ROWS} least busy allocated GPUs with their pod and busy fraction over the last 5 minutes, least busy first; a GPU shared by several pods shows once per pod. ${BOUNDED_NOTE}, ${FLEET_REC.podGpuBusy}, through bottomk(${FLEET_TABLE_ROWS}). ${UTILIZATION_NOTE}`,
      unit: 'percentunit', w: 24, columns: ['instance', 'gpu', 'namespace', 'pod', 'container'],
      targets: [{ expr: `sort(bottomk(${FLEET_TABLE_ROWS}, ${podGpuBusy}))`, format: 'table', instant: true }],
    }))
    .withRow(row('Pods'))
    .withPanel(fleetPodBusyPanel(q))
    .withPanel(fleetPodMemoryPanel(q))
    .withPanel(fleetPodProcessMemoryPanel(q))
    .withPanel(fleetPodActivityPanel(q))
    .withRow(row('Memory and fragmentation'))
    .withPanel(timeSeries({ title: 'GPU memory used by host', description: 'Device memory in use per exporter (sum over its GPUs), with the total as a dashed line.', unit: 'bytes', targets: [{ expr: s(REC.memoryUsed), legend: '{{instance}} used' }, { expr: s(REC.memoryTotal), legend: '{{instance}} total' }] }))
    .withPanel(timeSeries({ title: 'Worst allocator fragmentation by host', description: 'Highest (reserved - allocated) / reserved of any process allocator on each host; high values with allocation retries mean memory is wasted in cached blocks.', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s(REC.fragmentationMax), legend: '{{instance}}' }] }))
    .withRow(row('Throughput'))
    .withPanel(timeSeries({ title: 'Tokens/s by host and phase', description: 'Prompt and generation tokens per second of every engine, per exporter.', unit: 'cps', stack: true, targets: [{ expr: s(REC.tokens), legend: '{{instance}} {{phase}}' }] }))
    .withPanel(timeSeries({ title: 'Requests/s by outcome', description: 'Finished requests per second across the fleet, by outcome.', unit: 'reqps', stack: true, targets: [{ expr: `sum by (outcome) (${s(REC.requests)})`, legend: '{{outcome}}' }] }))
    .withPanel(timeSeries({ title: 'GPU power by host', description: 'Power draw of all GPUs of each exporter.', unit: 'watt', stack: true, targets: [{ expr: s(REC.power), legend: '{{instance}}' }] }))
    .withRow(row('Hottest and throttled GPUs'))
    // The one raw per-GPU read of this dashboard: an instant topk of a gauge, one sample per GPU (see test/generate/fleet-recorded.test.ts).
    .withPanel(tablePanel({ title: 'Hottest GPUs', description: 'The ten GPUs with the highest core temperature now (an instant topk over ds_gpu_temperature_celsius: one sample per GPU, the list bounded to ten; a recorded copy would read as many). Which are past their slowdown threshold: "Lowest thermal margin" on the fleet health dashboard.', unit: 'celsius', w: 8, columns: ['instance', 'gpu'], sortBy: 'Value', targets: [{ expr: `topk(10, ${s('ds_gpu_temperature_celsius')})`, format: 'table', instant: true }] }))
    .withPanel(tablePanel({ title: 'Most throttled GPUs', description: `The ten GPU/reason pairs with the largest fraction of time throttled (idle excluded) over the last 5 minutes. ${BOUNDED_NOTE}, ${FLEET_REC.gpuThrottled}, recorded only for GPUs throttled in the window (so it has as many series as throttled GPU/reason pairs), through topk(10).`, unit: 'percentunit', w: 8, columns: ['instance', 'gpu', 'reason'], sortBy: 'Value', targets: [{ expr: `topk(10, ${s(FLEET_REC.gpuThrottled)})`, format: 'table', instant: true }] }))
    .withPanel(timeSeries({ title: 'Throttling by reason', description: `Fraction of GPU-time throttled, summed over GPUs per reason (cluster-level recording rule ${FLEET_REC.throttle}, not filtered by instance; 1 = one GPU throttled all the time).`, unit: 'percentunit', w: 8, targets: [{ expr: `sum by (reason) (${s(FLEET_REC.throttle, 'reason!="gpu_idle"')})`, legend: '{{reason}}' }] }))
    .withRow(row('Exporters'))
    .withPanel(timeSeries({ title: 'Targets up', description: 'Prometheus scrape success of every exporter (up).', unit: 'short', w: 8, min: 0, max: 1, targets: [{ expr: s('up'), legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Failing collectors', description: `Collectors whose last sample failed (ds_exporter_collector_success == 0), counted per exporter (recording rule ${FLEET_REC.hostFailingCollectors}; 0 when none fails). Which collector: the DsExporterCollectorFailing alert and the exporter health dashboard.`, unit: 'short', w: 8, min: 0, targets: [{ expr: s(FLEET_REC.hostFailingCollectors), legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Scrape duration', description: 'How long Prometheus took to scrape each exporter (scrape_duration_seconds); scrapes only render stored samples, so this stays flat when sources are slow.', unit: 's', w: 8, targets: [{ expr: s('scrape_duration_seconds'), legend: '{{instance}}' }] }))
    .build();
}
