/** Pure pieces of the NVML source: return codes, bitmasks, value unions, sample integration. */

/** nvmlReturn_t codes the source acts on. */
export const NVML = {
  SUCCESS: 0,
  ERROR_UNINITIALIZED: 1,
  ERROR_INVALID_ARGUMENT: 2,
  ERROR_NOT_SUPPORTED: 3,
  ERROR_NO_PERMISSION: 4,
  ERROR_NOT_FOUND: 6,
  ERROR_INSUFFICIENT_SIZE: 7,
  ERROR_TIMEOUT: 10,
  ERROR_FUNCTION_NOT_FOUND: 13,
  ERROR_GPU_IS_LOST: 15,
  ERROR_RESET_REQUIRED: 16,
  ERROR_NO_DATA: 21,
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
  ['gpu_idle', 0x1n],
  ['applications_clocks_setting', 0x2n],
  ['sw_power_cap', 0x4n],
  ['hw_slowdown', 0x8n],
  ['sync_boost', 0x10n],
  ['sw_thermal_slowdown', 0x20n],
  ['hw_thermal_slowdown', 0x40n],
  ['hw_power_brake_slowdown', 0x80n],
  ['display_clock_setting', 0x100n],
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
    case 0: return buf.readDoubleLE(offset);
    case 1: return buf.readUInt32LE(offset);
    case 2: case 3: return Number(buf.readBigUInt64LE(offset));
    case 4: return Number(buf.readBigInt64LE(offset));
    case 5: return buf.readInt32LE(offset);
    case 6: return buf.readUInt16LE(offset);
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
  const fresh = samples.filter((s) => lastSeenUs === undefined || s.ts > lastSeenUs).sort((a, b) => a.ts - b.ts);
  if (fresh.length === 0) return { busySeconds: 0, lostSeconds: 0, lastSeenUs };
  const newest = fresh[fresh.length - 1].ts;
  if (lastSeenUs === undefined) return { busySeconds: 0, lostSeconds: 0, lastSeenUs: newest };
  const period = typicalPeriod(fresh);
  let busy = 0;
  let lost = 0;
  let prev = lastSeenUs;
  fresh.forEach((s, i) => {
    let dt = s.ts - prev;
    if (i === 0 && period !== undefined && samples.length >= capacity && dt > 1.5 * period) {
      lost += (dt - period) / 1e6;
      dt = period;
    }
    busy += (Math.min(100, Math.max(0, s.value)) / 100) * (dt / 1e6);
    prev = s.ts;
  });
  return { busySeconds: busy, lostSeconds: lost, lastSeenUs: newest };
}

/** Median spacing of consecutive samples, or undefined with fewer than two. */
function typicalPeriod(sorted: readonly UtilSample[]): number | undefined {
  if (sorted.length < 2) return undefined;
  const d: number[] = [];
  for (let i = 1; i < sorted.length; i++) d.push(sorted[i].ts - sorted[i - 1].ts);
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)];
}

/** Next re-check delay for a lost GPU: doubles from one interval up to a minute. */
export function nextBackoffMs(previousMs: number | undefined, intervalMs: number): number {
  return Math.min(60_000, previousMs === undefined ? intervalMs : previousMs * 2);
}
