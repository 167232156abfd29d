import type { MetricDef } from './types.js';

/** 10 ms to 20 minutes, about 1.5x apart in round numbers: steps of tiny models to pipeline-parallel giants. */
export const STEP_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200];

/**
 * Training efficiency (pushed by the reporter) and the engine-to-GPU mapping that the
 * cost-per-token rules join on.
 */
export const efficiencyMetrics: readonly MetricDef[] = [
  { name: 'ds_training_step_seconds', type: 'histogram', unit: 'seconds', source: 'push', labels: ['job', 'rank'], buckets: STEP_BUCKETS, help: 'Duration of each training step of a rank, as the reporter measured it (wall time from one step to the next, or the time it was given).' },
  { name: 'ds_training_model_flops_total', type: 'counter', unit: '', source: 'push', labels: ['job', 'rank', 'dtype'], help: 'Model floating-point operations done by a rank: samples times the FLOPs per sample the reporter declared (6 x parameters x tokens per sample for a dense transformer), counted against the peak of dtype (bf16 or fp8).' },
  { name: 'ds_training_device_info', type: 'info', unit: '', source: 'push', labels: ['job', 'rank', 'gpu', 'uuid'], help: 'A GPU a training rank uses (the devices its reporter pushes with a UUID); model FLOPs utilization divides by the peak of these GPUs; always 1.' },
  { name: 'ds_engine_gpu_info', type: 'info', unit: '', source: 'engine', labels: ['target', 'engine', 'model', 'gpu', 'uuid', 'source'], help: 'A GPU an inference engine target runs on, and how that was learned (source: flag from --engine.target #gpus=, nvml_processes from the processes NVML lists, kubelet from the allocation of the pod named by #pod=); absent when it cannot be told; always 1.' },
];
