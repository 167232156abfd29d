import type { MetricDef } from './types.js';

const G = ['gpu', 'uuid'] as const;

/** GPU device metrics: the same names from NVML, nvidia-smi and the simulator. */
export const gpuMetrics: readonly MetricDef[] = [
  { name: 'ds_gpu_info', type: 'info', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'name', 'pci_bus_id', 'driver_version', 'mig_mode'], help: 'Identity of a GPU; always 1.' },
  { name: 'ds_gpu_up', type: 'gauge', unit: '', source: 'gpu', labels: G, help: '1 when the GPU answered the last sample, 0 when it is lost or failing.' },
  { name: 'ds_gpu_utilization_ratio', type: 'gauge', unit: 'ratio', source: 'gpu', labels: G, help: 'Fraction of the last sample period during which a kernel ran (point reading).' },
  { name: 'ds_gpu_memory_controller_utilization_ratio', type: 'gauge', unit: 'ratio', source: 'gpu', labels: G, help: 'Fraction of the last sample period during which device memory was read or written.' },
  { name: 'ds_gpu_busy_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: 'Seconds the GPU spent running kernels; rate() gives the true average utilization over any window.' },
  { name: 'ds_gpu_memory_busy_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: 'Seconds device memory was being read or written; rate() gives the true average memory-controller utilization.' },
  { name: 'ds_gpu_utilization_method', type: 'gauge', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'method'], help: 'How busy time is measured: method="samples" integrates the driver sample buffer (lossless), method="point" integrates point readings at the sample interval; always 1.' },
  { name: 'ds_gpu_utilization_samples_lost_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: 'Seconds whose utilization samples were overwritten in the driver buffer before the exporter read them; busy time in those seconds is not counted.' },
  { name: 'ds_gpu_memory_used_bytes', type: 'gauge', unit: 'bytes', source: 'gpu', labels: G, help: 'Device memory in use.' },
  { name: 'ds_gpu_memory_free_bytes', type: 'gauge', unit: 'bytes', source: 'gpu', labels: G, help: 'Device memory free.' },
  { name: 'ds_gpu_memory_total_bytes', type: 'gauge', unit: 'bytes', source: 'gpu', labels: G, help: 'Total device memory.' },
  { name: 'ds_gpu_mig_info', type: 'info', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'gpu_instance', 'compute_instance', 'mig_uuid', 'name'], help: 'Identity of a MIG device (GPU instance) of a GPU in MIG mode; always 1.' },
  { name: 'ds_gpu_mig_memory_used_bytes', type: 'gauge', unit: 'bytes', source: 'gpu', labels: ['gpu', 'uuid', 'gpu_instance'], help: 'Device memory in use in one MIG device (GPU instance).' },
  { name: 'ds_gpu_mig_memory_total_bytes', type: 'gauge', unit: 'bytes', source: 'gpu', labels: ['gpu', 'uuid', 'gpu_instance'], help: 'Device memory of one MIG device (GPU instance).' },
  { name: 'ds_gpu_process_memory_used_bytes', type: 'gauge', unit: 'bytes', source: 'gpu', labels: ['gpu', 'uuid', 'pid'], help: 'Device memory used by one process (only with --nvml.process-memory).' },
  { name: 'ds_gpu_memory_utilization_ratio', type: 'gauge', unit: 'ratio', source: 'gpu', labels: G, help: 'Device memory used divided by total.' },
  { name: 'ds_gpu_power_watts', type: 'gauge', unit: 'watts', source: 'gpu', labels: G, help: 'Power draw.' },
  { name: 'ds_gpu_power_limit_watts', type: 'gauge', unit: 'watts', source: 'gpu', labels: G, help: 'Enforced power limit.' },
  { name: 'ds_gpu_energy_joules_total', type: 'counter', unit: 'joules', source: 'gpu', labels: G, help: 'Energy consumed since the exporter started sampling this GPU.' },
  { name: 'ds_gpu_temperature_celsius', type: 'gauge', unit: 'celsius', source: 'gpu', labels: G, help: 'GPU core temperature.' },
  { name: 'ds_gpu_memory_temperature_celsius', type: 'gauge', unit: 'celsius', source: 'gpu', labels: G, help: 'HBM temperature.' },
  { name: 'ds_gpu_sm_clock_hertz', type: 'gauge', unit: 'hertz', source: 'gpu', labels: G, help: 'Current SM clock.' },
  { name: 'ds_gpu_memory_clock_hertz', type: 'gauge', unit: 'hertz', source: 'gpu', labels: G, help: 'Current memory clock.' },
  { name: 'ds_gpu_clock_throttle_active', type: 'gauge', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'reason'], help: '1 while the clock-event (throttle) reason is active.' },
  { name: 'ds_gpu_throttle_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: ['gpu', 'uuid', 'reason'], help: 'Seconds the clock-event (throttle) reason was active.' },
  { name: 'ds_gpu_pcie_throughput_bytes_per_second', type: 'gauge', unit: 'bytes_per_second', source: 'gpu', labels: ['gpu', 'uuid', 'direction'], help: 'PCIe throughput over the last driver sample window.' },
  { name: 'ds_gpu_nvlink_bytes_total', type: 'counter', unit: 'bytes', source: 'gpu', labels: ['gpu', 'uuid', 'direction'], help: 'Bytes moved over all NVLink links of the GPU.' },
  { name: 'ds_gpu_ecc_errors_total', type: 'counter', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'type'], help: 'ECC errors since the driver loaded (volatile), by corrected/uncorrected.' },
  { name: 'ds_gpu_xid_errors_total', type: 'counter', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'xid', 'action'], help: 'XID errors reported by the driver while the exporter ran, by XID code, with the immediate action NVIDIA\'s XID catalog gives for it (unknown for an XID the catalog does not list).' },
  { name: 'ds_gpu_allocation_info', type: 'info', unit: '', source: 'kubelet', labels: ['gpu', 'uuid', 'namespace', 'pod', 'container'], help: 'The pod and container the kubelet assigned the GPU to; always 1.' },
  { name: 'ds_gpu_process_info', type: 'info', unit: '', source: 'kubelet', labels: ['gpu', 'uuid', 'pid', 'namespace', 'pod', 'container', 'pod_uid', 'container_id'], help: 'The pod and container of a process on the GPU, from its cgroup (only with --kubelet.process-attribution); namespace, pod and container are empty where they cannot be told, pod_uid and container_id where the cgroup names none; always 1.' },
];
