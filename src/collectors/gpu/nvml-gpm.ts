/**
 * NVML GPM (GPU Performance Monitoring, Hopper and newer): SM, tensor and pipe activity, DRAM
 * bandwidth, PCIe/NVLink traffic and media engines, per GPU and per MIG GPU instance, read in
 * process with no extra daemon or privilege. Each device keeps two sample buffers; every tick
 * takes a new sample and asks the driver for the metrics between it and the previous one.
 */
import type { Logger } from '../../core/logger.js';
import { abiFacts, struct, type AbiFacts } from './nvml-abi.js';
import { isLost, NVML } from './nvml-helpers.js';
import type { ProfilingDelta, ProfilingReading, ProfilingStatus } from './profiling.js';

type Fn = (...args: unknown[]) => number;

/** Prototypes of the GPM functions (bound next to the others by loadNvml). */
export const GPM_PROTOS: Record<string, string[]> = {
  gpmQuerySupport: ['int nvmlGpmQueryDeviceSupport(void *device, void *support)'],
  gpmSampleAlloc: ['int nvmlGpmSampleAlloc(void *sample)'],
  gpmSampleFree: ['int nvmlGpmSampleFree(void *sample)'],
  gpmSampleGet: ['int nvmlGpmSampleGet(void *device, void *sample)'],
  gpmMigSampleGet: ['int nvmlGpmMigSampleGet(void *device, uint32_t gpuInstanceId, void *sample)'],
  gpmMetricsGet: ['int nvmlGpmMetricsGet(void *metricsGet)'],
};

/** GPM structs as this module lays them out (checked against nvml.h by the ABI test). */
export const GPM_STRUCTS = {
  sample: struct('nvmlGpmSample_t', 8, {}),
  support: struct('nvmlGpmSupport_t', 8, { version: 0, isSupportedDevice: 4 }),
  metric: struct('nvmlGpmMetric_t', 40, { metricId: 0, nvmlReturn: 4, value: 8, metricInfo: 16, 'metricInfo.shortName': 16, 'metricInfo.longName': 24, 'metricInfo.unit': 32 }),
  metricsGet: struct('nvmlGpmMetricsGet_t', 13_344, { version: 0, numMetrics: 4, sample1: 8, sample2: 16, metrics: 24 }),
} as const;

/** How a GPM metric becomes a profiling value. */
interface GpmMetricDef {
  readonly cname: string;
  readonly id: number;
  /** `percent`: 0–100 of the interval; `mib_per_s`: MiB per second over the interval. */
  readonly unit: 'percent' | 'mib_per_s';
  readonly key: string;
}

const pct = (cname: string, id: number, key: string): GpmMetricDef => ({ cname, id, unit: 'percent', key });
const mib = (cname: string, id: number, key: string): GpmMetricDef => ({ cname, id, unit: 'mib_per_s', key });

/** The GPM metrics read, by their nvmlGpmMetricId_t names. */
export const GPM_METRICS: readonly GpmMetricDef[] = [
  pct('NVML_GPM_METRIC_GRAPHICS_UTIL', 1, 'graphics'),
  pct('NVML_GPM_METRIC_SM_UTIL', 2, 'sm'),
  pct('NVML_GPM_METRIC_SM_OCCUPANCY', 3, 'sm_occupancy'),
  pct('NVML_GPM_METRIC_INTEGER_UTIL', 4, 'pipe_integer'),
  pct('NVML_GPM_METRIC_ANY_TENSOR_UTIL', 5, 'tensor_any'),
  pct('NVML_GPM_METRIC_DFMA_TENSOR_UTIL', 6, 'tensor_dfma'),
  pct('NVML_GPM_METRIC_HMMA_TENSOR_UTIL', 7, 'tensor_hmma'),
  pct('NVML_GPM_METRIC_DMMA_TENSOR_UTIL', 8, 'tensor_dmma'),
  pct('NVML_GPM_METRIC_IMMA_TENSOR_UTIL', 9, 'tensor_imma'),
  pct('NVML_GPM_METRIC_DRAM_BW_UTIL', 10, 'dram'),
  pct('NVML_GPM_METRIC_FP64_UTIL', 11, 'pipe_fp64'),
  pct('NVML_GPM_METRIC_FP32_UTIL', 12, 'pipe_fp32'),
  pct('NVML_GPM_METRIC_FP16_UTIL', 13, 'pipe_fp16'),
  mib('NVML_GPM_METRIC_PCIE_TX_PER_SEC', 20, 'pcie_tx'),
  mib('NVML_GPM_METRIC_PCIE_RX_PER_SEC', 21, 'pcie_rx'),
  // Media engines: one value per kind, the mean over the engines of that kind the GPU answers for.
  ...Array.from({ length: 8 }, (_, i) => pct(`NVML_GPM_METRIC_NVDEC_${i}_UTIL`, 30 + i, 'nvdec')),
  ...Array.from({ length: 8 }, (_, i) => pct(`NVML_GPM_METRIC_NVJPG_${i}_UTIL`, 40 + i, 'nvjpg')),
  ...Array.from({ length: 2 }, (_, i) => pct(`NVML_GPM_METRIC_NVOFA_${i}_UTIL`, 50 + i, 'nvofa')),
  mib('NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC', 60, 'nvlink_rx'),
  mib('NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC', 61, 'nvlink_tx'),
];

