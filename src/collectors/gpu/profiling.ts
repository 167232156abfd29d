/**
 * Profiling-grade GPU activity (NVML GPM, or the simulator): what each GPU and MIG GPU instance
 * did between two samples, written as lossless counters. Activities are integrated as
 * ratio × interval (seconds), traffic as bytes, so rate() over any window is the true mean.
 */
import type { Batch } from '../../core/store.js';

/** Whether a GPU's profiling counters can be read, and why not. */
export type ProfilingStatus = 'available' | 'unsupported' | 'no_permission' | 'in_use' | 'error';

/** One exported series of the profiling table. */
export interface ProfilingSeries {
  /** Key of the value in a reading. */
  readonly key: string;
  /** Family for a whole GPU; the MIG family is the same name with `ds_gpu_mig_`. */
  readonly family: string;
  /** The extra label that tells this series apart within its family. */
  readonly label?: readonly [name: string, value: string];
  /** Also exported per MIG GPU instance. */
  readonly mig: boolean;
}

/** A kind of media engine: the mean over the engines of that kind the GPU has (an H100: 7 NVDEC, 7 NVJPG, 1 NVOFA). */
const media = (kind: string): ProfilingSeries => ({ key: kind, family: 'ds_gpu_media_active_seconds_total', label: ['media_engine', kind], mig: false });

/** Every profiling series, in exposition order. */
export const PROFILING_SERIES: readonly ProfilingSeries[] = [
  { key: 'graphics', family: 'ds_gpu_graphics_active_seconds_total', mig: true },
  { key: 'sm', family: 'ds_gpu_sm_active_seconds_total', mig: true },
  { key: 'sm_occupancy', family: 'ds_gpu_sm_occupancy_seconds_total', mig: true },
  { key: 'tensor_any', family: 'ds_gpu_tensor_active_seconds_total', label: ['pipe', 'any'], mig: true },
  { key: 'tensor_hmma', family: 'ds_gpu_tensor_active_seconds_total', label: ['pipe', 'hmma'], mig: true },
  { key: 'tensor_imma', family: 'ds_gpu_tensor_active_seconds_total', label: ['pipe', 'imma'], mig: true },
  { key: 'tensor_dfma', family: 'ds_gpu_tensor_active_seconds_total', label: ['pipe', 'dfma'], mig: true },
  { key: 'tensor_dmma', family: 'ds_gpu_tensor_active_seconds_total', label: ['pipe', 'dmma'], mig: true },
  { key: 'pipe_fp16', family: 'ds_gpu_pipe_active_seconds_total', label: ['pipe', 'fp16'], mig: true },
  { key: 'pipe_fp32', family: 'ds_gpu_pipe_active_seconds_total', label: ['pipe', 'fp32'], mig: true },
  { key: 'pipe_fp64', family: 'ds_gpu_pipe_active_seconds_total', label: ['pipe', 'fp64'], mig: true },
  { key: 'pipe_integer', family: 'ds_gpu_pipe_active_seconds_total', label: ['pipe', 'integer'], mig: true },
  { key: 'dram', family: 'ds_gpu_dram_active_seconds_total', mig: true },
  { key: 'pcie_tx', family: 'ds_gpu_pcie_bytes_total', label: ['direction', 'tx'], mig: false },
  { key: 'pcie_rx', family: 'ds_gpu_pcie_bytes_total', label: ['direction', 'rx'], mig: false },
  // Written only where the driver's NVLink field counters are not available (they feed the same family).
  { key: 'nvlink_tx', family: 'ds_gpu_nvlink_bytes_total', label: ['direction', 'tx'], mig: false },
  { key: 'nvlink_rx', family: 'ds_gpu_nvlink_bytes_total', label: ['direction', 'rx'], mig: false },
  media('nvdec'),
  media('nvjpg'),
  media('nvofa'),
];

export type ProfilingKey = string;

/**
 * What happened between two samples: per key, seconds active (ratio × interval) or bytes.
 * A key is absent where the device does not measure it or the value was refused.
 */
export type ProfilingDelta = Readonly<Partial<Record<ProfilingKey, number>>>;

/** The profiling part of one GPU's reading. */
export interface ProfilingReading {
  readonly status: ProfilingStatus;
  /** Undefined on the first sample (a baseline) and while unavailable. */
  readonly delta?: ProfilingDelta;
}

export function migFamily(family: string): string {
  return family.replace(/^ds_gpu_/, 'ds_gpu_mig_');
}

