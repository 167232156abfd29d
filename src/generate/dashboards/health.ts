import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { FLEET_REC } from '../rules/fleet.js';
import { CLUSTER_REC } from '../rules/recording.js';
import { dashboardShell, ONE_PER_GPU, queries, recordingRulesPanel, row, statPanel, tablePanel, timeSeries } from './common.js';

const VERDICT_NOTE = 'Verdicts and their rules: docs/gpu-health.md.';

/** Where a cluster-level error trend comes from, and what it cannot filter. */
const CLUSTER_NOTE = (record: string) => `Cluster-level recording rule ${record} (one series per cluster and kind, whatever the number of GPUs; not filtered by instance, namespace or pod).`;

/** Where a bounded "which GPUs" list comes from. */
const BOUNDED = (record: string, what: string) => `Bounded: reads ${record}, recorded only for the ${what} with errors in the last 5 minutes (as many series as ${what} in trouble), through topk(10).`;

/** Fleet health: GPUs by verdict, the GPUs needing action with node, pod and action, and each error class over time. */
export function healthDashboard(): dashboard.Dashboard {
  const q = queries(['namespace', 'pod']);
  const s = q.s;
  // One verdict per GPU, whether or not --kubelet.enrich-labels added pod labels to it.
  const health = (...extra: string[]) => `${ONE_PER_GPU}(${s('ds_gpu_health', ...extra)})`;
  const needing = health('verdict=~"action_required|lost"');
  const alloc = s('ds_gpu_allocation_info');
  const verdictStat = (verdict: string, title: string, color: string, description: string) => statPanel({
    title, description: `${description} From the cluster-level recording rule ${CLUSTER_REC.gpuVerdicts} (not filtered by namespace or pod). ${VERDICT_NOTE}`, unit: 'short', w: 6,
    thresholds: [[null, 'green'], [1, color]],
    targets: [{ expr: `sum(${s(CLUSTER_REC.gpuVerdicts, `verdict="${verdict}"`)}) or vector(0)` }],
  });
  return dashboardShell({
    uid: 'ds-exporter-fleet-health',
    title: 'ds-exporter / Fleet health',
    description: 'Is each GPU still trustworthy, and what to do about the ones that are not: verdicts, the GPUs needing action with node, pod and action, and the trend of every error class. The verdict counts and the error trends read recorded series, so the dashboard stays cheap over thousands of GPUs (the tables of GPUs needing action read the verdict series of those GPUs only): they need the recording rules, alerts/ds-exporter-rules.yaml (the chart\'s PrometheusRule ships them); the "Recording rules" panel says whether they are loaded.',
    tags: ['fleet', 'health'],
    filters: ['namespace', 'pod'],
  })
    .withRow(row('GPUs by verdict'))
    .withPanel(verdictStat('ok', 'GPUs ok', 'green', 'GPUs whose every health signal is fine.'))
    .withPanel(verdictStat('degraded', 'GPUs degraded', 'yellow', 'GPUs with rising NVLink/PCIe/ECC errors, a thin thermal margin, HW slowdown or an XID that needs a look; no action forced yet.'))
    .withPanel(verdictStat('action_required', 'GPUs needing action', 'red', 'GPUs that must be reset, drained, rebooted or replaced before they are trusted again.'))
    .withPanel(verdictStat('lost', 'GPUs lost', 'red', 'GPUs that stopped answering the driver (fell off the bus).'))
    .withPanel(timeSeries({
      title: 'GPUs by verdict', description: `Number of GPUs in each verdict over time (cluster-level recording rule ${CLUSTER_REC.gpuVerdicts}; not filtered by namespace or pod). ${VERDICT_NOTE}`, unit: 'short', w: 18, stack: true, min: 0,
      targets: [{ expr: `sum by (verdict) (${s(CLUSTER_REC.gpuVerdicts)})`, legend: '{{verdict}}' }],
    }))
    .withPanel(recordingRulesPanel(q, CLUSTER_REC.gpuVerdicts))
    .withRow(row('GPUs needing action'))
    .withPanel(tablePanel({
      title: 'GPUs needing action',
      description: `Every GPU whose verdict is action_required or lost, with its node, the pod holding it (from ds_gpu_allocation_info; empty when no pod holds it), the action and the signal that decided it. Runbooks: docs/runbooks.md (DsGpuNeedsReset, DsGpuNodeNeedsReboot, DsGpuRowRemapFailed, DsGpuFellOffTheBus). ${VERDICT_NOTE}`,
      unit: 'short', w: 24, h: 10, columns: ['node', 'instance', 'gpu', 'uuid', 'namespace', 'pod', 'verdict', 'action', 'reason'],
      targets: [{ expr: `(${alloc} * on (job, instance, uuid) group_left (verdict, action, reason) ${needing}) or on (job, instance, uuid) ${needing}`, format: 'table', instant: true }],
    }))
    .withPanel(tablePanel({
      title: 'Driver recovery actions',
      description: 'GPUs whose driver recommends a recovery action other than none (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, nvidia-smi gpu_recovery_action).',
      unit: 'short', columns: ['node', 'instance', 'gpu', 'action'],
      targets: [{ expr: s('ds_gpu_recovery_action', 'action!="none"'), format: 'table', instant: true }],
    }))
    .withPanel(tablePanel({
      title: 'Degraded GPUs',
      description: `GPUs whose verdict is degraded and the signal behind it: watch them, no action forced yet. ${VERDICT_NOTE}`,
      unit: 'short', columns: ['node', 'instance', 'gpu', 'reason'],
      targets: [{ expr: health('verdict="degraded"'), format: 'table', instant: true }],
    }))
    .withRow(row('Error classes'))
    .withPanel(timeSeries({ title: 'GPUs with XIDs by catalog action', description: `GPUs that reported at least one XID in the last 5 minutes, by the immediate action NVIDIA's XID catalog gives (restart_app: the application failed; reset_gpu, restart_bm: the GPU or node; unknown: not in the catalog); an XID series born at its first event counts too. ${CLUSTER_NOTE(FLEET_REC.xidGpus)} Which GPUs: the verdict tables above and the DsGpuXidCritical / DsGpuXidErrors alerts.`, unit: 'short', w: 8, stack: true, min: 0, targets: [{ expr: `sum by (action) (${s(FLEET_REC.xidGpus)})`, legend: '{{action}}' }] }))
    .withPanel(timeSeries({ title: 'NVLink errors/s by type', description: `NVLink CRC, replay and recovery errors per second across the fleet over the last 5 minutes; a steady rise on one GPU is a marginal link (DsGpuNvlinkErrorsRising). ${CLUSTER_NOTE(FLEET_REC.nvlinkErrors)}`, unit: 'short', w: 8, stack: true, targets: [{ expr: `sum by (type) (${s(FLEET_REC.nvlinkErrors)})`, legend: '{{type}}' }] }))
    .withPanel(timeSeries({ title: 'NVLink errors/s, worst links', description: `The ten links with the most NVLink errors per second (all types, over the last 5 minutes). ${BOUNDED(FLEET_REC.linkNvlinkErrors, 'links')}`, unit: 'short', w: 8, targets: [{ expr: `topk(10, ${s(FLEET_REC.linkNvlinkErrors)})`, legend: '{{instance}} GPU {{gpu}} link {{link}}' }] }))
    .withPanel(timeSeries({ title: 'PCIe replays/s, fleet and worst GPUs', description: `PCIe replays per second over the last 5 minutes, across the fleet (${FLEET_REC.pcieReplays}) and of the ten GPUs with the most: errors on the PCIe path (riser, slot). ${BOUNDED(FLEET_REC.gpuPcieReplays, 'GPUs')}`, unit: 'short', w: 8, targets: [
      { expr: `sum(${s(FLEET_REC.pcieReplays)})`, legend: 'fleet' },
      { expr: `topk(10, ${s(FLEET_REC.gpuPcieReplays)})`, legend: '{{instance}} GPU {{gpu}}' },
    ] }))
    .withPanel(timeSeries({ title: 'ECC errors by type', description: `Corrected and uncorrected (volatile) ECC errors across the fleet in the last 5 minutes. ${CLUSTER_NOTE(FLEET_REC.eccErrors)} Which GPUs: an uncorrectable error makes the GPU degraded (reason ecc_uncorrected, in "Degraded GPUs") and fires DsGpuEccUncorrectable.`, unit: 'short', w: 8, min: 0, targets: [{ expr: `sum by (type) (${s(FLEET_REC.eccErrors)})`, legend: '{{type}}' }] }))
    .withPanel(timeSeries({ title: 'Lowest thermal margin, fleet and hottest hosts', description: `The smallest distance to the slowdown temperature of any GPU in the fleet (${FLEET_REC.thermalMargin}) and of the ten hosts with the thinnest margin (bottomk over ${FLEET_REC.hostThermalMargin}, one series per host); at 0 or below the GPU is slowed for heat and its verdict is degraded (reason thermal_margin, in "Degraded GPUs").`, unit: 'celsius', w: 8, targets: [
      { expr: `min(${s(FLEET_REC.thermalMargin)})`, legend: 'fleet' },
      { expr: `bottomk(10, ${s(FLEET_REC.hostThermalMargin)})`, legend: '{{instance}}' },
    ] }))
    .withPanel(timeSeries({ title: 'Remapped rows by cause', description: `Memory rows remapped over the GPUs' life across the fleet, by cause; pending and failed remaps are in the verdict. ${CLUSTER_NOTE(FLEET_REC.remappedRows)}`, unit: 'short', w: 8, targets: [{ expr: `sum by (cause) (${s(FLEET_REC.remappedRows)})`, legend: '{{cause}}' }] }))
    .withPanel(timeSeries({ title: 'Retired pages by cause', description: `Memory pages retired over the GPUs' life across the fleet, by cause (GPUs with row remapping report none). ${CLUSTER_NOTE(FLEET_REC.retiredPages)}`, unit: 'short', w: 8, targets: [{ expr: `sum by (cause) (${s(FLEET_REC.retiredPages)})`, legend: '{{cause}}' }] }))
    .withPanel(timeSeries({ title: 'Pending remaps and retirements', description: `GPUs with a row remap pending (needs a GPU reset), a failed remap (RMA) or pages pending retirement (needs a reboot); each is action_required, listed in "GPUs needing action". Cluster-level recording rules (${FLEET_REC.remapPending}, ${FLEET_REC.remapFailed}, ${FLEET_REC.pagesPending}), not filtered by instance, namespace or pod.`, unit: 'short', w: 8, min: 0, targets: [
      { expr: `sum(${s(FLEET_REC.remapPending)})`, legend: 'row remap pending' },
      { expr: `sum(${s(FLEET_REC.remapFailed)})`, legend: 'row remap failed' },
      { expr: `sum(${s(FLEET_REC.pagesPending)})`, legend: 'pages pending retirement' },
    ] }))
    .build();
}
