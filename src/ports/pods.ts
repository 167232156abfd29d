import type { Dated } from './fresh.js';

/** An allocation resolved to a GPU: the labels of `ds_gpu_allocation_info`. */
export interface GpuAllocation {
  readonly gpu: string;
  readonly uuid: string;
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
}

/** The allocations of the kubelet's last successful List call; used for 3 kubelet intervals. */
export interface PodAllocationList extends Dated {
  readonly allocations: readonly GpuAllocation[];
}

/**
 * The pod-allocations port: which pod holds which GPU. Written only by the kubelet
 * collector; read by the GPU collector to label its series with pods
 * (`--kubelet.enrich-labels`) while the list is fresh.
 */
export class PodAllocations {
  latest?: PodAllocationList;
}