/** GPM constants, keyed by their C names. */
export const GPM_CONSTS = {
  NVML_GPM_METRICS_GET_VERSION: 1,
  NVML_GPM_SUPPORT_VERSION: 1,
  NVML_GPM_METRIC_MAX: 333,
  ...Object.fromEntries(GPM_METRICS.map((m) => [m.cname, m.id])),
} as const;

export const gpmAbiFacts: AbiFacts = abiFacts(GPM_STRUCTS, GPM_CONSTS);

const S = GPM_STRUCTS;
/** Metrics asked for in one nvmlGpmMetricsGet call (the struct has room for NVML_GPM_METRIC_MAX). */
const MAX_ASKED = Math.min(GPM_METRICS.length, GPM_CONSTS.NVML_GPM_METRIC_MAX);
/** The driver refreshes its counters every 100 ms: samples closer than that are not taken. */
const MIN_INTERVAL_MS = 100;
/** Highest plausible traffic (10 TB/s, above any link of today); more is a garbled value. */
const MAX_MIB_PER_S = 1e7;
const BIB = 1024 * 1024;

/** The keys the metrics feed, in GPM_METRICS order of first use; several metrics feed one key (media engines of one kind). */
const KEYS: readonly string[] = [...new Set(GPM_METRICS.map((m) => m.key))];
/** Per GPM_METRICS position: the index of its key in KEYS. */
const KEY_OF = Int32Array.from(GPM_METRICS, (m) => KEYS.indexOf(m.key));
const NOTHING_REFUSED: readonly string[] = Object.freeze([]);

/**
 * Converts the driver's metrics over `dtS` seconds into profiling values: percent → seconds
 * active, MiB/s → bytes. NaN, infinite, negative and absurd values are refused (left out, and
 * named in `refused`); percentages a rounding step above 100 count as 100. Several engines of one
 * kind (NVDEC 0–7) give their mean. Pure: a metric id not in GPM_METRICS is ignored.
 */
export function gpmDelta(values: ReadonlyMap<number, number>, dtS: number): { delta: Record<string, number>; refused: readonly string[] } {
  const answered = new Uint8Array(GPM_METRICS.length);
  const byPosition = new Float64Array(GPM_METRICS.length);
  GPM_METRICS.forEach((m, i) => {
    const v = values.get(m.id);
    if (v === undefined) return;
    answered[i] = 1;
    byPosition[i] = v;
  });
  return convert(byPosition, answered, dtS, new Float64Array(KEYS.length), new Uint8Array(KEYS.length));
}

/**
 * gpmDelta on the driver's answers by GPM_METRICS position (`answered[i]` 0: left out), with
 * scratch arrays of KEYS' length, so that a sample allocates only what it returns.
 */
function convert(values: Float64Array, answered: Uint8Array, dtS: number, sums: Float64Array, counts: Uint8Array): { delta: Record<string, number>; refused: readonly string[] } {
  const delta: Record<string, number> = {};
  if (!(dtS > 0) || !Number.isFinite(dtS)) return { delta, refused: NOTHING_REFUSED };
  let refused: string[] | undefined;
  sums.fill(0);
  counts.fill(0);
  for (let i = 0; i < GPM_METRICS.length; i++) {
    if (answered[i] === 0) continue;
    const m = GPM_METRICS[i];
    const v = values[i];
    if (!Number.isFinite(v) || v < 0 || v > (m.unit === 'percent' ? 100.5 : MAX_MIB_PER_S)) {
      (refused ??= []).push(`${m.cname}=${v}`);
      continue;
    }
    const k = KEY_OF[i];
    sums[k] += m.unit === 'percent' ? (Math.min(v, 100) / 100) * dtS : v * BIB * dtS;
    counts[k]++;
  }
  for (let k = 0; k < KEYS.length; k++) if (counts[k] > 0) delta[KEYS[k]] = sums[k] / counts[k];
  return { delta, refused: refused ?? NOTHING_REFUSED };
}

