import type { MetricDef } from './types.js';

const P = ['gpu', 'uuid', 'pid', 'job'] as const;

/** Framework allocator metrics pushed by the reporter inside serving/training processes. */
export const memoryMetrics: readonly MetricDef[] = [
  { name: 'ds_gpu_memory_fragmentation_ratio', type: 'gauge', unit: 'ratio', source: 'push', labels: P, help: '(reserved - allocated) / reserved of the process allocator on this GPU.' },
  { name: 'ds_allocator_reserved_bytes', type: 'gauge', unit: 'bytes', source: 'push', labels: P, help: 'Bytes the caching allocator holds from the driver.' },
  { name: 'ds_allocator_allocated_bytes', type: 'gauge', unit: 'bytes', source: 'push', labels: P, help: 'Bytes handed out to tensors.' },
  { name: 'ds_allocator_inactive_split_bytes', type: 'gauge', unit: 'bytes', source: 'push', labels: P, help: 'Bytes in inactive, non-releasable split blocks.' },
  { name: 'ds_allocator_largest_free_block_bytes', type: 'gauge', unit: 'bytes', source: 'push', labels: P, help: 'Largest free block inside reserved memory (from the allocator snapshot).' },
  { name: 'ds_allocator_alloc_retries_total', type: 'counter', unit: '', source: 'push', labels: P, help: 'Allocations that failed and were retried after freeing cached blocks.' },
  { name: 'ds_allocator_ooms_total', type: 'counter', unit: '', source: 'push', labels: P, help: 'Out-of-memory errors raised by the allocator.' },
];
