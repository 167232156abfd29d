import { SIM_PROFILE_KEYS, SIM_SLOWDOWN_CELSIUS, type SimGpu, type SimHost } from '../../sim/host.js';
import type { NvlinkErrorCount } from './health.js';
import type { ProfilingDelta } from './profiling.js';
import { type GpuDevice, type GpuReading, type GpuSource, xidCountsOf } from './source.js';

/** Profiling keys a MIG instance does not measure (PCIe and the media engines are the whole GPU's). */
const NOT_PER_MIG = new Set(['pcie_tx', 'pcie_rx', 'nvdec', 'nvjpg', 'nvofa']);

/** The difference of two profiling integrals (by SIM_PROFILE_KEYS index); `share` of it for a MIG instance. */
function profilingDelta(now: Float64Array, before: Float64Array, share?: number): ProfilingDelta {
  const out: Record<string, number> = {};
  for (let i = 0; i < SIM_PROFILE_KEYS.length; i++) {
    const k = SIM_PROFILE_KEYS[i];
    if (share === undefined) out[k] = Math.max(0, now[i] - before[i]);
    else if (!NOT_PER_MIG.has(k)) out[k] = Math.max(0, now[i] - before[i]) * share;
  }
  return out;
}

/**
 * What the source keeps per simulated GPU between reads: the integrals of the last read, and
 * the parts of a reading that rarely change (device, NVLink error counts, XID counts), made
 * again only when they changed, so an unchanged GPU allocates little per read.
 */
interface SimGpuState {
  lastBusy: number;
  lastMemBusy: number;
  readonly lastProfiling: Float64Array;
  readonly device: GpuDevice;
  nvlink: NvlinkErrorCount[];
  xid: ReadonlyMap<number, number>;
}

function sameNvlink(list: readonly NvlinkErrorCount[], e: SimGpu['health']['nvlinkErrors']): boolean {
  if (list.length !== 3 * e.crc.length) return false;
  for (let link = 0, i = 0; link < e.crc.length; link++, i += 3) {
    if (list[i].value !== e.crc[link] || list[i + 1].value !== e.replay[link] || list[i + 2].value !== e.recovery[link]) return false;
  }
  return true;
}