/** The backoff after `in_use`, `no_permission` or an error: from 10 s, doubling, up to 5 minutes. */
export function nextProfilingBackoffMs(previousMs: number | undefined): number {
  return previousMs === undefined ? 10_000 : Math.min(300_000, previousMs * 2);
}

/** What a status code of a GPM call means for the device. */
export function statusOf(rc: number): ProfilingStatus {
  if (rc === NVML.SUCCESS) return 'available';
  if (rc === NVML.ERROR_NOT_SUPPORTED || rc === NVML.ERROR_FUNCTION_NOT_FOUND) return 'unsupported';
  if (rc === NVML.ERROR_NO_PERMISSION) return 'no_permission';
  if (rc === NVML.ERROR_IN_USE) return 'in_use';
  return 'error';
}

/** One sampled thing: a whole GPU or one MIG GPU instance. */
interface Slot {
  status: ProfilingStatus;
  samples?: [bigint, bigint];
  /** Which of the two samples holds the baseline, and when it was taken. */
  base?: { index: 0 | 1; atMs: number };
  retryAtMs: number;
  backoffMs?: number;
  /** The MIG device UUID of the instance, to notice a re-created instance with the same id. */
  migUuid?: string;
  seen: boolean;
}

export interface GpmOptions {
  readonly logger: Logger;
  readonly now: () => number;
  readonly errorString: (rc: number) => string;
}

/** GPM sampling for every GPU of one NVML source. */
export class GpmSampler {
  private readonly slots = new Map<string, Slot>();
  private readonly said = new Set<string>();
  /** The nvmlGpmMetricsGet_t, its version, count and metric ids written once; each call sets the samples. */
  private readonly metricsBuf = Buffer.alloc(S.metricsGet.size);
  /** The answers of one nvmlGpmMetricsGet by GPM_METRICS position, and conversion scratch: reused by every sample. */
  private readonly values = new Float64Array(GPM_METRICS.length);
  private readonly answered = new Uint8Array(GPM_METRICS.length);
  private readonly sums = new Float64Array(KEYS.length);
  private readonly counts = new Uint8Array(KEYS.length);
  private readonly ok: boolean;

  constructor(private readonly f: Partial<Record<string, Fn>>, private readonly opts: GpmOptions) {
    this.ok = ['gpmQuerySupport', 'gpmSampleAlloc', 'gpmSampleFree', 'gpmSampleGet', 'gpmMetricsGet'].every((k) => f[k] !== undefined);
    const m = this.metricsBuf;
    m.writeUInt32LE(GPM_CONSTS.NVML_GPM_METRICS_GET_VERSION, S.metricsGet.off.version);
    m.writeUInt32LE(MAX_ASKED, S.metricsGet.off.numMetrics);
    for (let i = 0; i < MAX_ASKED; i++) m.writeUInt32LE(GPM_METRICS[i].id, S.metricsGet.off.metrics + i * S.metric.size + S.metric.off.metricId);
  }

