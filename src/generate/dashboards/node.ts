import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { catalog } from '../../catalog/index.js';
import { activityPanel, dramPanel, migActivityPanel, occupancyPanel, pipesPanel, podActivityPanel, profilingStatusPanel } from './profiling.js';
import { autoPanel, dashboardShell, ONE_PER_GPU, podBusyPanel, podMemoryPanel, podProcessMemoryPanel, usedByDashboards, queries, row, statPanel, tablePanel, timeSeries, UTILIZATION_NOTE } from './common.js';

const PER_GPU = '{{instance}} GPU {{gpu}}';

/**
 * Node / GPU detail: every GPU metric of the selected hosts, one series per GPU. Built
 * last (see buildDashboards) so it can also show catalog families no other dashboard names.
 */
export function nodeDashboard(): dashboard.Dashboard {
  const q = queries(['gpu', 'namespace', 'pod']);
  const s = q.s;
  const b = dashboardShell({
    uid: 'ds-exporter-node',
    title: 'ds-exporter / Node and GPU detail',
    description: 'Every GPU metric of the selected host(s), one series per GPU.',
    tags: ['gpu', 'node'],
    filters: ['gpu', 'namespace', 'pod'],
  })
    .withRow(row('Now'))
    .withPanel(statPanel({ title: 'GPUs up', description: 'GPUs of the selection answering the driver (ds_gpu_up).', unit: 'short', targets: [{ expr: `sum(${s('ds_gpu_up')})` }] }))
    .withPanel(statPanel({ title: 'Utilization now', description: `Mean of the driver's latest point reading (ds_gpu_utilization_ratio) across the selected GPUs. ${UTILIZATION_NOTE}`, unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `avg(${s('ds_gpu_utilization_ratio')})` }] }))
    .withPanel(statPanel({ title: 'Power now', description: 'Power draw of the selected GPUs (ds_gpu_power_watts).', unit: 'watt', targets: [{ expr: `sum(${s('ds_gpu_power_watts')})` }] }))
    .withPanel(statPanel({ title: 'Hottest GPU', description: 'Highest core temperature among the selected GPUs.', unit: 'celsius', thresholds: [[null, 'green'], [80, 'orange'], [87, 'red']], targets: [{ expr: `max(${s('ds_gpu_temperature_celsius')})` }] }))
    .withPanel(statPanel({ title: 'Memory in use', description: 'Device memory used across the selected GPUs, as a fraction of their total.', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `sum(${s('ds_gpu_memory_used_bytes')}) / sum(${s('ds_gpu_memory_total_bytes')})` }] }))
    .withPanel(statPanel({ title: 'Recent XID errors', description: 'XID errors reported by the driver over the last rate interval, all codes; the XID errors panel below has them by code.', unit: 'short', thresholds: [[null, 'green'], [1, 'red']], targets: [{ expr: `sum(increase(${s('ds_gpu_xid_errors_total')}[$__rate_interval])) or vector(0)` }] }))
    .withPanel(tablePanel({ title: 'GPUs', description: 'Identity of each GPU (ds_gpu_info): model, PCI bus id, driver, MIG mode.', unit: 'short', w: 16, columns: ['instance', 'gpu', 'name', 'uuid', 'pci_bus_id', 'driver_version', 'mig_mode'], targets: [{ expr: s('ds_gpu_info'), format: 'table', instant: true }] }))
    .withPanel(tablePanel({ title: 'Utilization method and pod', description: 'How busy time is measured on each GPU (ds_gpu_utilization_method: samples = lossless driver sample buffer, point = integrated point readings) and the pod the kubelet assigned it to (ds_gpu_allocation_info; one row per pod when pods share the GPU, none when no pod holds it).', unit: 'short', w: 8, columns: ['instance', 'gpu', 'method', 'namespace', 'pod', 'container'], targets: [{ expr: `${s('ds_gpu_allocation_info')} * on (job, instance, uuid) group_left (method) ${ONE_PER_GPU}(${s('ds_gpu_utilization_method')}) or on (job, instance, uuid) ${s('ds_gpu_utilization_method')}`, format: 'table', instant: true }] }))
    .withRow(row('Compute'))
    .withPanel(timeSeries({ title: 'GPU utilization', description: `Busy fraction per GPU. ${UTILIZATION_NOTE}`, unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `rate(${s('ds_gpu_busy_seconds_total')}[$__rate_interval])`, legend: PER_GPU }] }))
    .withPanel(timeSeries({ title: 'Memory controller utilization', description: 'Fraction of time device memory was read or written, from rate(ds_gpu_memory_busy_seconds_total) (exact over the window, like GPU utilization).', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `rate(${s('ds_gpu_memory_busy_seconds_total')}[$__rate_interval])`, legend: PER_GPU }] }))
    .withPanel(timeSeries({ title: 'SM clock', description: 'Current SM clock per GPU; drops under load mean throttling.', unit: 'hertz', targets: [{ expr: s('ds_gpu_sm_clock_hertz'), legend: PER_GPU }] }))
    .withPanel(timeSeries({ title: 'Memory clock', description: 'Current memory clock per GPU.', unit: 'hertz', targets: [{ expr: s('ds_gpu_memory_clock_hertz'), legend: PER_GPU }] }))
    .withRow(row('Profiling: SM, tensor and DRAM activity'))
    .withPanel(activityPanel(q))
    .withPanel(pipesPanel(q))
    .withPanel(dramPanel(q))
    .withPanel(occupancyPanel(q))
    .withPanel(migActivityPanel(q))
    .withPanel(profilingStatusPanel(q))
    .withRow(row('Memory'))
    .withPanel(timeSeries({ title: 'Memory used', description: 'Device memory in use per GPU (ds_gpu_memory_used_bytes); the total is the upper bound.', unit: 'bytes', targets: [{ expr: s('ds_gpu_memory_used_bytes'), legend: `${PER_GPU} used` }, { expr: `max(${s('ds_gpu_memory_total_bytes')})`, legend: 'total' }] }))
    .withPanel(timeSeries({ title: 'Memory free', description: 'Device memory free per GPU (ds_gpu_memory_free_bytes).', unit: 'bytes', targets: [{ expr: s('ds_gpu_memory_free_bytes'), legend: PER_GPU }] }))
    .withPanel(timeSeries({ title: 'Memory utilization', description: 'Device memory used divided by total, per GPU.', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s('ds_gpu_memory_utilization_ratio'), legend: PER_GPU }] }))
    .withRow(row('Pods'))
    .withPanel(podBusyPanel(q))
    .withPanel(podMemoryPanel(q))
    .withPanel(podProcessMemoryPanel(q))
    .withPanel(podActivityPanel(q))
    .withRow(row('Power and temperature'))
    .withPanel(timeSeries({ title: 'Power', description: 'Power draw per GPU with its enforced limit.', unit: 'watt', targets: [{ expr: s('ds_gpu_power_watts'), legend: PER_GPU }, { expr: `max(${s('ds_gpu_power_limit_watts')})`, legend: 'limit' }] }))
    .withPanel(timeSeries({ title: 'Energy rate', description: 'Average power over the rate interval from the energy counter (rate(ds_gpu_energy_joules_total)): exact, unlike point power readings.', unit: 'watt', targets: [{ expr: `rate(${s('ds_gpu_energy_joules_total')}[$__rate_interval])`, legend: PER_GPU }] }))
    .withPanel(timeSeries({ title: 'GPU temperature', description: 'Core temperature per GPU.', unit: 'celsius', targets: [{ expr: s('ds_gpu_temperature_celsius'), legend: PER_GPU }] }))
    .withPanel(timeSeries({ title: 'HBM temperature', description: 'Memory (HBM) temperature per GPU.', unit: 'celsius', targets: [{ expr: s('ds_gpu_memory_temperature_celsius'), legend: PER_GPU }] }))
    .withRow(row('Throttling'))
    .withPanel(timeSeries({ title: 'Throttled time by reason', description: 'Fraction of time each clock-event reason was active, from rate(ds_gpu_throttle_seconds_total): exact over the window.', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: `rate(${s('ds_gpu_throttle_seconds_total', 'reason!="gpu_idle"')}[$__rate_interval])`, legend: `${PER_GPU} {{reason}}` }, { expr: `sum(rate(${s('ds_gpu_throttle_seconds_total', 'reason!="gpu_idle"')}[$__rate_interval]))`, legend: 'all reasons, all GPUs' }] }))
    .withPanel(timeSeries({ title: 'Active throttle reasons now', description: 'Clock-event reasons active at the last sample (ds_gpu_clock_throttle_active), counted per GPU.', unit: 'short', min: 0, targets: [{ expr: `sum by (instance, gpu) (${s('ds_gpu_clock_throttle_active')})`, legend: PER_GPU }] }))
    .withRow(row('Interconnect'))
    .withPanel(timeSeries({ title: 'PCIe throughput', description: 'PCIe bytes per second per GPU and direction (driver sample window).', unit: 'Bps', targets: [{ expr: s('ds_gpu_pcie_throughput_bytes_per_second'), legend: `${PER_GPU} {{direction}}` }] }))
    .withPanel(timeSeries({ title: 'NVLink throughput', description: 'NVLink bytes per second over all links of each GPU, by direction, from rate(ds_gpu_nvlink_bytes_total).', unit: 'Bps', targets: [{ expr: `rate(${s('ds_gpu_nvlink_bytes_total')}[$__rate_interval])`, legend: `${PER_GPU} {{direction}}` }] }))
    .withRow(row('Errors'))
    .withPanel(timeSeries({ title: 'ECC errors', description: 'ECC errors per interval by corrected/uncorrected; any uncorrected error is an incident.', unit: 'short', targets: [{ expr: `increase(${s('ds_gpu_ecc_errors_total')}[$__rate_interval])`, legend: `${PER_GPU} {{type}}` }] }))
    .withPanel(timeSeries({ title: 'XID errors', description: 'XID errors per interval by code (see the runbook for which codes are critical).', unit: 'short', targets: [{ expr: `increase(${s('ds_gpu_xid_errors_total')}[$__rate_interval])`, legend: `${PER_GPU} XID {{xid}}` }] }))
    .withPanel(timeSeries({ title: 'GPU up', description: '1 while the GPU answers the driver, 0 when it is lost.', unit: 'short', min: 0, max: 1, targets: [{ expr: s('ds_gpu_up'), legend: PER_GPU }] }));
  // Catalog-driven: any per-GPU metric without a hand-written panel above still gets one.
  const rest = catalog.filter((m) => (m.source === 'gpu' || m.source === 'kubelet') && m.labels.includes('gpu') && !q.used.has(m.name));
  if (rest.length > 0) {
    b.withRow(row('Other GPU metrics'));
    for (const m of rest) b.withPanel(autoPanel(m, q));
  }
  // Families no dashboard shows (new catalog entries): shown here until they get a panel of their own.
  const unshown = catalog.filter((m) => !usedByDashboards.has(m.name));
  if (unshown.length > 0) {
    b.withRow(row('Other metrics of the host'));
    for (const m of unshown) b.withPanel(autoPanel(m, q));
  }
  return b.build();
}