interface Acc {
  /** Per PROFILING_SERIES index: the running total, NaN until first measured. */
  readonly totals: Float64Array;
}

/** The label objects of one device's series, by PROFILING_SERIES index (undefined: not made yet). */
type SeriesLabels = Array<Record<string, string> | undefined>;

/**
 * Integrates profiling deltas into counters, per GPU UUID and per MIG GPU instance, so a GPU that
 * goes away and comes back (or a MIG layout that changes) continues its counters. Label objects
 * are made once per series and reused, as the store recognises an unchanged series by them.
 */
export class ProfilingCounters {
  private readonly acc = new Map<string, Acc>();
  private readonly labels = new Map<string, SeriesLabels>();
  private readonly statusLabels = new Map<string, Record<string, string>>();

  /** `skipNvlink`: the driver's NVLink field counters already feed ds_gpu_nvlink_bytes_total for this GPU. */
  writeGpu(batch: Batch, gpu: string, uuid: string, p: ProfilingReading | undefined, skipNvlink: boolean): void {
    if (!p) return;
    const sk = `${gpu}\u0000${uuid}\u0000${p.status}`;
    let sl = this.statusLabels.get(sk);
    if (!sl) {
      if (this.statusLabels.size > 4096) this.statusLabels.clear();
      this.statusLabels.set(sk, (sl = { gpu, uuid, status: p.status }));
    }
    batch.info('ds_gpu_profiling_info', sl);
    // Counters are served once the GPU has been profiled at least once, and only while it can be.
    if (p.status !== 'available') return;
    const a = this.accumulate(uuid, p.delta);
    const labels = this.labelsOf(gpu, uuid, undefined);
    for (let i = 0; i < PROFILING_SERIES.length; i++) {
      const t = a.totals[i];
      if (Number.isNaN(t) || (skipNvlink && NVLINK[i])) continue;
      batch.counter(PROFILING_SERIES[i].family, labels[i] ?? (labels[i] = makeLabels(gpu, uuid, undefined, PROFILING_SERIES[i])), t);
    }
  }

  /** One MIG GPU instance's delta; `migUuid` tells a re-created instance from the old one (both continue the same counters by instance id). */
  writeMig(batch: Batch, gpu: string, uuid: string, gpuInstance: number, delta: ProfilingDelta | undefined): void {
    const gi = String(gpuInstance);
    const a = this.accumulate(`${uuid}\u0000${gi}`, delta);
    const labels = this.labelsOf(gpu, uuid, gi);
    for (let i = 0; i < PROFILING_SERIES.length; i++) {
      const t = a.totals[i];
      if (Number.isNaN(t) || !PROFILING_SERIES[i].mig) continue;
      batch.counter(MIG_FAMILY[i], labels[i] ?? (labels[i] = makeLabels(gpu, uuid, gi, PROFILING_SERIES[i])), t);
    }
  }

  private accumulate(key: string, delta: ProfilingDelta | undefined): Acc {
    let a = this.acc.get(key);
    if (!a) {
      if (this.acc.size > 4096) this.acc.clear();
      this.acc.set(key, (a = { totals: new Float64Array(PROFILING_SERIES.length).fill(Number.NaN) }));
    }
    if (!delta) return a;
    for (let i = 0; i < PROFILING_SERIES.length; i++) {
      const d = delta[PROFILING_SERIES[i].key];
      // A refused or missing value adds nothing; the series appears once it has been measured.
      if (d === undefined || !Number.isFinite(d) || d < 0) continue;
      const t = a.totals[i];
      a.totals[i] = Number.isNaN(t) ? d : t + d;
    }
    return a;
  }

  private labelsOf(gpu: string, uuid: string, gi: string | undefined): SeriesLabels {
    const k = `${gpu}\u0000${uuid}\u0000${gi ?? ''}`;
    let l = this.labels.get(k);
    if (!l) {
      if (this.labels.size > 4096) this.labels.clear();
      this.labels.set(k, (l = []));
    }
    return l;
  }
}

const NVLINK = PROFILING_SERIES.map((s) => s.key.startsWith('nvlink_'));
const MIG_FAMILY = PROFILING_SERIES.map((s) => migFamily(s.family));

function makeLabels(gpu: string, uuid: string, gi: string | undefined, s: ProfilingSeries): Record<string, string> {
  const l: Record<string, string> = { gpu, uuid };
  if (gi !== undefined) l.gpu_instance = gi;
  if (s.label) l[s.label[0]] = s.label[1];
  return l;
}
