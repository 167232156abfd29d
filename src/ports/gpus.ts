import type { Dated } from './fresh.js';

/** A GPU the GPU collector knows: its index and UUID. */
export interface KnownGpu {
  readonly index: number;
  readonly uuid: string;
}

/** One GPU and the processes NVML lists on it. */
export interface GpuProcesses {
  readonly gpu: string;
  readonly uuid: string;
  /** UUIDs of its MIG devices (a pod may hold one of them rather than the whole GPU). */
  readonly migUuids: readonly string[];
  readonly pids: readonly number[];
}

/** The processes of the GPU collector's last successful sample (`--nvml.process-memory`); used for 3 GPU sample intervals. */
export interface GpuProcessList extends Dated {
  readonly gpus: readonly GpuProcesses[];
}

/**
 * The GPU inventory port: what the GPU collector found, for the parts that match things
 * to GPUs (the kubelet collector by UUID, the landing page and the start-up log by source).
 * Written only by the GPU collector.
 */
export class GpuInventory {
  /** nvml, nvidia-smi or simulated once the source is open; undefined before (or without a GPU collector). */
  sourceKind?: string;
  /** The GPUs of the last successful sample. */
  devices: readonly KnownGpu[] = [];
  /** Their processes, when the source lists them. */
  processes?: GpuProcessList;
}
