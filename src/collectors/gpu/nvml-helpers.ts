/** Pure pieces of the NVML source: return codes, bitmasks, value unions, sample integration. */
import { NVML_CONSTS as K, NVML_RETURN as R } from './nvml-abi.js';

/** nvmlReturn_t codes the source acts on (values from the ABI table, checked against nvml.h). */
export const NVML = {
  SUCCESS: R.NVML_SUCCESS,
  ERROR_UNINITIALIZED: R.NVML_ERROR_UNINITIALIZED,
  ERROR_INVALID_ARGUMENT: R.NVML_ERROR_INVALID_ARGUMENT,
  ERROR_NOT_SUPPORTED: R.NVML_ERROR_NOT_SUPPORTED,
  ERROR_NO_PERMISSION: R.NVML_ERROR_NO_PERMISSION,
  ERROR_NOT_FOUND: R.NVML_ERROR_NOT_FOUND,
  ERROR_INSUFFICIENT_SIZE: R.NVML_ERROR_INSUFFICIENT_SIZE,
  ERROR_TIMEOUT: R.NVML_ERROR_TIMEOUT,
  ERROR_FUNCTION_NOT_FOUND: R.NVML_ERROR_FUNCTION_NOT_FOUND,
  ERROR_GPU_IS_LOST: R.NVML_ERROR_GPU_IS_LOST,
  ERROR_RESET_REQUIRED: R.NVML_ERROR_RESET_REQUIRED,
  ERROR_IN_USE: R.NVML_ERROR_IN_USE,
  ERROR_NO_DATA: R.NVML_ERROR_NO_DATA,
  ERROR_ARGUMENT_VERSION_MISMATCH: R.NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
} as const;

/** Codes meaning "this GPU cannot see that": the field stays undefined (metric absent). */
export function isAbsent(code: number): boolean {
  return code === NVML.ERROR_NOT_SUPPORTED || code === NVML.ERROR_NO_PERMISSION || code === NVML.ERROR_FUNCTION_NOT_FOUND
    || code === NVML.ERROR_NOT_FOUND || code === NVML.ERROR_NO_DATA || code === NVML.ERROR_INVALID_ARGUMENT;
}

/** Codes meaning the GPU itself is gone (fell off the bus, needs a reset). */
export function isLost(code: number): boolean {
  return code === NVML.ERROR_GPU_IS_LOST || code === NVML.ERROR_RESET_REQUIRED || code === NVML.ERROR_UNINITIALIZED;
}

/** Clock-event (throttle) reason bits of nvmlDeviceGetCurrentClocksEventReasons. */
export const THROTTLE_BITS: ReadonlyArray<readonly [string, bigint]> = [
  ['gpu_idle', K.nvmlClocksEventReasonGpuIdle],
  ['applications_clocks_setting', K.nvmlClocksEventReasonApplicationsClocksSetting],
  ['sw_power_cap', K.nvmlClocksEventReasonSwPowerCap],
  ['hw_slowdown', K.nvmlClocksThrottleReasonHwSlowdown],
  ['sync_boost', K.nvmlClocksEventReasonSyncBoost],
  ['sw_thermal_slowdown', K.nvmlClocksEventReasonSwThermalSlowdown],
  ['hw_thermal_slowdown', K.nvmlClocksThrottleReasonHwThermalSlowdown],
  ['hw_power_brake_slowdown', K.nvmlClocksThrottleReasonHwPowerBrakeSlowdown],
  ['display_clock_setting', K.nvmlClocksEventReasonDisplayClockSetting],
];

/** The reasons bitmask as a record of every known reason and whether it is active. */
export function throttleReasonsFromMask(mask: bigint): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const [name, bit] of THROTTLE_BITS) out[name] = (mask & bit) !== 0n;
  return out;
}