  /**
   * Samples a whole GPU (`migs` undefined) or, for a GPU in MIG mode, each of its GPU instances.
   * Returns the GPU's profiling reading and the per-instance deltas (by GPU instance id).
   */
  read(key: string, handle: bigint, migs?: ReadonlyArray<{ gpuInstance: number; uuid: string }>): { gpu: ProfilingReading; mig?: Map<number, ProfilingDelta | undefined> } {
    if (!this.ok) return { gpu: { status: 'unsupported' } };
    const dev = this.slot(key);
    // Support is a property of the GPU: asked once. A device that refused (in use, no permission,
    // an error) is left alone until its backoff has passed, then asked again.
    if (dev.seen && dev.status === 'unsupported') return { gpu: { status: 'unsupported' } };
    if (dev.seen && dev.status !== 'available' && this.opts.now() < dev.retryAtMs) return { gpu: { status: dev.status } };
    if ((!dev.seen || dev.status !== 'available') && !this.querySupport(key, dev, handle)) return { gpu: { status: dev.status } };
    if (!migs) {
      const delta = this.sample(key, dev, (s) => this.f.gpmSampleGet!(handle, s));
      return { gpu: { status: dev.status, delta } };
    }
    if (!this.f.gpmMigSampleGet) return { gpu: { status: 'unsupported' } };
    // MIG mode: one slot per GPU instance; instances that disappeared free their samples.
    const out = new Map<number, ProfilingDelta | undefined>();
    const live = new Set<string>();
    let best: ProfilingStatus | undefined;
    for (const m of migs) {
      const mk = `${key}\u0000gi${m.gpuInstance}`;
      live.add(mk);
      const s = this.slot(mk);
      if (s.migUuid !== undefined && s.migUuid !== m.uuid) this.drop(s); // a new instance behind the same id: no delta across them
      s.migUuid = m.uuid;
      if (s.status !== 'available' && s.seen && this.opts.now() < s.retryAtMs) {
        best = better(best, s.status);
        continue;
      }
      s.seen = true;
      s.status = 'available';
      const delta = this.sample(mk, s, (buf) => this.f.gpmMigSampleGet!(handle, m.gpuInstance, buf));
      best = better(best, s.status);
      if (s.status === 'available') out.set(m.gpuInstance, delta);
    }
    for (const [k, s] of this.slots) {
      if (k.startsWith(`${key}\u0000gi`) && !live.has(k)) {
        this.free(s);
        this.slots.delete(k);
      }
    }
    dev.status = best ?? 'available';
    return { gpu: { status: dev.status }, mig: out };
  }

  /** Forgets the baselines of a GPU and its instances (it was lost: its counters may have restarted). */
  forget(key: string): void {
    for (const [k, s] of this.slots) if (k === key || k.startsWith(`${key}\u0000`)) this.drop(s);
  }

  /** Frees every sample buffer (before nvmlShutdown). */
  close(): void {
    for (const s of this.slots.values()) this.free(s);
    this.slots.clear();
  }

  private slot(key: string): Slot {
    let s = this.slots.get(key);
    if (!s) this.slots.set(key, (s = { status: 'available', retryAtMs: 0, seen: false }));
    return s;
  }

  private querySupport(key: string, dev: Slot, handle: bigint): boolean {
    dev.seen = true;
    const b = Buffer.alloc(S.support.size);
    b.writeUInt32LE(GPM_CONSTS.NVML_GPM_SUPPORT_VERSION, S.support.off.version);
    const rc = this.f.gpmQuerySupport!(handle, b);
    if (rc === NVML.SUCCESS && b.readUInt32LE(S.support.off.isSupportedDevice) === 0) {
      dev.status = 'unsupported';
      return false;
    }
    if (rc !== NVML.SUCCESS) {
      this.fail(key, dev, rc, 'nvmlGpmQueryDeviceSupport');
      return false;
    }
    dev.status = 'available';
    return true;
  }

  /** Takes a sample; returns the delta since the baseline, or undefined (first sample, or a failure). */
  private sample(key: string, s: Slot, get: (sample: bigint) => number): ProfilingDelta | undefined {
    const now = this.opts.now();
    if (s.base && now - s.base.atMs < MIN_INTERVAL_MS) return undefined;
    if (!s.samples && !this.alloc(key, s)) return undefined;
    const next: 0 | 1 = s.base?.index === 0 ? 1 : 0;
    const rc = get(s.samples![next]);
    if (rc !== NVML.SUCCESS) {
      this.fail(key, s, rc, 'nvmlGpmSampleGet');
      return undefined;
    }
    if (s.status !== 'available' || s.backoffMs !== undefined) this.opts.logger.info('GPU profiling counters are readable again', { device: printable(key) });
    s.status = 'available';
    s.backoffMs = undefined;
    const base = s.base;
    s.base = { index: next, atMs: now };
    if (!base) return undefined;
    return this.metrics(key, s.samples![base.index], s.samples![next], (now - base.atMs) / 1000);
  }

  private alloc(key: string, s: Slot): boolean {
    const a = Buffer.alloc(S.sample.size);
    const b = Buffer.alloc(S.sample.size);
    const ra = this.f.gpmSampleAlloc!(a);
    if (ra !== NVML.SUCCESS) {
      this.fail(key, s, ra, 'nvmlGpmSampleAlloc');
      return false;
    }
    const rb = this.f.gpmSampleAlloc!(b);
    if (rb !== NVML.SUCCESS) {
      this.f.gpmSampleFree!(a.readBigUInt64LE(0));
      this.fail(key, s, rb, 'nvmlGpmSampleAlloc');
      return false;
    }
    s.samples = [a.readBigUInt64LE(0), b.readBigUInt64LE(0)];
    return true;
  }

