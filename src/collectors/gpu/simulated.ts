import { SIM_SLOWDOWN_CELSIUS, type SimHost } from '../../sim/host.js';
import type { ProfilingDelta } from './profiling.js';
import type { GpuReading, GpuSource } from './source.js';

/** The difference of two profiling integrals (a missing key counts from zero). */
function profilingDelta(now: Readonly<Record<string, number>>, before: Readonly<Record<string, number>> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) out[k] = Math.max(0, v - (before?.[k] ?? v));
  return out;
}

/** Splits a GPU's activity over its MIG instances (each instance a share of its SMs), for the simulated MIG GPU. */
function splitMig(d: ProfilingDelta, share: number): ProfilingDelta {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(d)) if (v !== undefined && !k.startsWith('pcie_') && !/^nv(dec|jpg|ofa)$/.test(k)) out[k] = v * share;
  return out;
}

/** The GPUs of a simulated host, read like a real source. */
export function simulatedGpuSource(host: SimHost, now: () => number): GpuSource {
  const lastBusy = new Map<number, number>();
  const lastMemBusy = new Map<number, number>();
  const lastProfiling = new Map<number, Record<string, number>>();
  const mig = (index: number) => host.gpus.length > 1 && index === host.gpus.length - 1;
  return {
    kind: 'simulated',
    async read(): Promise<GpuReading[]> {
      host.advanceTo(now());
      return host.gpus.map((g) => {
        const prev = lastBusy.get(g.index) ?? g.busySeconds;
        lastBusy.set(g.index, g.busySeconds);
        const prevMem = lastMemBusy.get(g.index) ?? g.memoryBusySeconds;
        lastMemBusy.set(g.index, g.memoryBusySeconds);
        const device = { index: g.index, uuid: g.uuid, name: g.name, pciBusId: g.pciBusId, driverVersion: '590.48.01', migMode: mig(g.index) ? 'Enabled' : 'Disabled' };
        const h = g.health;
        // A GPU that fell off the bus answers nothing; the XIDs counted before stay.
        if (h.lost) return { device, up: false, xidCounts: new Map(g.xid) };
        const profiling = profilingDelta(g.profiling, lastProfiling.get(g.index));
        lastProfiling.set(g.index, { ...g.profiling });
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
          nvlinkErrors: h.nvlinkErrors.crc.flatMap((crc, link) => [
            { link, type: 'crc' as const, value: crc },
            { link, type: 'replay' as const, value: h.nvlinkErrors.replay[link] },
            { link, type: 'recovery' as const, value: h.nvlinkErrors.recovery[link] },
          ]),
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
        xidCounts: new Map(g.xid),
        // The last GPU of a multi-GPU host (the notebook's) is split into two MIG 3g.40gb devices.
        migDevices: mig(g.index) ? [0, 1].map((k) => ({
          gpuInstance: k + 1, computeInstance: 0, uuid: `MIG-${g.uuid.slice(4, 12)}-0000-4000-8000-00000000000${k}`, name: `${g.name} MIG 3g.40gb`,
          memoryTotalBytes: Math.floor(g.memoryTotalBytes / 2), memoryUsedBytes: Math.floor(g.memoryUsedBytes / 2),
          // Each instance: its own SMs, as busy as the simulated GPU (in MIG mode GPM is per instance only).
          profiling: splitMig(profiling, 1),
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
