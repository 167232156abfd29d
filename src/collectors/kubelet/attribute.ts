import type { GpuAllocation } from './match.js';

/** One process NVML lists on a GPU, with what its cgroup says (empty strings: unknown). */
export interface GpuProcess {
  readonly gpu: string;
  /** UUID of the GPU (a process on a MIG device is listed on its parent GPU). */
  readonly uuid: string;
  readonly pid: number;
  readonly podUid: string;
  readonly containerId: string;
}

/** A GPU and its MIG devices: a pod may hold the GPU or one of them. */
export interface AttributedGpu {
  readonly gpu: string;
  readonly uuid: string;
  readonly migUuids: readonly string[];
}

/** The labels of `ds_gpu_process_info`. */
export interface ProcessInfo {
  readonly gpu: string;
  readonly uuid: string;
  readonly pid: string;
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
  readonly pod_uid: string;
  readonly container_id: string;
}

/** What one round learned, kept for the next: pod UID → pod, container ID → container name. */
export interface Learned {
  readonly pods: ReadonlyMap<string, { readonly namespace: string; readonly pod: string }>;
  readonly containers: ReadonlyMap<string, string>;
}

export const NOTHING_LEARNED: Learned = { pods: new Map(), containers: new Map() };

const podKey = (namespace: string, pod: string) => `${namespace}\u0000${pod}`;

/**
 * Attributes GPU processes to pods. The pod-resources API names pods, not their UIDs, and a
 * process's cgroup names the UID, not the pod, so the UID → pod mapping is learned:
 *
 * 1. A GPU held by exactly one pod whose processes all show one pod UID: that UID is that pod.
 * 2. Otherwise by elimination: a UID whose processes' GPUs all belong to exactly one pod not
 *    already claimed by another UID is that pod (repeated until nothing changes; two UIDs
 *    pointing at the same pod in one round both stay unresolved).
 * 3. A mapping learned in an earlier round holds while the UID still has processes and the
 *    pod still holds GPUs, unless this round contradicts it.
 *
 * The container is the pod's only container holding the process's GPU, else the one learned
 * for the process's container ID where that was unambiguous, else empty. A process whose
 * cgroup names no pod (host process, unreadable /proc) stays unresolved: namespace, pod and
 * container empty. Pure.
 */
