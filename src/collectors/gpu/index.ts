import { catalog, enrichedFamilies } from '../../catalog/index.js';
import type { Collector, CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import { describeError, SourceError } from '../../core/errors.js';
import type { FlagValues } from '../../core/flags.js';
import { Batch } from '../../core/store.js';
import type { GpuProcessList, PodAllocationList, Ports } from '../../ports/index.js';
import { enrichWithPods } from './enrich.js';
import { HealthTracker } from './health.js';
import type { Logger } from '../../core/logger.js';
import { openNvmlSource } from './nvml.js';
import { ProfilingCounters } from './profiling.js';
import { simulatedGpuSource } from './simulated.js';
import { openSmiSource } from './smi.js';
import type { GpuReading, GpuSource } from './source.js';

type SourceKind = GpuSource['kind'];
type RealKind = Exclude<SourceKind, 'simulated'>;

/** The GPU collector's flags, read once. */
export interface GpuConfig {
  /** `--gpu.source`; what it means for simulation is decided by the simulation plan. */
  readonly source: 'auto' | RealKind | 'simulated';
  readonly nvmlLibrary: string;
  /** `--nvml.process-memory`: export GPU memory per process. */
  readonly processMemory: boolean;
  readonly smiPath: string;
}

/** The ports the GPU collector uses: it writes the GPU inventory; reads pod allocations and the simulation. */
export type GpuDeps = CollectorDeps & Pick<Ports, 'gpus' | 'pods' | 'podLabels' | 'simulation'>;

/** Opens NVML or nvidia-smi; each throws a SourceError saying why it cannot be used. */
export type SourceOpener = (config: GpuConfig, deps: GpuDeps) => Promise<GpuSource>;

/** The real sources, by kind, in the order `auto` tries them. */
export const realSources: Readonly<Record<RealKind, SourceOpener>> = {
  nvml: (config, deps) => openNvmlSource({ library: config.nvmlLibrary, logger: deps.logger, now: deps.now, intervalMs: deps.intervalMs, processMemory: config.processMemory }),
  'nvidia-smi': (config, deps) => openSmiSource({ path: config.smiPath, intervalMs: deps.intervalMs, logger: deps.logger }),
};

/**
 * Opens the GPU source the simulation plan says: the simulated GPUs, the real source asked
 * for (or a SourceError), or with `auto` NVML (library loads and sees at least one GPU),
 * then nvidia-smi, then the simulated GPUs with a loud warning.
 */
export async function openGpuSource(config: GpuConfig, deps: GpuDeps): Promise<GpuSource> {
  const { plan } = deps.simulation;
  if (plan.gpus === 'simulated') return simulatedGpuSource(deps.simulation.host(), deps.now);
  const order: RealKind[] = config.source === 'auto' || config.source === 'simulated' ? ['nvml', 'nvidia-smi'] : [config.source];
  const reasons: string[] = [];
  for (const kind of order) {
    try {
      return await realSources[kind](config, deps);
    } catch (err) {
      reasons.push(`${kind}: ${describeError(err)}`);
    }
  }
  if (plan.gpus === 'real') throw new SourceError(`GPU source ${order.join(', ')} cannot be used: ${reasons.join('; ')}`);
  deps.logger.warn('NO GPU SOURCE FOUND: SERVING SIMULATED GPUs. These values are not real. Pass --gpu.source=nvml or --gpu.source=nvidia-smi to fail instead.', { reasons: reasons.join('; ') });
  return simulatedGpuSource(deps.simulation.host(), deps.now);
}

interface Accumulators {
  busy: number;
  memoryBusy: number;
  throttle: Map<string, number>;
  energy: number;
  lastEnergyReading?: number;
  lastReadMs?: number;
}

/** Sets a gauge when the source could read the value; an unread value stays absent. */
function gauge(batch: Batch, name: string, id: { gpu: string; uuid: string }, v: number | undefined): void {
  if (v !== undefined) batch.gauge(name, id, v);
}

/**
 * Label objects of one GPU, made once and reused every sample: the store recognises an
 * unchanged series by its label object, and nothing is allocated per series and sample.
 */
class GpuLabels {
  readonly id: { gpu: string; uuid: string };
  private info?: Record<string, string>;
  private readonly extra = new Map<string, Map<string, Record<string, string>>>();
  private extraCount = 0;
  constructor(gpu: string, uuid: string) {
    this.id = { gpu, uuid };
  }

  /** `{gpu, uuid, [name]: value}`. */
  with(name: string, value: string): Record<string, string> {
    let byValue = this.extra.get(name);
    if (!byValue) this.extra.set(name, (byValue = new Map()));
    let l = byValue.get(value);
    if (!l) {
      // Process ids and XID codes come and go; the cache is bounded.
      if (++this.extraCount > 4096) {
        this.extra.clear();
        this.extraCount = 1;
        this.extra.set(name, (byValue = new Map()));
      }
      l = { gpu: this.id.gpu, uuid: this.id.uuid, [name]: value };
      byValue.set(value, l);
    }
    return l;
  }

  /** The labels of `ds_gpu_info`, the same object while they do not change. */
  infoLabels(name: string, pciBusId: string, driverVersion: string, migMode: string): Record<string, string> {
    const i = this.info;
    if (i && i.name === name && i.pci_bus_id === pciBusId && i.driver_version === driverVersion && i.mig_mode === migMode) return i;
    return (this.info = { gpu: this.id.gpu, uuid: this.id.uuid, name, pci_bus_id: pciBusId, driver_version: driverVersion, mig_mode: migMode });
  }
}

/** `--kubelet.enrich-labels`: which families get pod labels, and where the allocations are. */
export interface PodEnrichment {
  readonly families: ReadonlySet<string>;
  readonly allocations: () => PodAllocationList | undefined;
}

/**
 * Maps GPU readings to metrics. Counters the sources cannot give directly (busy time,
 * energy) are integrated here and kept per UUID, so a GPU that is lost and comes back
 * continues its counters.
 */
export class GpuMetrics {
  private readonly acc = new Map<string, Accumulators>();
  private readonly labels = new Map<string, GpuLabels>();
  private readonly sourceInfo = new Map<string, { source: string }>();
  private readonly health: HealthTracker;
  private readonly profiling = new ProfilingCounters();
  constructor(private readonly now: () => number, private readonly intervalMs: number, private readonly enrich?: PodEnrichment, logger?: Logger) {
    this.health = new HealthTracker(now, logger);
  }

  /** Writes the series of one sample; with pod enrichment, through one post-pass over them. */
  write(batch: Batch, readings: readonly GpuReading[], sourceKind: string): void {
    if (!this.enrich) return this.writeReadings(batch, readings, sourceKind);
    const own = new Batch(batch.collector);
    this.writeReadings(own, readings, sourceKind);
    batch.append(enrichWithPods(own.entries, this.enrich.families, this.enrich.allocations(), this.now()));
  }

  private writeReadings(batch: Batch, readings: readonly GpuReading[], sourceKind: string): void {
    let src = this.sourceInfo.get(sourceKind);
    if (!src) this.sourceInfo.set(sourceKind, (src = { source: sourceKind }));
    batch.info('ds_exporter_gpu_source_info', src);
    const nowMs = this.now();
    for (const r of readings) {
      const d = r.device;
      const lkey = `${d.index}\u0000${d.uuid}`;
      let L = this.labels.get(lkey);
      if (!L) {
        if (this.labels.size >= 1024) this.labels.clear();
        this.labels.set(lkey, (L = new GpuLabels(String(d.index), d.uuid)));
      }
      const id = L.id;
      batch.info('ds_gpu_info', L.infoLabels(d.name, d.pciBusId, d.driverVersion, d.migMode));
      batch.gauge('ds_gpu_up', id, r.up ? 1 : 0);
      let a = this.acc.get(d.uuid);
      if (!a) this.acc.set(d.uuid, (a = { busy: 0, memoryBusy: 0, energy: 0, throttle: new Map() }));
      // Integrate over at most two intervals: a gap longer than that (GPU lost) is unknown time, not idle time.
      const elapsedS = a.lastReadMs === undefined ? 0 : Math.min(nowMs - a.lastReadMs, 2 * this.intervalMs) / 1000;
      a.lastReadMs = nowMs;
      // XID counters and the health verdict, also (verdict lost) for a GPU that stopped answering.
      this.health.write(batch, id, r);
      if (!r.up) continue;
      gauge(batch, 'ds_gpu_utilization_ratio', id, r.utilization);
      gauge(batch, 'ds_gpu_memory_controller_utilization_ratio', id, r.memoryControllerUtilization);
      if (r.busySecondsDelta !== undefined) a.busy += Math.max(0, r.busySecondsDelta);
      else if (r.utilization !== undefined) a.busy += r.utilization * elapsedS;
      if (r.busySecondsDelta !== undefined || r.utilization !== undefined) {
        batch.counter('ds_gpu_busy_seconds_total', id, a.busy);
        batch.gauge('ds_gpu_utilization_method', L.with('method', r.utilizationMethod ?? (r.busySecondsDelta !== undefined ? 'samples' : 'point')), 1);
      }
      if (r.utilizationSamplesLostSeconds !== undefined) batch.counter('ds_gpu_utilization_samples_lost_seconds_total', id, r.utilizationSamplesLostSeconds);
      if (r.memoryBusySecondsDelta !== undefined) a.memoryBusy += Math.max(0, r.memoryBusySecondsDelta);
      else if (r.memoryControllerUtilization !== undefined) a.memoryBusy += r.memoryControllerUtilization * elapsedS;
      if (r.memoryBusySecondsDelta !== undefined || r.memoryControllerUtilization !== undefined) batch.counter('ds_gpu_memory_busy_seconds_total', id, a.memoryBusy);
      gauge(batch, 'ds_gpu_memory_used_bytes', id, r.memoryUsedBytes);
      gauge(batch, 'ds_gpu_memory_free_bytes', id, r.memoryFreeBytes);
      gauge(batch, 'ds_gpu_memory_total_bytes', id, r.memoryTotalBytes);
      if (r.memoryUsedBytes !== undefined && r.memoryTotalBytes) gauge(batch, 'ds_gpu_memory_utilization_ratio', id, r.memoryUsedBytes / r.memoryTotalBytes);
      gauge(batch, 'ds_gpu_power_watts', id, r.powerWatts);
      gauge(batch, 'ds_gpu_power_limit_watts', id, r.powerLimitWatts);
      if (r.energyJoules !== undefined) {
        if (a.lastEnergyReading !== undefined && r.energyJoules >= a.lastEnergyReading) a.energy += r.energyJoules - a.lastEnergyReading;
        a.lastEnergyReading = r.energyJoules;
        batch.counter('ds_gpu_energy_joules_total', id, a.energy);
      } else if (r.powerWatts !== undefined) {
        a.energy += r.powerWatts * elapsedS;
        batch.counter('ds_gpu_energy_joules_total', id, a.energy);
      }
      gauge(batch, 'ds_gpu_temperature_celsius', id, r.temperatureCelsius);
      gauge(batch, 'ds_gpu_memory_temperature_celsius', id, r.memoryTemperatureCelsius);
      gauge(batch, 'ds_gpu_sm_clock_hertz', id, r.smClockHz);
      gauge(batch, 'ds_gpu_memory_clock_hertz', id, r.memoryClockHz);
      const reasons = r.throttleReasons;
      for (const reason in reasons) {
        const active = reasons[reason];
        batch.gauge('ds_gpu_clock_throttle_active', L.with('reason', reason), active ? 1 : 0);
        // Without a driver counter, integrate the active flag over the interval.
        if (r.throttleSeconds?.[reason] === undefined) {
          const t = (a.throttle.get(reason) ?? 0) + (active ? elapsedS : 0);
          a.throttle.set(reason, t);
          batch.counter('ds_gpu_throttle_seconds_total', L.with('reason', reason), t);
        }
      }
      const throttleSeconds = r.throttleSeconds;
      for (const reason in throttleSeconds) batch.counter('ds_gpu_throttle_seconds_total', L.with('reason', reason), throttleSeconds[reason]);
      if (r.pcieTxBytesPerSecond !== undefined) batch.gauge('ds_gpu_pcie_throughput_bytes_per_second', L.with('direction', 'tx'), r.pcieTxBytesPerSecond);
      if (r.pcieRxBytesPerSecond !== undefined) batch.gauge('ds_gpu_pcie_throughput_bytes_per_second', L.with('direction', 'rx'), r.pcieRxBytesPerSecond);
      if (r.nvlinkTxBytes !== undefined) batch.counter('ds_gpu_nvlink_bytes_total', L.with('direction', 'tx'), r.nvlinkTxBytes);
      if (r.nvlinkRxBytes !== undefined) batch.counter('ds_gpu_nvlink_bytes_total', L.with('direction', 'rx'), r.nvlinkRxBytes);
      if (r.eccCorrected !== undefined) batch.counter('ds_gpu_ecc_errors_total', L.with('type', 'corrected'), r.eccCorrected);
      if (r.eccUncorrected !== undefined) batch.counter('ds_gpu_ecc_errors_total', L.with('type', 'uncorrected'), r.eccUncorrected);
      for (const m of r.migDevices ?? []) {
        const mid = L.with('gpu_instance', String(m.gpuInstance));
        batch.info('ds_gpu_mig_info', { gpu: mid.gpu, uuid: mid.uuid, gpu_instance: mid.gpu_instance, compute_instance: m.computeInstance === undefined ? 'N/A' : String(m.computeInstance), mig_uuid: m.uuid, name: m.name });
        if (m.memoryUsedBytes !== undefined) batch.gauge('ds_gpu_mig_memory_used_bytes', mid, m.memoryUsedBytes);
        if (m.memoryTotalBytes !== undefined) batch.gauge('ds_gpu_mig_memory_total_bytes', mid, m.memoryTotalBytes);
      }
      for (const [pid, bytes] of r.processMemoryBytes ?? []) batch.gauge('ds_gpu_process_memory_used_bytes', L.with('pid', String(pid)), bytes);
      // Profiling (GPM): the driver's NVLink field counters, where present, already feed ds_gpu_nvlink_bytes_total.
      this.profiling.writeGpu(batch, id.gpu, id.uuid, r.profiling, r.nvlinkTxBytes !== undefined || r.nvlinkRxBytes !== undefined);
      for (const m of r.migDevices ?? []) if (m.profiling) this.profiling.writeMig(batch, id.gpu, id.uuid, m.gpuInstance, m.profiling);
    }
  }
}

/** The processes NVML lists on each GPU, for process attribution. Pure. */
export function gpuProcesses(readings: readonly GpuReading[], readAtMs: number, maxAgeMs: number): GpuProcessList {
  return {
    readAtMs,
    maxAgeMs,
    gpus: readings.filter((r) => r.up).map((r) => ({
      gpu: String(r.device.index),
      uuid: r.device.uuid,
      migUuids: (r.migDevices ?? []).map((m) => m.uuid),
      pids: [...(r.processMemoryBytes?.keys() ?? [])],
    })),
  };
}

/** The GPU collector: one source (NVML, nvidia-smi or simulated), one set of metric names. */
export const gpuCollector: CollectorDefinition<GpuConfig, GpuDeps> = {
  name: 'gpu',
  description: 'GPU utilization, memory, power, temperature, clocks, throttling, ECC, XID, PCIe and NVLink',
  defaultEnabled: true,
  flags: [
    { name: 'gpu.source', type: 'enum', choices: ['auto', 'nvml', 'nvidia-smi', 'simulated'], default: 'auto', help: 'Where GPU metrics come from: auto tries NVML, then nvidia-smi, then the simulator (with a loud warning).' },
    { name: 'nvml.library', type: 'string', default: 'libnvidia-ml.so.1', help: 'Path or name of the NVML shared library.' },
    { name: 'nvml.process-memory', type: 'bool', default: false, help: 'Export GPU memory per process (ds_gpu_process_memory_used_bytes, one series per process on each GPU).' },
    { name: 'nvidia-smi.path', type: 'string', default: 'nvidia-smi', help: 'Path of the nvidia-smi executable.' },
  ],
  configure(flags: FlagValues): GpuConfig {
    return {
      source: flags.requireString('gpu.source') as GpuConfig['source'],
      nvmlLibrary: flags.requireString('nvml.library'),
      processMemory: flags.bool('nvml.process-memory'),
      smiPath: flags.requireString('nvidia-smi.path'),
    };
  },
  async create(deps, config): Promise<Collector> {
    const source = await openGpuSource(config, deps);
    const { intervalMs } = deps;
    const enrich: PodEnrichment | undefined = deps.podLabels ? { families: enrichedFamilies(catalog), allocations: () => deps.pods.latest } : undefined;
    const metrics = new GpuMetrics(deps.now, intervalMs, enrich, deps.logger);
    deps.gpus.sourceKind = source.kind;
    return {
      async sample(batch, signal) {
        const readings = await source.read(signal);
        metrics.write(batch, readings, source.kind);
        // The kubelet collector matches devices to GPUs by UUID, and attributes their processes.
        deps.gpus.devices = readings.map((r) => ({ index: r.device.index, uuid: r.device.uuid }));
        deps.gpus.processes = gpuProcesses(readings, deps.now(), 3 * intervalMs);
      },
      close: () => source.close(),
    };
  },
};
