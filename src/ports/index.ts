import type { PushState } from '../push/state.js';
import type { Simulation } from '../sim/plan.js';
import type { GpuInventory } from './gpus.js';
import type { PodAllocations } from './pods.js';
import type { SelfAddress } from './self.js';

export { fresh, type Dated } from './fresh.js';
export { GpuInventory, type GpuProcesses, type GpuProcessList, type KnownGpu } from './gpus.js';
export { PodAllocations, type GpuAllocation, type PodAllocationList } from './pods.js';
export { SelfAddress, type ListenAddress } from './self.js';

/**
 * The named, typed ports `buildApp` makes once and hands to the collectors and HTTP
 * plugins that need them. Each has one writer; a collector declares the ports it uses in
 * its deps type (`CollectorDeps & Pick<Ports, ...>`), so collectors never reach into
 * each other.
 */
export interface Ports {
  /** The GPUs (and their processes) the GPU collector found; read by the kubelet collector and the landing page. */
  readonly gpus: GpuInventory;
  /** Which pod holds which GPU, from the kubelet collector; read by the GPU collector. */
  readonly pods: PodAllocations;
  /** GPU series carry the pods holding the GPU (`--kubelet.enrich-labels`). */
  readonly podLabels: boolean;
  /** The push ingest: fed by `POST /api/v1/push`, sampled by the push collector. */
  readonly push: PushState;
  /** The exporter's own listen address, for the peer prober. */
  readonly self: SelfAddress;
  /** What is simulated, and the simulated host. */
  readonly simulation: Simulation;
}