export function attributeProcesses(processes: readonly GpuProcess[], gpus: readonly AttributedGpu[], allocations: readonly GpuAllocation[], previous: Learned = NOTHING_LEARNED): { rows: ProcessInfo[]; learned: Learned } {
  // Who holds each GPU: pod key → container names.
  const deviceToGpu = new Map<string, string>();
  for (const g of gpus) {
    deviceToGpu.set(g.uuid.toLowerCase(), g.uuid);
    for (const m of g.migUuids) deviceToGpu.set(m.toLowerCase(), g.uuid);
  }
  const byIndex = new Map(gpus.map((g) => [g.gpu, g.uuid]));
  const holders = new Map<string, Map<string, Set<string>>>();
  const podRef = new Map<string, { namespace: string; pod: string }>();
  const podGpus = new Map<string, Set<string>>();
  for (const a of allocations) {
    const gpu = a.uuid ? deviceToGpu.get(a.uuid.toLowerCase()) : byIndex.get(a.gpu);
    if (!gpu) continue;
    const key = podKey(a.namespace, a.pod);
    podRef.set(key, { namespace: a.namespace, pod: a.pod });
    let h = holders.get(gpu);
    if (!h) holders.set(gpu, (h = new Map()));
    let cs = h.get(key);
    if (!cs) h.set(key, (cs = new Set()));
    cs.add(a.container);
    let pg = podGpus.get(key);
    if (!pg) podGpus.set(key, (pg = new Set()));
    pg.add(gpu);
  }

  // The GPUs each pod UID has processes on.
  const uidGpus = new Map<string, Set<string>>();
  const gpuUids = new Map<string, Set<string>>();
  for (const p of processes) {
    if (!p.podUid) continue;
    let s = uidGpus.get(p.podUid);
    if (!s) uidGpus.set(p.podUid, (s = new Set()));
    s.add(p.uuid);
    let u = gpuUids.get(p.uuid);
    if (!u) gpuUids.set(p.uuid, (u = new Set()));
    u.add(p.podUid);
  }

  // Proposals from this round (rule 1) and the last (rule 3); a UID or a pod proposed twice differently is ambiguous.
  const proposals = new Map<string, Set<string>>();
  const propose = (uid: string, key: string) => {
    let s = proposals.get(uid);
    if (!s) proposals.set(uid, (s = new Set()));
    s.add(key);
  };
  for (const [gpu, h] of holders) {
    const uids = gpuUids.get(gpu);
    if (h.size === 1 && uids?.size === 1) propose([...uids][0], [...h.keys()][0]);
  }
  for (const [uid, ref] of previous.pods) {
    const key = podKey(ref.namespace, ref.pod);
    if (uidGpus.has(uid) && podRef.has(key) && !proposals.has(uid)) propose(uid, key);
  }
  const mapped = new Map<string, string>();
  const ambiguous = new Set<string>();
  for (const [uid, keys] of proposals) {
    if (keys.size === 1) mapped.set(uid, [...keys][0]);
    else ambiguous.add(uid);
  }
  dropSharedPods(mapped, ambiguous);

  // Rule 2: elimination by GPU sets.
  for (let changed = true; changed; ) {
    changed = false;
    const claimed = new Set(mapped.values());
    const round = new Map<string, string>();
    for (const [uid, used] of uidGpus) {
      if (mapped.has(uid) || ambiguous.has(uid)) continue;
      const candidates: string[] = [];
      for (const [key, held] of podGpus) {
        if (claimed.has(key)) continue;
        let all = true;
        for (const g of used) if (!held.has(g)) all = false;
        if (all) candidates.push(key);
      }
      if (candidates.length === 1) round.set(uid, candidates[0]);
    }
    const perPod = new Map<string, number>();
    for (const key of round.values()) perPod.set(key, (perPod.get(key) ?? 0) + 1);
    for (const [uid, key] of round) {
      if (perPod.get(key) !== 1) continue;
      mapped.set(uid, key);
      changed = true;
    }
  }

  // Containers: the pod's only container on the GPU, else a container ID learned unambiguously.
  const onlyContainer = (key: string, gpu: string): string | undefined => {
    const cs = holders.get(gpu)?.get(key);
    return cs?.size === 1 ? [...cs][0] : undefined;
  };
  const containerVotes = new Map<string, Set<string>>();
  for (const p of processes) {
    const key = mapped.get(p.podUid);
    const c = key && p.containerId ? onlyContainer(key, p.uuid) : undefined;
    if (c === undefined) continue;
    let s = containerVotes.get(p.containerId);
    if (!s) containerVotes.set(p.containerId, (s = new Set()));
    s.add(c);
  }
  const containers = new Map<string, string>();
  const seenIds = new Set(processes.map((p) => p.containerId).filter(Boolean));
  for (const [id, name] of previous.containers) if (seenIds.has(id)) containers.set(id, name);
  for (const [id, names] of containerVotes) {
    if (names.size === 1) containers.set(id, [...names][0]);
    else containers.delete(id);
  }

  const rows: ProcessInfo[] = processes.map((p) => {
    const key = p.podUid ? mapped.get(p.podUid) : undefined;
    const ref = key ? podRef.get(key) : undefined;
    let container = '';
    if (key) {
      container = onlyContainer(key, p.uuid) ?? '';
      const learnedName = p.containerId ? containers.get(p.containerId) : undefined;
      // A learned name counts only where the pod has such a container on some GPU.
      if (!container && learnedName && [...holders.values()].some((h) => h.get(key)?.has(learnedName))) container = learnedName;
    }
    return { gpu: p.gpu, uuid: p.uuid, pid: String(p.pid), namespace: ref?.namespace ?? '', pod: ref?.pod ?? '', container, pod_uid: p.podUid, container_id: p.containerId };
  });
  const pods = new Map<string, { namespace: string; pod: string }>();
  for (const [uid, key] of mapped) pods.set(uid, podRef.get(key)!);
  return { rows, learned: { pods, containers } };
}

/** A pod has one UID: when two UIDs map to the same pod, neither is trusted. */
function dropSharedPods(mapped: Map<string, string>, ambiguous: Set<string>): void {
  const count = new Map<string, number>();
  for (const key of mapped.values()) count.set(key, (count.get(key) ?? 0) + 1);
  for (const [uid, key] of mapped) {
    if ((count.get(key) ?? 0) > 1) {
      mapped.delete(uid);
      ambiguous.add(uid);
    }
  }
}
