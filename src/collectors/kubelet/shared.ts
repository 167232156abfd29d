import type { GpuAllocation } from './match.js';

/**
 * What the GPU and kubelet collectors hand each other through `deps.shared`. Each value
 * says when it was read and how long it may be used: a collector that stopped succeeding
 * leaves an old value behind, and an old value is never used past its bound.
 */

/** `deps.shared` key of the kubelet collector's latest allocations (`SharedAllocations`). */
export const SHARED_ALLOCATIONS = 'kubelet.allocations';
/** `deps.shared` key of the GPU collector's latest processes per GPU (`SharedGpuProcesses`). */
export const SHARED_GPU_PROCESSES = 'gpu.processes';

/** The allocations of the last successful List call. */
export interface SharedAllocations {
  readonly allocations: readonly GpuAllocation[];
  /** When they were read (ms, the exporter's clock). */
  readonly readAtMs: number;
  /** Older than this (3 kubelet intervals), they are not used. */
  readonly maxAgeMs: number;
}

/** One GPU and the processes NVML lists on it. */
export interface GpuProcesses {
  readonly gpu: string;
  readonly uuid: string;
  /** UUIDs of its MIG devices (a pod may hold one of them rather than the whole GPU). */
  readonly migUuids: readonly string[];
  readonly pids: readonly number[];
}

/** The processes of the GPU collector's last successful sample (`--nvml.process-memory`). */
export interface SharedGpuProcesses {
  readonly gpus: readonly GpuProcesses[];
  readonly readAtMs: number;
  /** Older than this (3 GPU sample intervals), they are not used. */
  readonly maxAgeMs: number;
}

/** The value when it is present and younger than its bound, else undefined. Pure. */
export function fresh<T extends { readAtMs: number; maxAgeMs: number }>(v: T | undefined, nowMs: number): T | undefined {
  return v !== undefined && nowMs - v.readAtMs <= v.maxAgeMs ? v : undefined;
}