/** Reads an nvmlValue_t union of the given nvmlValueType_t at `offset`. */
export function readNvmlValue(buf: Buffer, offset: number, valueType: number): number | undefined {
  switch (valueType) {
    case K.NVML_VALUE_TYPE_DOUBLE: return buf.readDoubleLE(offset);
    case K.NVML_VALUE_TYPE_UNSIGNED_INT: return buf.readUInt32LE(offset);
    // unsigned long is 64 bits on the LP64 Linux ABI the driver ships for.
    case K.NVML_VALUE_TYPE_UNSIGNED_LONG: case K.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: return Number(buf.readBigUInt64LE(offset));
    case K.NVML_VALUE_TYPE_SIGNED_LONG_LONG: return Number(buf.readBigInt64LE(offset));
    case K.NVML_VALUE_TYPE_SIGNED_INT: return buf.readInt32LE(offset);
    case K.NVML_VALUE_TYPE_UNSIGNED_SHORT: return buf.readUInt16LE(offset);
    default: return undefined;
  }
}

/** One utilization sample: its end timestamp (µs) and percent value. */
export interface UtilSample {
  readonly ts: number;
  readonly value: number;
}

/** Result of integrating the samples of one read. */
export interface Integration {
  /** Busy seconds added by these samples. */
  readonly busySeconds: number;
  /** Seconds whose samples had already dropped out of the driver buffer (counted, not guessed). */
  readonly lostSeconds: number;
  /** The newest timestamp now seen; pass it back as lastSeenTimeStamp. */
  readonly lastSeenUs: number | undefined;
}

/**
 * Integrates utilization samples newer than `lastSeenUs`. Each sample covers the time
 * from the previous sample's timestamp to its own, at its value (percent). The first
 * read only sets the baseline (the interval of its oldest sample is unknown). When a
 * read returns a full buffer and a gap before its oldest sample is longer than 1.5
 * sample periods, the samples of that gap were overwritten before they were read: the
 * oldest sample is counted over one period and the rest of the gap as lost. Samples at
 * or before `lastSeenUs` are ignored, so none is ever counted twice.
 */
export function integrateSamples(lastSeenUs: number | undefined, samples: readonly UtilSample[], capacity: number): Integration {
  // The driver answers oldest first and only after lastSeenUs; anything else (re-delivered, out of order) is sorted out here.
  let inOrder = true;
  for (let i = 0; i < samples.length; i++) {
    if ((lastSeenUs !== undefined && samples[i].ts <= lastSeenUs) || (i > 0 && samples[i].ts <= samples[i - 1].ts)) {
      inOrder = false;
      break;
    }
  }
  const fresh = inOrder ? samples : samples.filter((s) => lastSeenUs === undefined || s.ts > lastSeenUs).sort((a, b) => a.ts - b.ts);
  if (fresh.length === 0) return { busySeconds: 0, lostSeconds: 0, lastSeenUs };
  const newest = fresh[fresh.length - 1].ts;
  if (lastSeenUs === undefined) return { busySeconds: 0, lostSeconds: 0, lastSeenUs: newest };
  const period = typicalPeriod(fresh);
  let busy = 0;
  let lost = 0;
  let prev = lastSeenUs;
  for (let i = 0; i < fresh.length; i++) {
    const s = fresh[i];
    let dt = s.ts - prev;
    if (i === 0 && period !== undefined && samples.length >= capacity && dt > 1.5 * period) {
      lost += (dt - period) / 1e6;
      dt = period;
    }
    busy += (Math.min(100, Math.max(0, s.value)) / 100) * (dt / 1e6);
    prev = s.ts;
  }
  return { busySeconds: busy, lostSeconds: lost, lastSeenUs: newest };
}

/** Median spacing of consecutive samples, or undefined with fewer than two. */
function typicalPeriod(sorted: readonly UtilSample[]): number | undefined {
  if (sorted.length < 2) return undefined;
  const d = new Float64Array(sorted.length - 1);
  for (let i = 1; i < sorted.length; i++) d[i - 1] = sorted[i].ts - sorted[i - 1].ts;
  d.sort();
  return d[Math.floor(d.length / 2)];
}

/** Next re-check delay for a lost GPU: doubles from one interval up to a minute. */
export function nextBackoffMs(previousMs: number | undefined, intervalMs: number): number {
  return Math.min(60_000, previousMs === undefined ? intervalMs : previousMs * 2);
}
