// Series of one host where two GPUs belong to one pod each (one busy, one idle), one GPU is
// shared by two pods (time-slicing) and one GPU is free: the input of the per-pod panel tests.

export const T = 'job="ds-exporter",instance="n1:9842"';
export const gpu = (i: number) => `gpu="${i}",uuid="GPU-${i}"`;
export const alloc = (i: number, ns: string, pod: string) => `ds_gpu_allocation_info{${T},${gpu(i)},namespace="${ns}",pod="${pod}",container="main"}`;
export const INPUT = [
  // GPU 0: pod train-0 alone, busy 50%, 30 GB used, two processes.
  { series: alloc(0, 'ml', 'train-0'), values: '1x20' },
  { series: `ds_gpu_busy_seconds_total{${T},${gpu(0)}}`, values: '0+30x20' },
  { series: `ds_gpu_memory_used_bytes{${T},${gpu(0)}}`, values: '30000000000x20' },
  { series: `ds_gpu_memory_fragmentation_ratio{${T},${gpu(0)},pid="100",exported_job="trainer"}`, values: '0.25x20' },
  { series: `ds_gpu_memory_fragmentation_ratio{${T},${gpu(0)},pid="101",exported_job="trainer"}`, values: '0.5x20' },
  // GPU 1: shared by nb-a and nb-b, busy 25%, 10 GB used, one process.
  { series: alloc(1, 'lab', 'nb-a'), values: '1x20' },
  { series: alloc(1, 'lab', 'nb-b'), values: '1x20' },
  { series: `ds_gpu_busy_seconds_total{${T},${gpu(1)}}`, values: '0+15x20' },
  { series: `ds_gpu_memory_used_bytes{${T},${gpu(1)}}`, values: '10000000000x20' },
  { series: `ds_gpu_memory_fragmentation_ratio{${T},${gpu(1)},pid="200",exported_job="notebook"}`, values: '0.75x20' },
  // GPU 2: free, busy 75%, 5 GB used, one process.
  { series: `ds_gpu_busy_seconds_total{${T},${gpu(2)}}`, values: '0+45x20' },
  { series: `ds_gpu_memory_used_bytes{${T},${gpu(2)}}`, values: '5000000000x20' },
  { series: `ds_gpu_memory_fragmentation_ratio{${T},${gpu(2)},pid="300",exported_job="other"}`, values: '0.1x20' },
  // GPU 3: pod idle-nb alone, idle, 1 GB used.
  { series: alloc(3, 'lab', 'idle-nb'), values: '1x20' },
  { series: `ds_gpu_busy_seconds_total{${T},${gpu(3)}}`, values: '0x20' },
  { series: `ds_gpu_memory_used_bytes{${T},${gpu(3)}}`, values: '1000000000x20' },
  ...[0, 1, 2, 3].map((i) => ({ series: `ds_gpu_utilization_method{${T},${gpu(i)},method="samples"}`, values: '1x20' })),
  // GPU processes with the pod their cgroup names (--kubelet.process-attribution): train-0's
  // two processes, one process of each pod sharing GPU 1, and an unattributed one on GPU 2.
  ...([[0, '100', 20e9, 'ml', 'train-0'], [0, '101', 8e9, 'ml', 'train-0'], [1, '200', 6e9, 'lab', 'nb-a'], [1, '201', 3e9, 'lab', 'nb-b'], [2, '300', 4e9, '', '']] as const).flatMap(([i, pid, bytes, ns, pod]) => [
    { series: `ds_gpu_process_memory_used_bytes{${T},${gpu(i)},pid="${pid}"}`, values: `${bytes}x20` },
    { series: `ds_gpu_process_info{${T},${gpu(i)},pid="${pid}",namespace="${ns}",pod="${pod}",container="main",pod_uid="${pod ? `uid-${pod}` : ''}",container_id=""}`, values: '1x20' },
  ]),
];

