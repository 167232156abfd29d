import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { dashboardShell, podFragmentationPanel, podMemoryPanel, podProcessMemoryPanel, queries, row, seriesHeatmap, tablePanel, timeSeries } from './common.js';

const PER_GPU = '{{instance}} GPU {{gpu}}';
const PER_PROC = '{{instance}} GPU {{gpu}} pid {{pid}} {{exported_job}}';
const FRAG =
  'Fragmentation = (reserved - allocated) / reserved of the PyTorch caching allocator (torch.cuda.memory_stats: reserved_bytes.all.current, allocated_bytes.all.current), pushed by the reporter inside the process. exported_job is the process\'s own job label, renamed by Prometheus beside the scrape job.';

/** Memory and fragmentation: device memory, allocator reserved vs allocated, fragmentation, retries, OOMs. */
export function memoryDashboard(): dashboard.Dashboard {
  const q = queries(['gpu', 'namespace', 'pod']);
  const s = q.s;
  return dashboardShell({
    uid: 'ds-exporter-memory',
    title: 'ds-exporter / Memory and fragmentation',
    description: 'GPU memory from the driver and from the framework allocator inside each process: what is used, what is cached but unusable, and whether allocations start failing.',
    tags: ['memory'],
    filters: ['gpu', 'namespace', 'pod'],
  })
    .withRow(row('Device memory'))
    .withPanel(timeSeries({ title: 'Used vs total', description: 'Device memory used per GPU, with the largest total as the ceiling (driver view: includes the allocator cache and the CUDA context).', unit: 'bytes', targets: [{ expr: s('ds_gpu_memory_used_bytes'), legend: PER_GPU }, { expr: `max(${s('ds_gpu_memory_total_bytes')})`, legend: 'total' }] }))
    .withPanel(seriesHeatmap({ title: 'Memory utilization heatmap', description: 'Device memory used / total, one row per GPU.', unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s('ds_gpu_memory_utilization_ratio'), legend: PER_GPU }] }))
    .withRow(row('Allocator'))
    .withPanel(timeSeries({ title: 'Reserved vs allocated', description: `Bytes the caching allocator holds from the driver (reserved) and bytes handed out to tensors (allocated), per process. ${FRAG}`, unit: 'bytes', targets: [{ expr: s('ds_allocator_reserved_bytes'), legend: `${PER_PROC} reserved` }, { expr: s('ds_allocator_allocated_bytes'), legend: `${PER_PROC} allocated` }] }))
    .withPanel(timeSeries({ title: 'Fragmentation per process', description: FRAG, unit: 'percentunit', min: 0, max: 1, targets: [{ expr: s('ds_gpu_memory_fragmentation_ratio'), legend: PER_PROC }] }))
    .withPanel(timeSeries({ title: 'Inactive split blocks', description: 'Bytes in inactive, non-releasable split blocks: memory held by fragmentation that empty_cache() cannot return.', unit: 'bytes', targets: [{ expr: s('ds_allocator_inactive_split_bytes'), legend: PER_PROC }] }))
    .withPanel(timeSeries({ title: 'Largest free block', description: 'Largest free block inside reserved memory (from the allocator snapshot); an allocation larger than this needs new memory from the driver.', unit: 'bytes', targets: [{ expr: s('ds_allocator_largest_free_block_bytes'), legend: PER_PROC }] }))
    .withPanel(tablePanel({ title: 'Most fragmented processes', description: `The ten processes with the highest fragmentation now. ${FRAG}`, unit: 'percentunit', columns: ['instance', 'gpu', 'pid', 'exported_job'], sortBy: 'Value', targets: [{ expr: `topk(10, ${s('ds_gpu_memory_fragmentation_ratio')})`, format: 'table', instant: true }] }))
    .withRow(row('Pods'))
    .withPanel(podMemoryPanel(q))
    .withPanel(podFragmentationPanel(q))
    .withPanel(podProcessMemoryPanel(q))
    .withRow(row('Failures'))
    .withPanel(timeSeries({ title: 'Allocation retries', description: 'Allocations that failed and were retried after the allocator freed its cache (num_alloc_retries), per interval; rising retries with high fragmentation precede OOMs.', unit: 'short', targets: [{ expr: `increase(${s('ds_allocator_alloc_retries_total')}[$__rate_interval])`, legend: PER_PROC }] }))
    .withPanel(timeSeries({ title: 'Out-of-memory errors', description: 'Out-of-memory errors raised by the allocator (num_ooms), per interval.', unit: 'short', targets: [{ expr: `increase(${s('ds_allocator_ooms_total')}[$__rate_interval])`, legend: PER_PROC }] }))
    .build();
}