/** The GPUs of a simulated host, read like a real source. */
export function simulatedGpuSource(host: SimHost, now: () => number): GpuSource {
  const state = new Map<number, SimGpuState>();
  const mig = (index: number) => host.gpus.length > 1 && index === host.gpus.length - 1;
  return {
    kind: 'simulated',
    async read(): Promise<GpuReading[]> {
      host.advanceTo(now());
      return host.gpus.map((g) => {
        let st = state.get(g.index);
        if (!st) {
          state.set(g.index, (st = {
            lastBusy: g.busySeconds, lastMemBusy: g.memoryBusySeconds, lastProfiling: Float64Array.from(g.profiling),
            device: { index: g.index, uuid: g.uuid, name: g.name, pciBusId: g.pciBusId, driverVersion: '590.48.01', migMode: mig(g.index) ? 'Enabled' : 'Disabled' },
            nvlink: [], xid: new Map(),
          }));
        }
        const prev = st.lastBusy;
        st.lastBusy = g.busySeconds;
        const prevMem = st.lastMemBusy;
        st.lastMemBusy = g.memoryBusySeconds;
        const device = st.device;
        // Readings are the caller's: a changed list is a new one, an unchanged one is shared.
        const xidCounts = (st.xid = xidCountsOf(g.xid, st.xid));
        const h = g.health;
        // A GPU that fell off the bus answers nothing; the XIDs counted before stay.
        if (h.lost) return { device, up: false, xidCounts };
        const profiling = profilingDelta(g.profiling, st.lastProfiling);
        const migProfiling = mig(g.index) ? profilingDelta(g.profiling, st.lastProfiling, 1) : undefined;
        st.lastProfiling.set(g.profiling);
        if (!sameNvlink(st.nvlink, h.nvlinkErrors)) {
          st.nvlink = h.nvlinkErrors.crc.flatMap((crc, link) => [
            { link, type: 'crc' as const, value: crc },
            { link, type: 'replay' as const, value: h.nvlinkErrors.replay[link] },
            { link, type: 'recovery' as const, value: h.nvlinkErrors.recovery[link] },
          ]);
        }
        return {
        device,
        up: true,
        // Every signal, so that each dashboard panel and alert has data (a real H100 reports no retired pages).
        health: {
          retiredPagesSingleBit: h.retiredPagesSingleBit,
          retiredPagesDoubleBit: h.retiredPagesDoubleBit,
          retiredPagesPending: h.retiredPagesPending,
          recoveryAction: h.recoveryAction,
          rowRemapPending: h.rowRemapPending,
          rowRemapFailed: h.rowRemapFailed,
          remappedRowsCorrectable: h.remappedRowsCorrectable,
          remappedRowsUncorrectable: h.remappedRowsUncorrectable,
          nvlinkErrors: st.nvlink,
          pcieReplays: h.pcieReplays,
          thermalMarginCelsius: Math.round(SIM_SLOWDOWN_CELSIUS - g.temperatureCelsius),
        },
        utilization: g.utilization,
        memoryControllerUtilization: g.memoryControllerUtilization,
        memoryUsedBytes: g.memoryUsedBytes,
        memoryTotalBytes: g.memoryTotalBytes,
        memoryFreeBytes: g.memoryTotalBytes - g.memoryUsedBytes,
        powerWatts: g.powerWatts,
        powerLimitWatts: g.powerLimitWatts,
        energyJoules: g.energyJoules,
        temperatureCelsius: g.temperatureCelsius,
        memoryTemperatureCelsius: g.memoryTemperatureCelsius,
        smClockHz: g.smClockHz,
        memoryClockHz: g.memoryClockHz,
        throttleReasons: { ...g.throttle },
        pcieTxBytesPerSecond: g.pcieTxBytesPerSecond,
        pcieRxBytesPerSecond: g.pcieRxBytesPerSecond,
        nvlinkTxBytes: g.nvlinkTxBytes,
        nvlinkRxBytes: g.nvlinkRxBytes,
        eccCorrected: g.eccCorrected,
        eccUncorrected: g.eccUncorrected,
        xidCounts,
        // The last GPU of a multi-GPU host (the notebook's) is split into two MIG 3g.40gb devices.
        migDevices: mig(g.index) ? [0, 1].map((k) => ({
          gpuInstance: k + 1, computeInstance: 0, uuid: `MIG-${g.uuid.slice(4, 12)}-0000-4000-8000-00000000000${k}`, name: `${g.name} MIG 3g.40gb`,
          memoryTotalBytes: Math.floor(g.memoryTotalBytes / 2), memoryUsedBytes: Math.floor(g.memoryUsedBytes / 2),
          // Each instance: its own SMs, as busy as the simulated GPU (in MIG mode GPM is per instance only).
          profiling: migProfiling,
        })) : undefined,
        // Simulated like everything here (ds_exporter_gpu_source_info{source="simulated"}); in MIG mode only per instance, as NVML.
        profiling: mig(g.index) ? { status: 'available' } : { status: 'available', delta: profiling },
        // One serving process per GPU holding most of the used memory, as under vLLM or SGLang.
        processMemoryBytes: new Map([[4100 + g.index, Math.round(g.memoryUsedBytes * 0.97)]]),
        // The simulator knows its exact integral: report it like NVML's sample buffer would.
        busySecondsDelta: g.busySeconds - prev,
        memoryBusySecondsDelta: g.memoryBusySeconds - prevMem,
        utilizationMethod: 'samples',
        // The simulator reads its integral directly: nothing is ever lost.
        utilizationSamplesLostSeconds: 0,
        throttleSeconds: { ...g.throttleSeconds },
      };
      });
    },
    async close() {},
  };
}
