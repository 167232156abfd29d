import type { GpuHealthReading } from './health.js';
import type { ProfilingDelta, ProfilingReading } from './profiling.js';

/** Identity of one GPU (or MIG instance). */
export interface GpuDevice {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  readonly pciBusId: string;
  readonly driverVersion: string;
  /** "Enabled", "Disabled" or "N/A". */
  readonly migMode: string;
}

/**
 * One GPU as read by a source. A field left undefined means the source cannot see it
 * on this GPU (not supported, no permission, missing symbol): that metric is absent,
 * never zero.
 */
export interface GpuReading {
  readonly device: GpuDevice;
  /** False when the GPU is lost or failing; its other fields are then ignored. */
  readonly up: boolean;
  readonly utilization?: number;
  readonly memoryControllerUtilization?: number;
  /** Busy seconds the source measured itself since its previous read (NVML sample buffer). */
  readonly busySecondsDelta?: number;
  /** Memory-controller busy seconds since the previous read, when the source measures it. */
  readonly memoryBusySecondsDelta?: number;
  /** "samples" when the busy deltas come from the driver's sample buffer, else "point". */
  readonly utilizationMethod?: 'samples' | 'point';
  /** Seconds whose utilization samples were overwritten in the driver buffer before being read (cumulative). */
  readonly utilizationSamplesLostSeconds?: number;
  /** Cumulative seconds each throttle reason was active, when the driver counts it. */
  readonly throttleSeconds?: Readonly<Record<string, number>>;
  readonly memoryUsedBytes?: number;
  readonly memoryFreeBytes?: number;
  readonly memoryTotalBytes?: number;
  readonly powerWatts?: number;
  readonly powerLimitWatts?: number;
  /** The device's own energy counter in joules (monotonic since driver load). */
  readonly energyJoules?: number;
  readonly temperatureCelsius?: number;
  readonly memoryTemperatureCelsius?: number;
  readonly smClockHz?: number;
  readonly memoryClockHz?: number;
  /** Clock-event (throttle) reasons and whether each is active. */
  readonly throttleReasons?: Readonly<Record<string, boolean>>;
  readonly pcieTxBytesPerSecond?: number;
  readonly pcieRxBytesPerSecond?: number;
  /** NVLink byte counters summed over links (monotonic). */
  readonly nvlinkTxBytes?: number;
  readonly nvlinkRxBytes?: number;
  /** Volatile ECC counters (monotonic while the driver is loaded). */
  readonly eccCorrected?: number;
  readonly eccUncorrected?: number;
  /** MIG devices of a GPU in MIG mode. */
  readonly migDevices?: readonly MigReading[];
  /** GPU memory used by each process on the GPU (pid -> bytes), when asked for. */
  readonly processMemoryBytes?: ReadonlyMap<number, number>;
  /** XID counts by code, cumulative since the source opened (also on a GPU that is down). */
  readonly xidCounts?: ReadonlyMap<number, number>;
  /** Health signals (recovery action, row remapping, retired pages, NVLink/PCIe errors, thermal margin). */
  readonly health?: GpuHealthReading;
  /** Profiling (GPM) status and activity since the previous read; undefined where the source has no profiling. */
  readonly profiling?: ProfilingReading;
}

/** One MIG device (GPU instance) of a GPU in MIG mode. */
export interface MigReading {
  readonly gpuInstance: number;
  readonly computeInstance?: number;
  readonly uuid: string;
  readonly name: string;
  readonly memoryUsedBytes?: number;
  readonly memoryTotalBytes?: number;
  /** Profiling activity of this GPU instance since the previous read (undefined: none measured). */
  readonly profiling?: ProfilingDelta;
}

/** NVML, nvidia-smi and the simulator behind one narrow interface. */
export interface GpuSource {
  readonly kind: 'nvml' | 'nvidia-smi' | 'simulated';
  read(signal: AbortSignal): Promise<GpuReading[]>;
  close(): Promise<void>;
}

/**
 * The XID counts a reading hands out: `last` (the copy handed out before) while `live` holds the
 * same counts, else a new copy. Readings are the caller's: a changed map is a new one.
 */
export function xidCountsOf(live: ReadonlyMap<number, number>, last: ReadonlyMap<number, number> | undefined): ReadonlyMap<number, number> {
  if (last && last.size === live.size) {
    let same = true;
    for (const [k, v] of live) {
      if (last.get(k) !== v) {
        same = false;
        break;
      }
    }
    if (same) return last;
  }
  return new Map(live);
}
