import type { GpuAllocation, KnownGpu } from '../../ports/index.js';

export type { GpuAllocation, KnownGpu } from '../../ports/index.js';

/** One container's device as the kubelet lists it. */
export interface DeviceAllocation {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
  readonly resourceName: string;
  readonly deviceId: string;
}

/** True for the resources that hold NVIDIA GPUs: nvidia.com/gpu, nvidia.com/mig-*, and extra names. */
export function isGpuResource(name: string, extra: readonly string[] = []): boolean {
  return name === 'nvidia.com/gpu' || name.startsWith('nvidia.com/mig-') || extra.includes(name);
}

/**
 * Resolves a device id to a GPU. Device plugins name devices by UUID (`GPU-…`, `MIG-…`),
 * by UUID with a time-slicing replica suffix (`GPU-…::3`), or by index (`nvidia3`, `3`).
 * Pure.
 */
export function resolveDevice(deviceId: string, gpus: readonly KnownGpu[]): { gpu: string; uuid: string } {
  const id = deviceId.trim().replace(/::\d+$/, '');
  const byUuid = gpus.find((g) => g.uuid.toLowerCase() === id.toLowerCase());
  if (byUuid) return { gpu: String(byUuid.index), uuid: byUuid.uuid };
  const idx = /^(?:nvidia)?(\d+)$/.exec(id);
  if (idx) {
    const g = gpus.find((x) => x.index === Number(idx[1]));
    return { gpu: idx[1], uuid: g?.uuid ?? '' };
  }
  // A UUID the GPU source does not list (e.g. a MIG instance): keep it, the index is unknown.
  return { gpu: '', uuid: id };
}

/** All GPU allocations, deduplicated (time-slicing replicas of one GPU in one container count once). */
export function gpuAllocations(devices: readonly DeviceAllocation[], gpus: readonly KnownGpu[], extra: readonly string[] = []): GpuAllocation[] {
  const out = new Map<string, GpuAllocation>();
  for (const d of devices) {
    if (!isGpuResource(d.resourceName, extra)) continue;
    const { gpu, uuid } = resolveDevice(d.deviceId, gpus);
    const a = { gpu, uuid, namespace: d.namespace, pod: d.pod, container: d.container };
    out.set(JSON.stringify(a), a);
  }
  return [...out.values()];
}
