import type { MetricDef } from './types.js';

const G = ['gpu', 'uuid'] as const;
const M = ['gpu', 'uuid', 'gpu_instance'] as const;
const RATE = 'rate() gives the mean fraction over any window';

/**
 * Profiling-grade activity (NVML GPM on Hopper and newer; the simulator): lossless counters
 * integrated as ratio x interval between two driver samples, per GPU and per MIG GPU instance.
 */
export const profilingMetrics: readonly MetricDef[] = [
  { name: 'ds_gpu_profiling_info', type: 'info', unit: '', source: 'gpu', labels: ['gpu', 'uuid', 'status'], help: 'Whether the GPU\'s profiling (GPM) counters can be read: status="available", or why not: "unsupported" (GPU or driver without GPM), "no_permission" (the driver restricts profiling to administrators: NVreg_RestrictProfilingToAdminUsers), "in_use" (another profiler holds the counters), "error"; always 1. Only the NVML source and the simulator report it.' },
  { name: 'ds_gpu_graphics_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: `Seconds the graphics/compute engine was active (GPM GRAPHICS_UTIL, the profiling twin of busy seconds); ${RATE}.` },
  { name: 'ds_gpu_sm_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: 'Seconds of SM activity averaged over the GPU\'s SMs: the fraction of SMs busy, integrated over time (GPM SM_UTIL); rate() gives the mean fraction of SMs active over any window, which can be far below the busy ratio.' },
  { name: 'ds_gpu_sm_occupancy_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: `Resident warps as a fraction of the theoretical maximum, integrated over time (GPM SM_OCCUPANCY); ${RATE}.` },
  { name: 'ds_gpu_tensor_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: ['gpu', 'uuid', 'pipe'], help: `Seconds the SMs were issuing tensor-core instructions, pipe="any" or by kind (hmma: FP16/BF16/TF32/FP8, imma: integer, dfma and dmma: FP64) (GPM *_TENSOR_UTIL); ${RATE}.` },
  { name: 'ds_gpu_pipe_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: ['gpu', 'uuid', 'pipe'], help: `Seconds the SMs were doing non-tensor math on a pipe (fp16, fp32, fp64, integer) (GPM *_UTIL); ${RATE}.` },
  { name: 'ds_gpu_dram_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: G, help: `Device memory bandwidth used as a fraction of the theoretical maximum, integrated over time (GPM DRAM_BW_UTIL); ${RATE}.` },
  { name: 'ds_gpu_pcie_bytes_total', type: 'counter', unit: 'bytes', source: 'gpu', labels: ['gpu', 'uuid', 'direction'], help: 'Bytes moved over PCIe, direction="tx" from the GPU, "rx" to it (GPM PCIE_*_PER_SEC integrated over each interval).' },
  { name: 'ds_gpu_media_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: ['gpu', 'uuid', 'media_engine'], help: `Seconds the media engines of one kind were busy, as the mean over the engines of that kind the GPU has (media_engine="nvdec", "nvjpg", "nvofa"; an H100 has 7, 7 and 1) (GPM); ${RATE}.` },
  { name: 'ds_gpu_mig_graphics_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: M, help: `ds_gpu_graphics_active_seconds_total of one MIG GPU instance; ${RATE}.` },
  { name: 'ds_gpu_mig_sm_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: M, help: `ds_gpu_sm_active_seconds_total of one MIG GPU instance (its own SMs); ${RATE}.` },
  { name: 'ds_gpu_mig_sm_occupancy_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: M, help: `ds_gpu_sm_occupancy_seconds_total of one MIG GPU instance; ${RATE}.` },
  { name: 'ds_gpu_mig_tensor_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: [...M, 'pipe'], help: `ds_gpu_tensor_active_seconds_total of one MIG GPU instance; ${RATE}.` },
  { name: 'ds_gpu_mig_pipe_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: [...M, 'pipe'], help: `ds_gpu_pipe_active_seconds_total of one MIG GPU instance; ${RATE}.` },
  { name: 'ds_gpu_mig_dram_active_seconds_total', type: 'counter', unit: 'seconds', source: 'gpu', labels: M, help: `ds_gpu_dram_active_seconds_total of one MIG GPU instance; ${RATE}.` },
];
