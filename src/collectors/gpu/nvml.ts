import { SourceError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { NVML_CONSTS as K, NVML_STRUCTS as S } from './nvml-abi.js';
import { GPM_PROTOS, GpmSampler } from './nvml-gpm.js';
import { integrateSamples, isAbsent, isLost, NVML, nextBackoffMs, readNvmlValue, throttleReasonsFromMask, type UtilSample } from './nvml-helpers.js';
import { NVML_HEALTH_PROTOS, readNvmlHealth, type NvmlHealthPort } from './nvml-health.js';
import { type GpuDevice, type GpuReading, type GpuSource, type MigReading, xidCountsOf } from './source.js';

type Fn = ((...args: unknown[]) => number) & { async: (...args: unknown[]) => void };

/** Prototypes of the NVML functions used, newest version first; output pointers are Buffers. */
const PROTOS: Record<string, string[]> = {
  init: ['int nvmlInit_v2()', 'int nvmlInit()'],
  shutdown: ['int nvmlShutdown()'],
  errorString: ['const char *nvmlErrorString(int result)'],
  count: ['int nvmlDeviceGetCount_v2(void *count)', 'int nvmlDeviceGetCount(void *count)'],
  handle: ['int nvmlDeviceGetHandleByIndex_v2(uint32_t index, void *device)', 'int nvmlDeviceGetHandleByIndex(uint32_t index, void *device)'],
  driverVersion: ['int nvmlSystemGetDriverVersion(void *version, uint32_t length)'],
  uuid: ['int nvmlDeviceGetUUID(void *device, void *uuid, uint32_t length)'],
  name: ['int nvmlDeviceGetName(void *device, void *name, uint32_t length)'],
  pci: ['int nvmlDeviceGetPciInfo_v3(void *device, void *pci)', 'int nvmlDeviceGetPciInfo_v2(void *device, void *pci)'],
  migMode: ['int nvmlDeviceGetMigMode(void *device, void *current, void *pending)'],
  utilization: ['int nvmlDeviceGetUtilizationRates(void *device, void *utilization)'],
  memoryV2: ['int nvmlDeviceGetMemoryInfo_v2(void *device, void *memory)'],
  memoryV1: ['int nvmlDeviceGetMemoryInfo(void *device, void *memory)'],
  power: ['int nvmlDeviceGetPowerUsage(void *device, void *power)'],
  powerLimit: ['int nvmlDeviceGetEnforcedPowerLimit(void *device, void *limit)'],
  energy: ['int nvmlDeviceGetTotalEnergyConsumption(void *device, void *energy)'],
  temperature: ['int nvmlDeviceGetTemperature(void *device, int sensor, void *temp)'],
  clock: ['int nvmlDeviceGetClockInfo(void *device, int type, void *clock)'],
  reasons: ['int nvmlDeviceGetCurrentClocksEventReasons(void *device, void *reasons)', 'int nvmlDeviceGetCurrentClocksThrottleReasons(void *device, void *reasons)'],
  pcie: ['int nvmlDeviceGetPcieThroughput(void *device, int counter, void *value)'],
  ecc: ['int nvmlDeviceGetTotalEccErrors(void *device, int errorType, int counterType, void *count)'],
  violation: ['int nvmlDeviceGetViolationStatus(void *device, int policy, void *violTime)'],
  fields: ['int nvmlDeviceGetFieldValues(void *device, int count, void *values)'],
  samples: ['int nvmlDeviceGetSamples(void *device, int type, uint64_t lastSeen, void *valueType, void *count, void *samples)'],
  processesV3: ['int nvmlDeviceGetComputeRunningProcesses_v3(void *device, void *count, void *infos)', 'int nvmlDeviceGetComputeRunningProcesses_v2(void *device, void *count, void *infos)'],
  processesV1: ['int nvmlDeviceGetComputeRunningProcesses(void *device, void *count, void *infos)'],
  maxMig: ['int nvmlDeviceGetMaxMigDeviceCount(void *device, void *count)'],
  migHandle: ['int nvmlDeviceGetMigDeviceHandleByIndex(void *device, uint32_t index, void *migDevice)'],
  gpuInstanceId: ['int nvmlDeviceGetGpuInstanceId(void *device, void *id)'],
  computeInstanceId: ['int nvmlDeviceGetComputeInstanceId(void *device, void *id)'],
  eventSetCreate: ['int nvmlEventSetCreate(void *set)'],
  eventSetFree: ['int nvmlEventSetFree(void *set)'],
  registerEvents: ['int nvmlDeviceRegisterEvents(void *device, uint64_t types, void *set)'],
  eventWait: ['int nvmlEventSetWait_v2(void *set, void *data, uint32_t timeoutms)', 'int nvmlEventSetWait(void *set, void *data, uint32_t timeoutms)'],
  ...NVML_HEALTH_PROTOS,
  ...GPM_PROTOS,
};

// Every size, offset and constant below comes from the ABI table (nvml-abi.ts), which a test checks against nvml.h.
const GPU_UTILIZATION_SAMPLES = K.NVML_GPU_UTILIZATION_SAMPLES;
const MEMORY_UTILIZATION_SAMPLES = K.NVML_MEMORY_UTILIZATION_SAMPLES;
const XID_CRITICAL_ERROR = K.nvmlEventTypeXidCriticalError;
const FIELD = S.fieldValue;
const SAMPLE = S.sample;
const MEM1 = S.memory;
const MEM2 = S.memoryV2;
const PCI = S.pciInfo;
const EVENT = S.eventData;
const UUID_LEN = K.NVML_DEVICE_UUID_V2_BUFFER_SIZE;
const NAME_LEN = K.NVML_DEVICE_NAME_V2_BUFFER_SIZE;
/**
 * How long one wait for XID events lasts. An event ends the wait at once; each timeout wakes
 * the process (and a worker thread), and shutdown waits for the wait in progress to return.
 */
const EVENT_WAIT_MS = 1000;

/** Thrown inside a device read when NVML says the GPU is gone. */
class GpuLost extends Error {}

/** The bound library: each function present or undefined (symbol missing). */
export interface NvmlLib {
  readonly fns: Partial<Record<keyof typeof PROTOS, Fn>>;
  /** Which symbol each function was bound to (for logs and docs). */
  readonly bound: Record<string, string>;
  errorString(code: number): string;
}

/** Loads the library (and koffi) and binds every function it has, trying the newest versioned symbol first. */
export async function loadNvml(path: string): Promise<NvmlLib> {
  let lib: ReturnType<typeof import('koffi').load>;
  try {
    // Imported here, not at the top: a platform without koffi's native module still runs the exporter.
    const koffi = (await import('koffi')).default;
    lib = koffi.load(path);
  } catch (err) {
    throw new SourceError(`cannot load NVML library ${path}`, { cause: err });
  }
  const fns: Partial<Record<string, Fn>> = {};
  const bound: Record<string, string> = {};
  for (const [key, protos] of Object.entries(PROTOS)) {
    for (const proto of protos) {
      try {
        fns[key] = lib.func(proto) as unknown as Fn;
        bound[key] = /(\w+)\(/.exec(proto)![1];
        break;
      } catch {
        // Symbol missing in this driver: try the older one, else leave the field absent.
      }
    }
  }
  return {
    fns,
    bound,
    errorString: (code) => {
      try {
        return `${(fns.errorString as unknown as (c: number) => string)?.(code) ?? 'error'} (${code})`;
      } catch {
        return `NVML error ${code}`;
      }
    },
  };
}

interface SampleState {
  supported: boolean;
  lastSeenUs?: number;
  capacity?: number;
  buf?: Buffer;
}

interface DeviceSlot {
  readonly index: number;
  handle?: bigint;
  device?: GpuDevice;
  lost: boolean;
  backoffMs?: number;
  nextCheckMs: number;
  busy: SampleState;
  memBusy: SampleState;
  lostSeconds: number;
  xid?: Map<number, number>;
  /** The copy of `xid` last handed out in a reading: handed out again while the counts are the same. */
  xidOut?: ReadonlyMap<number, number>;
  /** What the health reads use of this source for this GPU, made once (it reads `handle` when called). */
  healthPort?: NvmlHealthPort;
}

export interface NvmlSourceOptions {
  readonly library: string;
  readonly logger: Logger;
  readonly now: () => number;
  readonly intervalMs: number;
  /** Read per-process GPU memory (one series per process: opt-in). */
  readonly processMemory?: boolean;
}

/** Opens NVML: loads the library, initializes it and requires at least one GPU. */
export async function openNvmlSource(opts: NvmlSourceOptions): Promise<GpuSource> {
  const nvml = await loadNvml(opts.library);
  const f = nvml.fns;
  if (!f.init) throw new SourceError(`${opts.library} has no nvmlInit`);
  const rc = f.init();
  if (rc !== NVML.SUCCESS) throw new SourceError(`nvmlInit failed: ${nvml.errorString(rc)}`);
  const countBuf = Buffer.alloc(4);
  const crc = f.count ? f.count(countBuf) : NVML.ERROR_FUNCTION_NOT_FOUND;
  const count = crc === NVML.SUCCESS ? countBuf.readUInt32LE(0) : 0;
  if (count === 0) {
    f.shutdown?.();
    throw new SourceError(crc === NVML.SUCCESS ? 'NVML sees no GPU' : `nvmlDeviceGetCount failed: ${nvml.errorString(crc)}`);
  }
  const source = new NvmlSource(nvml, count, opts);
  source.startEvents();
  return source;
}

/** GPUs read through NVML; a lost GPU reads `up: false` and is re-checked with backoff. */
class NvmlSource implements GpuSource {
  readonly kind = 'nvml' as const;
  private readonly slots: DeviceSlot[];
  private readonly f: NvmlLib['fns'];
  private driverVersion = 'N/A';
  private eventSet?: bigint;
  private eventsRunning?: Promise<void>;
  private closed = false;
  private readonly warned = new Set<string>();
  /** Output buffers of the per-device calls, reused by every read (see readDevice). */
  private readonly scratch = {
    u32: Buffer.alloc(4), u64: Buffer.alloc(8), util: Buffer.alloc(S.utilization.size), sampleType: Buffer.alloc(4), sampleCount: Buffer.alloc(4),
    mem1: Buffer.alloc(MEM1.size), mem2: Buffer.alloc(MEM2.size), viol: Buffer.alloc(S.violationTime.size),
  };
  /** The field-value array of nvmlDeviceGetFieldValues, grown to the largest request. */
  private fieldScratch = Buffer.alloc(0);
  private readonly gpm: GpmSampler;

  constructor(private readonly nvml: NvmlLib, count: number, private readonly opts: NvmlSourceOptions) {
    this.f = nvml.fns;
    this.gpm = new GpmSampler(this.f, { logger: opts.logger, now: opts.now, errorString: (rc) => nvml.errorString(rc) });
    const v = Buffer.alloc(K.NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE);
    if (this.f.driverVersion?.(v, v.length) === NVML.SUCCESS) this.driverVersion = cstr(v);
    this.slots = Array.from({ length: count }, (_, index) => ({
      index, lost: false, nextCheckMs: 0, lostSeconds: 0,
      busy: { supported: true }, memBusy: { supported: true },
    }));
    for (const s of this.slots) this.attach(s);
  }

  /** Gets the handle and identity of a GPU; false (and marked lost) when it does not answer. */
  private attach(s: DeviceSlot): boolean {
    try {
      const hb = Buffer.alloc(8);
      const rc = this.f.handle!(s.index, hb);
      // No handle (lost, no permission in this container, ...): the GPU is down until it answers.
      if (rc !== NVML.SUCCESS) throw new GpuLost(`nvmlDeviceGetHandleByIndex(${s.index}): ${this.nvml.errorString(rc)}`);
      s.handle = hb.readBigUInt64LE(0);
      const uuid = this.str('uuid', s.handle, UUID_LEN);
      if (s.device && uuid !== undefined && uuid !== s.device.uuid) this.opts.logger.warn('GPU at this index changed identity', { index: s.index, was: s.device.uuid, now: uuid });
      s.device = this.identity(s, uuid);
      if (s.xid === undefined && this.eventSet !== undefined) this.register(s);
      return true;
    } catch (err) {
      if (!(err instanceof GpuLost)) throw err;
      this.markLost(s, err.message);
      return false;
    }
  }

  private identity(s: DeviceSlot, uuid: string | undefined): GpuDevice {
    const h = s.handle!;
    let pciBusId = 'N/A';
    const pci = Buffer.alloc(PCI.size);
    if (this.f.pci && this.call(this.f.pci, h, pci) === NVML.SUCCESS) {
      pciBusId = cstr(pci.subarray(PCI.off.busId, PCI.off.busId + K.NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE))
        || cstr(pci.subarray(PCI.off.busIdLegacy, PCI.off.busIdLegacy + K.NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE));
    }
    let migMode = 'N/A';
    const cur = Buffer.alloc(4);
    if (this.f.migMode && this.call(this.f.migMode, h, cur, Buffer.alloc(4)) === NVML.SUCCESS) migMode = cur.readUInt32LE(0) === K.NVML_DEVICE_MIG_ENABLE ? 'Enabled' : 'Disabled';
    return {
      index: s.index,
      uuid: uuid ?? s.device?.uuid ?? `GPU-unknown-index-${s.index}`,
      name: this.str('name', h, NAME_LEN) ?? 'N/A',
      pciBusId,
      driverVersion: this.driverVersion,
      migMode,
    };
  }

  async read(): Promise<GpuReading[]> {
    const nowMs = this.opts.now();
    return this.slots.map((s) => {
      if (s.lost) {
        if (nowMs < s.nextCheckMs || !this.attach(s)) return this.down(s);
        this.opts.logger.info('GPU answers again', { gpu: s.index, uuid: s.device?.uuid });
        s.lost = false;
        s.backoffMs = undefined;
      }
      try {
        return this.readDevice(s);
      } catch (err) {
        if (!(err instanceof GpuLost)) throw err;
        this.markLost(s, err.message);
        return this.down(s);
      }
    });
  }

  private down(s: DeviceSlot): GpuReading {
    return { device: s.device ?? { index: s.index, uuid: `GPU-unknown-index-${s.index}`, name: 'N/A', pciBusId: 'N/A', driverVersion: this.driverVersion, migMode: 'N/A' }, up: false, xidCounts: s.xid ? new Map(s.xid) : undefined };
  }

  private markLost(s: DeviceSlot, why?: string): void {
    if (!s.lost) this.opts.logger.error('GPU does not answer; re-checking with backoff', { gpu: s.index, uuid: s.device?.uuid, err: why });
    if (s.device) this.gpm.forget(s.device.uuid);
    s.lost = true;
    s.backoffMs = nextBackoffMs(s.backoffMs, this.opts.intervalMs);
    s.nextCheckMs = this.opts.now() + s.backoffMs;
  }

  private readDevice(s: DeviceSlot): GpuReading {
    const h = s.handle!;
    const f = this.f;
    // Output buffers shared by every device: reads are synchronous, one device after another.
    const { u32, u64, util, mem1, viol } = this.scratch;
    // `ok(f.x?.(h, …), name)`: the call's code, undefined when the library lacks it (no array made per call).
    const ok = (rc: number | undefined, name: string): boolean => rc !== undefined && this.check(rc, name);
    const r: { -readonly [K in keyof GpuReading]: GpuReading[K] } = { device: s.device!, up: true };

    if (ok(f.utilization?.(h, util), 'nvmlDeviceGetUtilizationRates')) {
      r.utilization = util.readUInt32LE(S.utilization.off.gpu) / 100;
      r.memoryControllerUtilization = util.readUInt32LE(S.utilization.off.memory) / 100;
    }
    const busy = this.samples(s, s.busy, GPU_UTILIZATION_SAMPLES);
    if (busy !== undefined) {
      r.busySecondsDelta = busy;
      r.utilizationMethod = 'samples';
      r.utilizationSamplesLostSeconds = s.lostSeconds;
    } else if (r.utilization !== undefined) r.utilizationMethod = 'point';
    const memBusy = this.samples(s, s.memBusy, MEMORY_UTILIZATION_SAMPLES);
    if (memBusy !== undefined) r.memoryBusySecondsDelta = memBusy;

    const mem2 = memoryV2Buffer(this.scratch.mem2);
    if (ok(f.memoryV2?.(h, mem2), 'nvmlDeviceGetMemoryInfo_v2')) {
      r.memoryTotalBytes = Number(mem2.readBigUInt64LE(MEM2.off.total));
      r.memoryFreeBytes = Number(mem2.readBigUInt64LE(MEM2.off.free));
      r.memoryUsedBytes = Number(mem2.readBigUInt64LE(MEM2.off.used));
    } else if (ok(f.memoryV1?.(h, mem1), 'nvmlDeviceGetMemoryInfo')) {
      r.memoryTotalBytes = Number(mem1.readBigUInt64LE(MEM1.off.total));
      r.memoryFreeBytes = Number(mem1.readBigUInt64LE(MEM1.off.free));
      r.memoryUsedBytes = Number(mem1.readBigUInt64LE(MEM1.off.used));
    }
    if (ok(f.power?.(h, u32), 'nvmlDeviceGetPowerUsage')) r.powerWatts = u32.readUInt32LE(0) / 1000;
    if (ok(f.powerLimit?.(h, u32), 'nvmlDeviceGetEnforcedPowerLimit')) r.powerLimitWatts = u32.readUInt32LE(0) / 1000;
    if (ok(f.energy?.(h, u64), 'nvmlDeviceGetTotalEnergyConsumption')) r.energyJoules = Number(u64.readBigUInt64LE(0)) / 1000;
    if (ok(f.temperature?.(h, K.NVML_TEMPERATURE_GPU, u32), 'nvmlDeviceGetTemperature')) r.temperatureCelsius = u32.readUInt32LE(0);
    if (ok(f.clock?.(h, K.NVML_CLOCK_SM, u32), 'nvmlDeviceGetClockInfo')) r.smClockHz = u32.readUInt32LE(0) * 1e6;
    if (ok(f.clock?.(h, K.NVML_CLOCK_MEM, u32), 'nvmlDeviceGetClockInfo')) r.memoryClockHz = u32.readUInt32LE(0) * 1e6;
    if (ok(f.reasons?.(h, u64), 'nvmlDeviceGetCurrentClocksEventReasons')) r.throttleReasons = throttleReasonsFromMask(u64.readBigUInt64LE(0));
    const throttleSeconds: Record<string, number> = {};
    const violAt = S.violationTime.off.violationTime;
    // Nanoseconds the clocks were held down by the power and thermal policies, since driver load.
    if (ok(f.violation?.(h, K.NVML_PERF_POLICY_POWER, viol), 'nvmlDeviceGetViolationStatus')) throttleSeconds.sw_power_cap = Number(viol.readBigUInt64LE(violAt)) / 1e9;
    if (ok(f.violation?.(h, K.NVML_PERF_POLICY_THERMAL, viol), 'nvmlDeviceGetViolationStatus')) throttleSeconds.sw_thermal_slowdown = Number(viol.readBigUInt64LE(violAt)) / 1e9;
    if (Object.keys(throttleSeconds).length) r.throttleSeconds = throttleSeconds;
    if (ok(f.pcie?.(h, K.NVML_PCIE_UTIL_TX_BYTES, u32), 'nvmlDeviceGetPcieThroughput')) r.pcieTxBytesPerSecond = u32.readUInt32LE(0) * 1024;
    if (ok(f.pcie?.(h, K.NVML_PCIE_UTIL_RX_BYTES, u32), 'nvmlDeviceGetPcieThroughput')) r.pcieRxBytesPerSecond = u32.readUInt32LE(0) * 1024;
    if (ok(f.ecc?.(h, K.NVML_MEMORY_ERROR_TYPE_CORRECTED, K.NVML_VOLATILE_ECC, u64), 'nvmlDeviceGetTotalEccErrors')) r.eccCorrected = Number(u64.readBigUInt64LE(0));
    if (ok(f.ecc?.(h, K.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, K.NVML_VOLATILE_ECC, u64), 'nvmlDeviceGetTotalEccErrors')) r.eccUncorrected = Number(u64.readBigUInt64LE(0));

    const fields = this.fieldValues(h, [[K.NVML_FI_DEV_MEMORY_TEMP, 0], [K.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, K.UINT_MAX], [K.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, K.UINT_MAX]]);
    if (fields) {
      r.memoryTemperatureCelsius = fields[0];
      if (fields[1] !== undefined) r.nvlinkTxBytes = fields[1] * 1024; // KiB counters
      if (fields[2] !== undefined) r.nvlinkRxBytes = fields[2] * 1024;
    }
    r.health = readNvmlHealth((s.healthPort ??= this.healthPort(s)), s);
    // A copy: events keep counting into `s.xid`.
    if (s.xid) r.xidCounts = s.xidOut = xidCountsOf(s.xid, s.xidOut);
    if (this.opts.processMemory) r.processMemoryBytes = this.processes(h);
    if (s.device!.migMode === 'Enabled') r.migDevices = this.migDevices(h);
    this.profile(s, r);
    return r;
  }

  private healthPort(s: DeviceSlot): NvmlHealthPort {
    const f = this.f;
    return {
      fn: (k) => f[k],
      get handle() {
        return s.handle!;
      },
      check: (rc, what) => this.check(rc, what),
      fieldValues: (ids) => this.fieldValues(s.handle!, ids),
      warnOnce: (key, msg, fields) => {
        if (this.warned.has(`${key}:${s.index}`)) return;
        this.warned.add(`${key}:${s.index}`);
        this.opts.logger.warn(msg, { gpu: s.index, uuid: s.device?.uuid, ...fields });
      },
    };
  }

  /** GPM: per GPU, or per GPU instance in MIG mode (an empty MIG list samples nothing rather than the whole GPU). */
  private profile(s: DeviceSlot, r: { -readonly [K in keyof GpuReading]: GpuReading[K] }): void {
    const mig = s.device!.migMode === 'Enabled';
    const p = this.gpm.read(s.device!.uuid, s.handle!, mig ? (r.migDevices ?? []) : undefined);
    r.profiling = p.gpu;
    if (p.mig && r.migDevices) r.migDevices = r.migDevices.map((m) => (p.mig!.has(m.gpuInstance) ? { ...m, profiling: p.mig!.get(m.gpuInstance) ?? {} } : m));
  }

  /** Busy seconds from the driver's sample buffer since the last read, or undefined when unsupported. */
  private samples(s: DeviceSlot, st: SampleState, type: number): number | undefined {
    const fn = this.f.samples;
    if (!fn || !st.supported) return undefined;
    const h = s.handle!;
    const { sampleType: vt, sampleCount: cnt } = this.scratch;
    const last = st.lastSeenUs ?? 0;
    if (!st.buf) {
      const rc = this.call(fn, h, type, last, vt, cnt, null);
      if (rc === NVML.ERROR_NOT_FOUND) return 0;
      // The size query answers SUCCESS (or, on some drivers, INSUFFICIENT_SIZE) with the count set.
      if (!(rc === NVML.ERROR_INSUFFICIENT_SIZE && cnt.readUInt32LE(0) > 0) && !this.check(rc, 'nvmlDeviceGetSamples')) {
        st.supported = false;
        return undefined;
      }
      st.capacity = Math.max(1, cnt.readUInt32LE(0));
      st.buf = Buffer.alloc(st.capacity * SAMPLE.size);
    }
    cnt.writeUInt32LE(st.capacity!, 0);
    const rc = this.call(fn, h, type, last, vt, cnt, st.buf);
    if (rc === NVML.ERROR_INSUFFICIENT_SIZE) {
      st.buf = undefined; // the buffer grew: size it again next read
      return 0;
    }
    if (rc === NVML.ERROR_NOT_FOUND) return 0;
    if (!this.check(rc, 'nvmlDeviceGetSamples')) {
      st.supported = false;
      return undefined;
    }
    const n = cnt.readUInt32LE(0);
    const valueType = vt.readInt32LE(0);
    const samples: UtilSample[] = [];
    for (let i = 0; i < n; i++) {
      const v = readNvmlValue(st.buf, i * SAMPLE.size + SAMPLE.off.sampleValue, valueType);
      if (v !== undefined) samples.push({ ts: Number(st.buf.readBigUInt64LE(i * SAMPLE.size + SAMPLE.off.timeStamp)), value: v });
    }
    const res = integrateSamples(st.lastSeenUs, samples, st.capacity!);
    st.lastSeenUs = res.lastSeenUs;
    if (res.lostSeconds > 0 && type === GPU_UTILIZATION_SAMPLES) {
      s.lostSeconds += res.lostSeconds;
      this.opts.logger.warn('utilization samples were overwritten before they were read; that time is counted as lost', { gpu: s.index, lostSeconds: res.lostSeconds.toFixed(3) });
    }
    return res.busySeconds;
  }

  /** The MIG devices of a GPU in MIG mode: identity and memory, each field absent where NVML cannot say. */
  private migDevices(h: bigint): MigReading[] | undefined {
    const f = this.f;
    const u32 = Buffer.alloc(4);
    if (!f.maxMig || !f.migHandle || !this.check(this.call(f.maxMig, h, u32), 'nvmlDeviceGetMaxMigDeviceCount')) return undefined;
    const max = u32.readUInt32LE(0);
    const out: MigReading[] = [];
    const hb = Buffer.alloc(8);
    for (let i = 0; i < max; i++) {
      if (!this.check(this.call(f.migHandle, h, i, hb), 'nvmlDeviceGetMigDeviceHandleByIndex')) continue; // empty slot
      const m = hb.readBigUInt64LE(0);
      const uuid = this.str('uuid', m, UUID_LEN);
      if (!uuid || !f.gpuInstanceId || !this.check(this.call(f.gpuInstanceId, m, u32), 'nvmlDeviceGetGpuInstanceId')) continue;
      const mig: { -readonly [K in keyof MigReading]: MigReading[K] } = { gpuInstance: u32.readUInt32LE(0), uuid, name: this.str('name', m, NAME_LEN) ?? 'N/A' };
      if (f.computeInstanceId && this.check(this.call(f.computeInstanceId, m, u32), 'nvmlDeviceGetComputeInstanceId')) mig.computeInstance = u32.readUInt32LE(0);
      const mem2 = memoryV2Buffer();
      if (f.memoryV2 && this.check(this.call(f.memoryV2, m, mem2), 'nvmlDeviceGetMemoryInfo_v2')) {
        mig.memoryTotalBytes = Number(mem2.readBigUInt64LE(MEM2.off.total));
        mig.memoryUsedBytes = Number(mem2.readBigUInt64LE(MEM2.off.used));
      }
      out.push(mig);
    }
    return out;
  }

  /** GPU memory used by each compute process (pid -> bytes), or undefined when not available. */
  private processes(h: bigint): Map<number, number> | undefined {
    const P = this.f.processesV3 ? S.processInfo : S.processInfoV1;
    const fn = this.f.processesV3 ?? this.f.processesV1;
    const size = P.size;
    if (!fn) return undefined;
    const cnt = Buffer.alloc(4);
    let rc = this.call(fn, h, cnt, null);
    for (let attempt = 0; attempt < 3 && rc === NVML.ERROR_INSUFFICIENT_SIZE; attempt++) {
      const n = cnt.readUInt32LE(0) + 8; // processes may start between the two calls
      cnt.writeUInt32LE(n, 0);
      const buf = Buffer.alloc(n * size);
      rc = this.call(fn, h, cnt, buf);
      if (rc === NVML.SUCCESS) {
        const out = new Map<number, number>();
        for (let i = 0; i < cnt.readUInt32LE(0); i++) {
          const used = buf.readBigUInt64LE(i * size + P.off.usedGpuMemory);
          const pid = buf.readUInt32LE(i * size + P.off.pid);
          if (used !== K['(unsigned long long)NVML_VALUE_NOT_AVAILABLE']) out.set(pid, (out.get(pid) ?? 0) + Number(used));
        }
        return out;
      }
    }
    if (rc === NVML.SUCCESS) return new Map(); // no process
    return this.check(rc, 'nvmlDeviceGetComputeRunningProcesses') ? new Map() : undefined;
  }

  /** Reads field values; each entry undefined where that field is not available. */
  private fieldValues(h: bigint, ids: ReadonlyArray<readonly [number, number]>): Array<number | undefined> | undefined {
    if (!this.f.fields) return undefined;
    const size = ids.length * FIELD.size;
    if (this.fieldScratch.length < size) this.fieldScratch = Buffer.alloc(size);
    const buf = this.fieldScratch.fill(0, 0, size);
    ids.forEach(([id, scope], i) => {
      buf.writeUInt32LE(id, i * FIELD.size + FIELD.off.fieldId);
      buf.writeUInt32LE(scope, i * FIELD.size + FIELD.off.scopeId);
    });
    if (!this.check(this.call(this.f.fields, h, ids.length, buf), 'nvmlDeviceGetFieldValues')) return undefined;
    return ids.map((_, i) => {
      const o = i * FIELD.size;
      const rc = buf.readInt32LE(o + FIELD.off.nvmlReturn);
      if (isLost(rc)) throw new GpuLost();
      return rc === NVML.SUCCESS ? readNvmlValue(buf, o + FIELD.off.value, buf.readInt32LE(o + FIELD.off.valueType)) : undefined;
    });
  }

  private str(key: 'uuid' | 'name', h: bigint, len: number): string | undefined {
    const fn = this.f[key];
    const b = Buffer.alloc(len);
    return fn && this.check(this.call(fn, h, b, len), key) ? cstr(b) : undefined;
  }

  private call(fn: Fn, ...args: unknown[]): number {
    return fn(...args);
  }

  /** True on success; false where the value is absent; throws GpuLost when the GPU is gone. */
  private check(rc: number, what: string): boolean {
    if (rc === NVML.SUCCESS) return true;
    if (isLost(rc)) throw new GpuLost(`${what}: ${this.nvml.errorString(rc)}`);
    if (!isAbsent(rc)) {
      const key = `${what}:${rc}`;
      if (!this.warned.has(key)) {
        this.warned.add(key);
        this.opts.logger.warn('NVML call failed; that value is left out', { call: what, err: this.nvml.errorString(rc) });
      }
    }
    return false;
  }

  // ---- XID events: one event set, waited on in a worker thread, never blocking the event loop ----

  startEvents(): void {
    const f = this.f;
    if (!f.eventSetCreate || !f.registerEvents || !f.eventWait) return;
    const sb = Buffer.alloc(8);
    const rc = f.eventSetCreate(sb);
    if (rc !== NVML.SUCCESS) {
      this.opts.logger.warn('no NVML event set: XID errors are not counted', { err: this.nvml.errorString(rc) });
      return;
    }
    this.eventSet = sb.readBigUInt64LE(0);
    for (const s of this.slots) if (!s.lost) this.register(s);
    this.eventsRunning = this.eventLoop();
  }

  private register(s: DeviceSlot): void {
    const rc = this.f.registerEvents!(s.handle, XID_CRITICAL_ERROR, this.eventSet);
    if (rc === NVML.SUCCESS) s.xid = new Map();
    else if (!isAbsent(rc)) this.opts.logger.warn('cannot register for XID events', { gpu: s.index, err: this.nvml.errorString(rc) });
  }

  private async eventLoop(): Promise<void> {
    const data = Buffer.alloc(EVENT.size);
    while (!this.closed) {
      const rc = await new Promise<number>((resolve) => {
        this.f.eventWait!.async(this.eventSet, data, EVENT_WAIT_MS, (err: unknown, res: number) => resolve(err ? -1 : res));
      });
      if (this.closed) break;
      if (rc === NVML.SUCCESS) {
        const handle = data.readBigUInt64LE(EVENT.off.device);
        const type = data.readBigUInt64LE(EVENT.off.eventType);
        const xid = Number(data.readBigUInt64LE(EVENT.off.eventData));
        const slot = this.slots.find((s) => s.handle === handle);
        if (slot?.xid && (type & XID_CRITICAL_ERROR) !== 0n) {
          slot.xid.set(xid, (slot.xid.get(xid) ?? 0) + 1);
          this.opts.logger.warn('XID error', { gpu: slot.index, uuid: slot.device?.uuid, xid });
        }
      } else if (rc !== NVML.ERROR_TIMEOUT) {
        // Not a timeout: do not spin; try again after a second.
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.eventsRunning; // ends within one wait timeout
    if (this.eventSet !== undefined) this.f.eventSetFree?.(this.eventSet);
    this.gpm.close();
    this.f.shutdown?.();
  }
}

/** An nvmlMemory_v2_t with its version set: `b` cleared for reuse, or a new one. */
function memoryV2Buffer(b = Buffer.alloc(MEM2.size)): Buffer {
  b.fill(0).writeUInt32LE(K.nvmlMemory_v2, MEM2.off.version);
  return b;
}

function cstr(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}