  private metrics(key: string, first: bigint, second: bigint, dtS: number): ProfilingDelta | undefined {
    const m = this.metricsBuf;
    m.writeBigUInt64LE(first, S.metricsGet.off.sample1);
    m.writeBigUInt64LE(second, S.metricsGet.off.sample2);
    // A metric the driver leaves unanswered must not keep the previous call's answer.
    for (let i = 0; i < MAX_ASKED; i++) m.writeInt32LE(-1, S.metricsGet.off.metrics + i * S.metric.size + S.metric.off.nvmlReturn);
    const rc = this.f.gpmMetricsGet!(m);
    if (rc !== NVML.SUCCESS) {
      // The interval is lost, the new sample stays the baseline; a version the driver refuses will not change.
      this.once(`metrics:${rc}`, 'nvmlGpmMetricsGet failed; that interval is not counted', { device: printable(key), err: this.opts.errorString(rc) });
      if (rc === NVML.ERROR_ARGUMENT_VERSION_MISMATCH) {
        const s = this.slots.get(key)!;
        s.status = 'error';
        s.backoffMs = nextProfilingBackoffMs(s.backoffMs);
        s.retryAtMs = this.opts.now() + s.backoffMs;
      }
      return undefined;
    }
    const { values, answered } = this;
    for (let i = 0; i < MAX_ASKED; i++) {
      const o = S.metricsGet.off.metrics + i * S.metric.size;
      // The driver answers each metric on its own: a metric this GPU lacks (or an id it does not know) is left out.
      answered[i] = m.readInt32LE(o + S.metric.off.nvmlReturn) === NVML.SUCCESS ? 1 : 0;
      // Read back by position: the id is the one asked for, whatever the driver left in the field.
      if (answered[i]) values[i] = m.readDoubleLE(o + S.metric.off.value);
    }
    const { delta, refused } = convert(values, answered, dtS, this.sums, this.counts);
    if (refused.length) this.once(`refused:${refused.map((r) => r.split('=')[0]).join(',')}`, 'GPM returned values outside their range; they are not counted', { device: printable(key), values: refused.join(' ') });
    return delta;
  }

  private fail(key: string, s: Slot, rc: number, call: string): void {
    const status = statusOf(rc);
    // A lost GPU is the device read's business; profiling just starts over when it is back.
    s.status = isLost(rc) ? 'error' : status;
    this.drop(s);
    if (status === 'unsupported') return;
    s.backoffMs = nextProfilingBackoffMs(s.backoffMs);
    s.retryAtMs = this.opts.now() + s.backoffMs;
    const what = status === 'no_permission'
      ? 'GPU profiling counters are restricted to administrators: load the nvidia driver with NVreg_RestrictProfilingToAdminUsers=0 (e.g. "options nvidia NVreg_RestrictProfilingToAdminUsers=0" in /etc/modprobe.d) to read them without privileges; retrying with backoff'
      : status === 'in_use'
        ? 'GPU profiling counters are held by another profiler (DCGM profiling, Nsight Compute or Systems); retrying with backoff'
        : 'GPU profiling failed; retrying with backoff';
    this.once(`${status}:${rc}:${call}`, what, { device: printable(key), call, err: this.opts.errorString(rc) });
  }

  /** Forgets the baseline: the next sample starts a new interval. */
  private drop(s: Slot): void {
    s.base = undefined;
  }

  private free(s: Slot): void {
    if (s.samples) for (const h of s.samples) this.f.gpmSampleFree?.(h);
    s.samples = undefined;
    s.base = undefined;
  }

  private once(key: string, msg: string, fields: Record<string, unknown>): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.opts.logger.warn(msg, fields);
  }
}

const RANK: Record<ProfilingStatus, number> = { available: 0, in_use: 1, no_permission: 2, error: 3, unsupported: 4 };
function better(a: ProfilingStatus | undefined, b: ProfilingStatus): ProfilingStatus {
  return a === undefined || RANK[b] < RANK[a] ? b : a;
}

function printable(key: string): string {
  return key.replace(/\u0000/g, ' ');
}
