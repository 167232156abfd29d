import type { Batch, Labels } from '../../core/store.js';
import { fresh, type PodAllocationList } from '../../ports/index.js';

/** One series as a batch holds it. */
export type BatchEntry = Batch['entries'][number];

const EMPTY = { namespace: '', pod: '', container: '' } as const;

interface Holder {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
}

function add(index: Map<string, Map<string, Holder>>, key: string, h: Holder): void {
  let m = index.get(key);
  if (!m) index.set(key, (m = new Map()));
  m.set(`${h.namespace}\u0000${h.pod}\u0000${h.container}`, h);
}

/**
 * The `--kubelet.enrich-labels` post-pass over the entries the GPU collector wrote in one
 * sample. Each entry of an enriched family gets `namespace`, `pod`, `container` of the
 * containers holding its device: none gives empty values, several (time-slicing) give one
 * entry per holder with the same value. The device is the GPU (`uuid`) for whole-GPU
 * series, the MIG device for `ds_gpu_mig_*` series (its `mig_uuid`, looked up through
 * `ds_gpu_mig_info` of the same sample by `uuid` and `gpu_instance`). Allocations older
 * than their bound are not used, so the labels of a kubelet that stopped answering go
 * empty instead of staying frozen. Pure: the input entries are not changed.
 */
export function enrichWithPods(entries: readonly BatchEntry[], families: ReadonlySet<string>, allocations: PodAllocationList | undefined, nowMs: number): BatchEntry[] {
  const byDevice = new Map<string, Map<string, Holder>>();
  for (const a of fresh(allocations, nowMs)?.allocations ?? []) {
    const h = { namespace: a.namespace, pod: a.pod, container: a.container };
    if (a.uuid) add(byDevice, a.uuid.toLowerCase(), h);
    // A device named by index before the GPU collector listed its UUID.
    else if (a.gpu) add(byDevice, `#${a.gpu}`, h);
  }
  const migUuid = new Map<string, string>();
  for (const e of entries) {
    if (e.name === 'ds_gpu_mig_info') migUuid.set(`${e.labels.uuid}\u0000${e.labels.gpu_instance}`, e.labels.mig_uuid);
  }
  const out: BatchEntry[] = [];
  for (const e of entries) {
    if (!families.has(e.name)) {
      out.push(e);
      continue;
    }
    const l = e.labels;
    let holders: Map<string, Holder> | undefined;
    if (l.mig_uuid !== undefined) holders = byDevice.get(l.mig_uuid.toLowerCase());
    else if (l.gpu_instance !== undefined) {
      const mig = migUuid.get(`${l.uuid}\u0000${l.gpu_instance}`);
      holders = mig ? byDevice.get(mig.toLowerCase()) : undefined;
    } else {
      const byUuid = l.uuid ? byDevice.get(l.uuid.toLowerCase()) : undefined;
      const byIndex = byDevice.get(`#${l.gpu}`);
      holders = byUuid && byIndex ? new Map([...byUuid, ...byIndex]) : (byUuid ?? byIndex);
    }
    if (!holders || holders.size === 0) {
      out.push({ ...e, labels: withPod(l, EMPTY) });
      continue;
    }
    for (const h of holders.values()) out.push({ ...e, labels: withPod(l, h) });
  }
  return out;
}

function withPod(l: Labels, h: Holder): Labels {
  return { ...l, namespace: h.namespace, pod: h.pod, container: h.container };
}
