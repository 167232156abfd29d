import type { AlertRule } from './alerts.js';

/**
 * Alerts on the GPU health verdict (docs/gpu-health.md): one per thing an on-call engineer
 * does about a GPU: reset it, reboot its node, send it back (RMA), look at its NVLink, or
 * treat it as gone. `m` is the selector helper, `w` the rate window, `gpuHeld` the GPU and
 * the pod holding it, as in every per-GPU description.
 */
export function healthAlerts(m: (metric: string, extra?: string[]) => string, w: string, gpuHeld: string): AlertRule[] {
  const by = 'job, instance, gpu, uuid';
  return [
    {
      alert: 'DsGpuNeedsReset', for: '1m', severity: 'critical',
      expr: `${m('ds_gpu_health', ['verdict="action_required"', 'action=~"reset_gpu|drain_and_reset"'])} == 1`,
      summary: 'A GPU must be reset before it can be trusted again.',
      description: gpuHeld + ' needs a GPU reset ({{ $labels.action }}; signal: {{ $labels.reason }}). Drain its workloads, then reset the GPU.',
    },
    {
      alert: 'DsGpuNodeNeedsReboot', for: '1m', severity: 'critical',
      expr: `${m('ds_gpu_health', ['verdict="action_required"', 'action="reboot_node"'])} == 1`,
      summary: 'A GPU needs its node rebooted.',
      description: gpuHeld + ' needs its node rebooted (signal: {{ $labels.reason }}). Cordon and drain the node, then reboot it.',
    },
    {
      alert: 'DsGpuRowRemapFailed', for: '1m', severity: 'critical',
      expr: `${m('ds_gpu_row_remap_failed')} == 1`,
      summary: 'A GPU failed to remap a memory row: replace it (RMA).',
      description: gpuHeld + ' reports a failed row remapping: its memory has run out of spare rows. Drain it and open an RMA with the vendor.',
    },
    {
      // Every other action_required verdict, so that no GPU needing action goes unpaged.
      alert: 'DsGpuNeedsAction', for: '1m', severity: 'critical',
      expr: `${m('ds_gpu_health', ['verdict="action_required"', 'action!~"reset_gpu|drain_and_reset|reboot_node"', 'reason!="row_remap_failed"'])} == 1`,
      summary: 'A GPU needs action before it can be trusted again.',
      description: gpuHeld + ' needs action {{ $labels.action }} (signal: {{ $labels.reason }}). See the runbook for what each action means.',
    },
    {
      alert: 'DsGpuNvlinkErrorsRising', for: '10m', severity: 'warning',
      expr: `sum by (${by}) (increase(${m('ds_gpu_nvlink_errors_total')}[${w}])) > 0`,
      summary: 'NVLink errors keep rising on a GPU.',
      description: gpuHeld + ' counted {{ $value | printf "%.0f" }} NVLink CRC/replay/recovery errors in ' + w + ', rising for 10 minutes; collectives through it slow down or fail.',
    },
    {
      alert: 'DsGpuFellOffTheBus', for: '1m', severity: 'critical',
      expr: `max by (${by}) (${m('ds_gpu_health', ['verdict="lost"'])}) == 1 or max by (${by}) (increase(${m('ds_gpu_xid_errors_total', ['xid="79"'])}[${w}])) > 0`,
      summary: 'A GPU fell off the bus.',
      description: gpuHeld + ' fell off the bus (no answer from the driver, or XID 79). Cordon and drain the node, then reboot it.',
    },
  ];
}
