import type * as table from '@grafana/grafana-foundation-sdk/table';
import type * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { ONE_PER_GPU, perPod, POD_NOTE, type Q, tablePanel, timeSeries, UTILIZATION_NOTE } from './common.js';

const PER_GPU = '{{instance}} GPU {{gpu}}';

/** What the profiling panels show and where it comes from. */
export const PROFILING_NOTE =
  'From the profiling counters (NVML GPM, Hopper and newer; ds_gpu_profiling_info says per GPU whether they can be read and why not), integrated by the exporter between driver samples, so rate() over any range is exact. Busy time (the driver\'s duty cycle) counts any running kernel; SM activity counts the share of SMs working and tensor activity the share of time tensor cores issue: a GPU "100 % busy" can have a few percent of either.';

/** Duty cycle, SM activity and tensor activity of each GPU side by side. */
export function activityPanel(q: Q): timeseries.PanelBuilder {
  const r = (metric: string, ...extra: string[]) => `rate(${q.s(metric, ...extra)}[$__rate_interval])`;
  return timeSeries({
    title: 'Busy vs SM and tensor activity',
    description: `Per GPU: busy fraction (duty cycle, rate(ds_gpu_busy_seconds_total)), fraction of SMs active (rate(ds_gpu_sm_active_seconds_total)) and fraction of time tensor cores were active (rate(ds_gpu_tensor_active_seconds_total{pipe="any"})). A wide gap between busy and SM activity is a stalled or host-bound job. ${PROFILING_NOTE} ${UTILIZATION_NOTE}`,
    unit: 'percentunit', min: 0, max: 1, w: 24, h: 9,
    targets: [
      { expr: r('ds_gpu_busy_seconds_total'), legend: `${PER_GPU} busy` },
      { expr: r('ds_gpu_sm_active_seconds_total'), legend: `${PER_GPU} SM active` },
      { expr: r('ds_gpu_tensor_active_seconds_total', 'pipe="any"'), legend: `${PER_GPU} tensor` },
    ],
  });
}

/** The same three per pod (summed over the pod's GPUs). */
export function podActivityPanel(q: Q, opts: { w?: number } = {}): timeseries.PanelBuilder {
  const r = (metric: string, ...extra: string[]) => `sum by (namespace, pod) (${perPod(q, `rate(${q.s(metric, ...extra)}[$__rate_interval])`)})`;
  return timeSeries({
    title: 'Busy vs SM and tensor activity by pod',
    description: `Busy fraction, SM activity and tensor activity of the GPUs of each pod, summed over its GPUs (1 = one GPU all the time). ${POD_NOTE} ${PROFILING_NOTE} ${UTILIZATION_NOTE}`,
    unit: 'percentunit', min: 0, w: opts.w,
    targets: [
      { expr: r('ds_gpu_busy_seconds_total'), legend: '{{namespace}}/{{pod}} busy' },
      { expr: r('ds_gpu_sm_active_seconds_total'), legend: '{{namespace}}/{{pod}} SM active' },
      { expr: r('ds_gpu_tensor_active_seconds_total', 'pipe="any"'), legend: '{{namespace}}/{{pod}} tensor' },
    ],
  });
}

export function dramPanel(q: Q): timeseries.PanelBuilder {
  return timeSeries({
    title: 'DRAM bandwidth utilization',
    description: `Device memory bandwidth used as a fraction of the theoretical peak, per GPU (rate(ds_gpu_dram_active_seconds_total)); LLM decode is usually bound here. ${PROFILING_NOTE}`,
    unit: 'percentunit', min: 0, max: 1,
    targets: [{ expr: `rate(${q.s('ds_gpu_dram_active_seconds_total')}[$__rate_interval])`, legend: PER_GPU }],
  });
}

export function pipesPanel(q: Q): timeseries.PanelBuilder {
  return timeSeries({
    title: 'Tensor and math pipes',
    description: `Fraction of time each tensor pipe (hmma: FP16/BF16/TF32/FP8, imma: integer, dfma/dmma: FP64) and each non-tensor pipe (fp16, fp32, fp64, integer) was active, per GPU. ${PROFILING_NOTE}`,
    unit: 'percentunit', min: 0, max: 1,
    targets: [
      { expr: `rate(${q.s('ds_gpu_tensor_active_seconds_total', 'pipe!="any"')}[$__rate_interval])`, legend: `${PER_GPU} tensor {{pipe}}` },
      { expr: `rate(${q.s('ds_gpu_pipe_active_seconds_total')}[$__rate_interval])`, legend: `${PER_GPU} {{pipe}}` },
    ],
  });
}

export function occupancyPanel(q: Q): timeseries.PanelBuilder {
  return timeSeries({
    title: 'SM occupancy',
    description: `Resident warps as a fraction of the maximum, per GPU (rate(ds_gpu_sm_occupancy_seconds_total)): low occupancy with high SM activity means small kernels or register pressure. ${PROFILING_NOTE}`,
    unit: 'percentunit', min: 0, max: 1,
    targets: [{ expr: `rate(${q.s('ds_gpu_sm_occupancy_seconds_total')}[$__rate_interval])`, legend: PER_GPU }],
  });
}

export function migActivityPanel(q: Q): timeseries.PanelBuilder {
  const r = (metric: string, ...extra: string[]) => `rate(${q.s(metric, ...extra)}[$__rate_interval])`;
  return timeSeries({
    title: 'MIG instances: SM and tensor activity',
    description: `Per MIG GPU instance of a GPU in MIG mode (where the GPU is profiled per instance only): fraction of the instance's SMs active and of time its tensor cores were active, and its DRAM bandwidth. ${PROFILING_NOTE}`,
    unit: 'percentunit', min: 0, max: 1,
    targets: [
      { expr: r('ds_gpu_mig_sm_active_seconds_total'), legend: `${PER_GPU} GI {{gpu_instance}} SM active` },
      { expr: r('ds_gpu_mig_tensor_active_seconds_total', 'pipe="any"'), legend: `${PER_GPU} GI {{gpu_instance}} tensor` },
      { expr: r('ds_gpu_mig_dram_active_seconds_total'), legend: `${PER_GPU} GI {{gpu_instance}} DRAM` },
    ],
  });
}

export function profilingStatusPanel(q: Q): table.PanelBuilder {
  return tablePanel({
    title: 'Profiling status',
    description: 'Whether each GPU\'s profiling counters can be read (ds_gpu_profiling_info): available, unsupported (no GPM: before Hopper, or an old driver), no_permission (the driver restricts profiling to administrators: NVreg_RestrictProfilingToAdminUsers=0 lifts it), in_use (another profiler such as DCGM holds the counters), error. The nvidia-smi source reports none.',
    unit: 'short', w: 12, columns: ['instance', 'gpu', 'uuid', 'status'],
    targets: [{ expr: `${ONE_PER_GPU}(${q.s('ds_gpu_profiling_info')})`, format: 'table', instant: true }],
  });
}
