import type { MetricDef } from './types.js';

const G = ['gpu', 'uuid'] as const;

/** GPU health: the verdict per GPU and the driver signals it is computed from (docs/gpu-health.md). */
export const healthMetrics: readonly MetricDef[] = [
  { name: 'ds_gpu_health', type: 'gauge', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'verdict', 'action', 'reason'], help: 'Health verdict of a GPU (verdict ok, degraded, action_required or lost), the action it calls for (none, investigate, reset_gpu, drain_p2p, drain_and_reset, reboot_node, recover_imex_domain, rma, unknown) and the signal that decided it; one series per GPU, always 1.' },
  { name: 'ds_gpu_recovery_action', type: 'gauge', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'action'], help: 'The recovery action the driver recommends (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: none, gpu_reset, node_reboot, drain_p2p, drain_and_reset, recover_imex_domain; unknown for a value this exporter does not know); one series per GPU, always 1.' },
  { name: 'ds_gpu_row_remap_pending', type: 'gauge', unit: '', source: 'gpu', labels: G, help: '1 when rows are pending remapping (applied at the next GPU reset), else 0.' },
  { name: 'ds_gpu_row_remap_failed', type: 'gauge', unit: '', source: 'gpu', labels: G, help: '1 when a row remapping ever failed on this GPU (RMA), else 0.' },
  { name: 'ds_gpu_remapped_rows', type: 'gauge', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'cause'], help: 'Memory rows remapped over the GPU\'s life, by cause (correctable, uncorrectable).' },
  { name: 'ds_gpu_retired_pages', type: 'gauge', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'cause'], help: 'Memory pages retired over the GPU\'s life, by cause (single_bit_ecc: multiple single-bit errors, double_bit_ecc); GPUs with row remapping report none.' },
  { name: 'ds_gpu_retired_pages_pending', type: 'gauge', unit: '', source: 'gpu', labels: G, help: '1 when pages are pending retirement (applied at the next reboot or driver reload), else 0.' },
  { name: 'ds_gpu_nvlink_errors_total', type: 'counter', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'link', 'type'], help: 'NVLink data-link errors per link, by type (crc, replay, recovery); follows the driver\'s counters across driver reloads.' },
  { name: 'ds_gpu_pcie_replays_total', type: 'counter', unit: '', source: 'gpu', labels: G, help: 'PCIe replays of the GPU\'s link; follows the driver\'s counter across driver reloads.' },
  { name: 'ds_gpu_thermal_margin_celsius', type: 'gauge', unit: 'celsius', source: 'gpu', labels: G, help: 'Distance of the GPU temperature to its nearest slowdown threshold; 0 or less means it is being slowed for heat.' },
];
