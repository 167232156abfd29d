import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { CLUSTER_REC } from '../rules/recording.js';
import { dashboardShell, ONE_PER_GPU, queries, recordingRulesPanel, row, statPanel, tablePanel, timeSeries } from './common.js';

const VERDICT_NOTE = 'Verdicts and their rules: docs/gpu-health.md.';

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
    description: 'Is each GPU still trustworthy, and what to do about the ones that are not: verdicts, the GPUs needing action with node, pod and action, and the trend of every error class. The verdict counts need the recording rules: alerts/ds-exporter-rules.yaml (the chart\'s PrometheusRule ships them); the "Recording rules" panel says whether they are loaded.',
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
    .withPanel(timeSeries({ title: 'XIDs by catalog action', description: 'XID events per rate interval across the fleet, by the immediate action NVIDIA\'s XID catalog gives (restart_app: the application failed; reset_gpu, restart_bm: the GPU or node; unknown: not in the catalog).', unit: 'short', w: 8, stack: true, targets: [{ expr: `sum by (action) (increase(${s('ds_gpu_xid_errors_total')}[$__rate_interval]))`, legend: '{{action}}' }] }))
    .withPanel(timeSeries({ title: 'NVLink errors/s by type', description: 'NVLink CRC, replay and recovery errors per second across the fleet; a steady rise on one GPU is a marginal link (DsGpuNvlinkErrorsRising).', unit: 'short', w: 8, stack: true, targets: [{ expr: `sum by (type) (rate(${s('ds_gpu_nvlink_errors_total')}[$__rate_interval]))`, legend: '{{type}}' }] }))
    .withPanel(timeSeries({ title: 'NVLink errors/s, worst links', description: 'The ten links with the most NVLink errors per second (all types).', unit: 'short', w: 8, targets: [{ expr: `topk(10, sum by (instance, gpu, link) (rate(${s('ds_gpu_nvlink_errors_total')}[$__rate_interval])) > 0)`, legend: '{{instance}} GPU {{gpu}} link {{link}}' }] }))
    .withPanel(timeSeries({ title: 'PCIe replays/s', description: 'PCIe replays per second of each GPU that has any: errors on the PCIe path (riser, slot).', unit: 'short', w: 8, targets: [{ expr: `sum by (instance, gpu) (rate(${s('ds_gpu_pcie_replays_total')}[$__rate_interval])) > 0`, legend: '{{instance}} GPU {{gpu}}' }] }))
    .withPanel(timeSeries({ title: 'Uncorrectable ECC errors by host', description: 'Uncorrectable (volatile) ECC errors per rate interval of the GPUs of each host.', unit: 'short', w: 8, min: 0, targets: [{ expr: `sum by (instance) (increase(${s('ds_gpu_ecc_errors_total', 'type="uncorrected"')}[$__rate_interval]))`, legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Lowest thermal margin by host', description: 'The smallest distance to the slowdown temperature of any GPU of each host; at 0 or below the GPU is slowed for heat.', unit: 'celsius', w: 8, targets: [{ expr: `min by (instance) (${s('ds_gpu_thermal_margin_celsius')})`, legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Remapped rows by cause', description: 'Memory rows remapped over the GPUs\' life across the fleet, by cause; pending and failed remaps are in the verdict.', unit: 'short', w: 8, targets: [{ expr: `sum by (cause) (${s('ds_gpu_remapped_rows')})`, legend: '{{cause}}' }] }))
    .withPanel(timeSeries({ title: 'Retired pages by cause', description: 'Memory pages retired over the GPUs\' life across the fleet, by cause (GPUs with row remapping report none).', unit: 'short', w: 8, targets: [{ expr: `sum by (cause) (${s('ds_gpu_retired_pages')})`, legend: '{{cause}}' }] }))
    .withPanel(timeSeries({ title: 'Pending remaps and retirements', description: 'GPUs with a row remap pending (needs a GPU reset), a failed remap (RMA) or pages pending retirement (needs a reboot).', unit: 'short', w: 8, min: 0, targets: [
      { expr: `sum(${s('ds_gpu_row_remap_pending')})`, legend: 'row remap pending' },
      { expr: `sum(${s('ds_gpu_row_remap_failed')})`, legend: 'row remap failed' },
      { expr: `sum(${s('ds_gpu_retired_pages_pending')})`, legend: 'pages pending retirement' },
    ] }))
    .build();
}
