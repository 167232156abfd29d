import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { CLUSTER_REC, REC } from '../rules/recording.js';
import { podActivityPanel } from './profiling.js';
import { dashboardShell, ONE_PER_GPU, recordingRulesPanel, podBusyPanel, podMemoryPanel, podProcessMemoryPanel, queries, row, seriesHeatmap, statPanel, tablePanel, timeSeries, UTILIZATION_NOTE } from './common.js';

/**
 * Rows of the fleet's per-GPU tables: they list GPUs, so they read raw series (a recording rule
 * would keep one series per GPU and save nothing), bounded so a fleet of thousands stays readable.
 */
export const FLEET_TABLE_ROWS = 100;

/** Fleet overview: every exporter at once, mostly from the recording rules. */
export function fleetDashboard(): dashboard.Dashboard {
  const q = queries(['namespace', 'pod']);
  const s = q.s;
  const busy = `rate(${s('ds_gpu_busy_seconds_total')}[$__rate_interval])`;
  const alloc = s('ds_gpu_allocation_info');
  return dashboardShell({
    uid: 'ds-exporter-fleet',
    title: 'ds-exporter / Fleet overview',
    description: 'All GPU hosts at once: utilization, idle-but-allocated GPUs, memory, fragmentation, throughput, hot and throttled GPUs, exporter health. Needs the recording rules: alerts/ds-exporter-rules.yaml (the chart\'s PrometheusRule ships them); the "Recording rules" panel says whether they are loaded.',
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
    .withPanel(seriesHeatmap({ title: 'GPU utilization heatmap', description: `One row per GPU, colored by the busy fraction. ${UTILIZATION_NOTE}`, unit: 'percentunit', w: 24, h: 10, min: 0, max: 1, targets: [{ expr: busy, legend: '{{instance}} GPU {{gpu}}' }] }))
    .withPanel(timeSeries({ title: 'GPU utilization by host', description: `Average busy fraction of the GPUs of each exporter (recording rule ${REC.gpuUtilization}). ${UTILIZATION_NOTE}`, unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s(REC.gpuUtilization), legend: '{{instance}}' }] }))
    .withPanel(tablePanel({
      title: 'Allocated but idle GPUs',
      description: `The ${FLEET_TABLE_ROWS} least busy GPUs allocated to a pod (ds_gpu_allocation_info, joined on uuid; a GPU shared by several pods shows once per pod) whose busy fraction over the rate interval is under 5%: capacity paid for and unused. ${UTILIZATION_NOTE}`,
      unit: 'percentunit', columns: ['instance', 'gpu', 'namespace', 'pod', 'container'], sortBy: 'Value',
      targets: [{ expr: `bottomk(${FLEET_TABLE_ROWS}, ${alloc} * on (job, instance, uuid) group_left () (${ONE_PER_GPU}(${busy}) < 0.05))`, format: 'table', instant: true }],
    }))
    .withPanel(tablePanel({
      title: 'GPU allocation and utilization',
      description: `The ${FLEET_TABLE_ROWS} least busy allocated GPUs with their pod and busy fraction, least busy first (a per-GPU list, read from raw series and bounded; the counts are in the recording rules); a GPU shared by several pods shows once per pod. ${UTILIZATION_NOTE}`,
      unit: 'percentunit', w: 24, columns: ['instance', 'gpu', 'namespace', 'pod', 'container'],
      targets: [{ expr: `sort(bottomk(${FLEET_TABLE_ROWS}, ${alloc} * on (job, instance, uuid) group_left () ${ONE_PER_GPU}(${busy})))`, format: 'table', instant: true }],
    }))
    .withRow(row('Pods'))
    .withPanel(podBusyPanel(q))
    .withPanel(podMemoryPanel(q))
    .withPanel(podProcessMemoryPanel(q))
    .withPanel(podActivityPanel(q))
    .withRow(row('Memory and fragmentation'))
    .withPanel(timeSeries({ title: 'GPU memory used by host', description: 'Device memory in use per exporter (sum over its GPUs), with the total as a dashed line.', unit: 'bytes', targets: [{ expr: s(REC.memoryUsed), legend: '{{instance}} used' }, { expr: s(REC.memoryTotal), legend: '{{instance}} total' }] }))
    .withPanel(timeSeries({ title: 'Worst allocator fragmentation by host', description: 'Highest (reserved - allocated) / reserved of any process allocator on each host; high values with allocation retries mean memory is wasted in cached blocks.', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s(REC.fragmentationMax), legend: '{{instance}}' }] }))
    .withRow(row('Throughput'))
    .withPanel(timeSeries({ title: 'Tokens/s by host and phase', description: 'Prompt and generation tokens per second of every engine, per exporter.', unit: 'cps', stack: true, targets: [{ expr: s(REC.tokens), legend: '{{instance}} {{phase}}' }] }))
    .withPanel(timeSeries({ title: 'Requests/s by outcome', description: 'Finished requests per second across the fleet, by outcome.', unit: 'reqps', stack: true, targets: [{ expr: `sum by (outcome) (${s(REC.requests)})`, legend: '{{outcome}}' }] }))
    .withPanel(timeSeries({ title: 'GPU power by host', description: 'Power draw of all GPUs of each exporter.', unit: 'watt', stack: true, targets: [{ expr: s(REC.power), legend: '{{instance}}' }] }))
    .withRow(row('Hottest and throttled GPUs'))
    .withPanel(tablePanel({ title: 'Hottest GPUs', description: 'The ten GPUs with the highest core temperature now.', unit: 'celsius', w: 8, columns: ['instance', 'gpu'], sortBy: 'Value', targets: [{ expr: `topk(10, ${s('ds_gpu_temperature_celsius')})`, format: 'table', instant: true }] }))
    .withPanel(tablePanel({ title: 'Most throttled GPUs', description: 'The ten GPU/reason pairs with the largest fraction of time throttled (idle excluded) over the rate interval.', unit: 'percentunit', w: 8, columns: ['instance', 'gpu', 'reason'], sortBy: 'Value', targets: [{ expr: `topk(10, rate(${s('ds_gpu_throttle_seconds_total', 'reason!="gpu_idle"')}[$__rate_interval]))`, format: 'table', instant: true }] }))
    .withPanel(timeSeries({ title: 'Throttling by reason', description: 'Fraction of GPU-time throttled, summed over GPUs per reason (recording rule; 1 = one GPU throttled all the time).', unit: 'percentunit', w: 8, targets: [{ expr: `sum by (reason) (${s(REC.throttle, 'reason!="gpu_idle"')})`, legend: '{{reason}}' }] }))
    .withRow(row('Exporters'))
    .withPanel(timeSeries({ title: 'Targets up', description: 'Prometheus scrape success of every exporter (up).', unit: 'short', w: 8, min: 0, max: 1, targets: [{ expr: s('up'), legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Failing collectors', description: 'Collectors whose last sample failed (ds_exporter_collector_success == 0), counted per exporter.', unit: 'short', w: 8, min: 0, targets: [{ expr: `count by (instance) (${s('ds_exporter_collector_success')} == 0) or sum by (instance) (${s('ds_exporter_collector_success')}) * 0`, legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Scrape duration', description: 'How long Prometheus took to scrape each exporter (scrape_duration_seconds); scrapes only render stored samples, so this stays flat when sources are slow.', unit: 's', w: 8, targets: [{ expr: s('scrape_duration_seconds'), legend: '{{instance}}' }] }))
    .build();
}
