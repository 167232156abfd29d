import { readdir, readFile, readlink } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { ConfigError } from '../../core/errors.js';

/**
 * Which GPUs an engine target runs on, for the cost-per-token rules (`ds_engine_gpu_info`).
 * Three ways, and the first that answers wins:
 *
 * 1. `flag`: `#gpus=` on the target (`vllm=http://127.0.0.1:8000/metrics#gpus=0-3`): what the
 *    operator says. Indices, ranges and UUIDs, joined by `+`.
 * 2. `nvml_processes`: the process listening on the target's port on this host, and its
 *    descendants (engine workers), found in the GPU process lists NVML reports
 *    (`--nvml.process-memory`). What the engine really uses.
 * 3. `kubelet`: `#pod=NAMESPACE/NAME` on the target: the GPUs the kubelet allocated to that
 *    pod (`--collector.kubelet`), for an engine whose processes this exporter cannot see.
 *
 * None answers: no series, and the log says why once; never a guess.
 */

/** One item of `#gpus=`: an index, an inclusive range of indices, or a UUID. */
export type GpuSpec = { readonly index: number } | { readonly from: number; readonly to: number } | { readonly uuid: string };

/** What a target says about its GPUs, from the URL fragment. */
export interface TargetGpuOptions {
  readonly gpus?: readonly GpuSpec[];
  readonly pod?: { readonly namespace: string; readonly pod: string };
}

const MAX_INDEX = 1023;

/** Parses the fragment of an `--engine.target` URL (`gpus=0-3+7&pod=ns/name`, without `#`). Throws ConfigError. Pure. */
export function parseTargetOptions(fragment: string, value: string): TargetGpuOptions {
  if (fragment === '') return {};
  let gpus: GpuSpec[] | undefined;
  let pod: { namespace: string; pod: string } | undefined;
  for (const part of fragment.split('&')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (key === 'gpus') {
      if (gpus) throw new ConfigError(`--engine.target: "${value}" names gpus twice`);
      gpus = parseGpuList(v, value);
    } else if (key === 'pod') {
      if (pod) throw new ConfigError(`--engine.target: "${value}" names pod twice`);
      const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(v);
      if (!m || v.length > 317) throw new ConfigError(`--engine.target: pod "${v}" in "${value}" is not NAMESPACE/NAME`);
      pod = { namespace: m[1], pod: m[3] };
    } else {
      throw new ConfigError(`--engine.target: unknown option "${key}" after # in "${value}" (gpus=0+1 or 0-3 or GPU-..., pod=NAMESPACE/NAME)`);
    }
  }
  return { gpus, pod };
}

function parseGpuList(list: string, value: string): GpuSpec[] {
  const items = list.split('+').map((x) => x.trim());
  if (items.length === 0 || items.some((x) => x === '')) throw new ConfigError(`--engine.target: gpus "${list}" in "${value}" is empty or has an empty item (join GPUs with +: gpus=0+1, gpus=0-3, gpus=GPU-...)`);
  if (items.length > 64) throw new ConfigError(`--engine.target: gpus in "${value}" names more than 64 items`);
  return items.map((x) => {
    let m = /^(\d{1,4})$/.exec(x);
    if (m) {
      const index = Number(m[1]);
      if (index > MAX_INDEX) throw new ConfigError(`--engine.target: GPU index ${index} in "${value}" is out of range (0-${MAX_INDEX})`);
      return { index };
    }
    m = /^(\d{1,4})-(\d{1,4})$/.exec(x);
    if (m) {
      const from = Number(m[1]);
      const to = Number(m[2]);
      if (from > to || to > MAX_INDEX) throw new ConfigError(`--engine.target: GPU range ${x} in "${value}" is empty or out of range (0-${MAX_INDEX})`);
      return { from, to };
    }
    if (/^(GPU|MIG)-[A-Za-z0-9-]{1,92}$/.test(x)) return { uuid: x };
    throw new ConfigError(`--engine.target: "${x}" in "${value}" is neither a GPU index, a range (0-3) nor a UUID (GPU-...)`);
  });
}

/** A GPU of this host: index and UUID (as the GPU collector lists them). */
export interface HostGpu {
  readonly index: number;
  readonly uuid: string;
}

/** One GPU of an engine: the labels of ds_engine_gpu_info besides the engine's. */
export interface EngineGpu {
  readonly gpu: string;
  readonly uuid: string;
}

export type GpuSource = 'flag' | 'nvml_processes' | 'kubelet';

/** The answer for one target: its GPUs and how they were learned, or why they are unknown. */
export type GpuResolution = { readonly source: GpuSource; readonly gpus: readonly EngineGpu[] } | { readonly source?: undefined; readonly why: string };

/** What the resolver can see this sample; absent parts are not available (collector off, not fresh). */
export interface GpuEvidence {
  /** GPUs of the host; undefined before the GPU collector listed them. */
  readonly hostGpus?: readonly HostGpu[];
  /** Processes per GPU (NVML); undefined without --nvml.process-memory or while not fresh. */
  readonly processes?: ReadonlyArray<{ readonly gpu: string; readonly uuid: string; readonly pids: readonly number[] }>;
  /** Pids of the engine (the listener on its port and its descendants); undefined when not looked up or not local. */
  readonly enginePids?: ReadonlySet<number>;
  /** Kubelet allocations; undefined without the kubelet collector or while not fresh. */
  readonly allocations?: ReadonlyArray<{ readonly gpu: string; readonly uuid: string; readonly namespace: string; readonly pod: string }>;
}

/** Resolves a target's GPUs from its options and the evidence, flag first. Pure. */
export function resolveGpus(opts: TargetGpuOptions, ev: GpuEvidence): GpuResolution {
  if (opts.gpus) {
    if (!ev.hostGpus) return { why: '#gpus= is given but the GPU collector has not listed the GPUs of this host yet' };
    const out = new Map<string, EngineGpu>();
    for (const spec of opts.gpus) {
      const wanted: Array<(g: HostGpu) => boolean> = 'uuid' in spec
        ? [(g) => g.uuid.toLowerCase() === spec.uuid.toLowerCase()]
        : 'index' in spec ? [(g) => g.index === spec.index]
          : Array.from({ length: spec.to - spec.from + 1 }, (_, k) => (g: HostGpu) => g.index === spec.from + k);
      for (const w of wanted) {
        const g = ev.hostGpus.find(w);
        if (!g) return { why: `#gpus= names ${describeSpec(spec)}, which is not a GPU of this host (${ev.hostGpus.map((h) => h.index).join(', ') || 'none'})` };
        out.set(g.uuid, { gpu: String(g.index), uuid: g.uuid });
      }
    }
    return { source: 'flag', gpus: sortGpus([...out.values()]) };
  }
  const reasons: string[] = [];
  if (ev.processes && ev.enginePids && ev.enginePids.size > 0) {
    const gpus = ev.processes.filter((p) => p.pids.some((pid) => ev.enginePids!.has(pid))).map((p) => ({ gpu: p.gpu, uuid: p.uuid }));
    if (gpus.length > 0) return { source: 'nvml_processes', gpus: sortGpus(gpus) };
    reasons.push(`none of the engine's ${ev.enginePids.size} processes is in the GPU process lists`);
  } else if (!ev.processes) reasons.push('no GPU process lists (--nvml.process-memory)');
  else reasons.push('no local process listens on the target\'s port');
  if (opts.pod) {
    if (!ev.allocations) reasons.push('#pod= is given but no kubelet allocations are at hand (--collector.kubelet)');
    else {
      const gpus = ev.allocations.filter((a) => a.namespace === opts.pod!.namespace && a.pod === opts.pod!.pod && a.uuid !== '').map((a) => ({ gpu: a.gpu, uuid: a.uuid }));
      if (gpus.length > 0) return { source: 'kubelet', gpus: sortGpus(dedupe(gpus)) };
      reasons.push(`the kubelet allocates no GPU to ${opts.pod.namespace}/${opts.pod.pod}`);
    }
  } else reasons.push('no #gpus= or #pod= on the target');
  return { why: reasons.join('; ') };
}

function describeSpec(s: GpuSpec): string {
  return 'uuid' in s ? s.uuid : 'index' in s ? `GPU ${s.index}` : `GPUs ${s.from}-${s.to}`;
}
function dedupe(gpus: EngineGpu[]): EngineGpu[] {
  return [...new Map(gpus.map((g) => [g.uuid, g])).values()];
}
function sortGpus(gpus: EngineGpu[]): EngineGpu[] {
  return dedupe(gpus).sort((a, b) => Number(a.gpu) - Number(b.gpu) || a.uuid.localeCompare(b.uuid));
}

/** True when `hostname` (from a target URL) is this host: localhost or an address of one of its interfaces. */
export function isLocalHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '127.0.0.1' || h === '::1' || h.startsWith('127.')) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address.toLowerCase() === h));
}

/**
 * Socket inodes listening on `port`, from the text of /proc/net/tcp or tcp6. Pure.
 * Columns: sl, local_address (hex ip:hex port), rem_address, st (0A = LISTEN), ..., inode (10th).
 */
export function listeningInodes(text: string, port: number): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = f[1];
    const colon = local.lastIndexOf(':');
    if (colon < 0 || parseInt(local.slice(colon + 1), 16) !== port || f[3] !== '0A') continue;
    if (/^\d+$/.test(f[9]) && f[9] !== '0') out.add(f[9]);
  }
  return out;
}

/** The parent pid from the text of /proc/PID/stat (the command may hold spaces and parentheses). Pure. */
export function parentPid(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = stat.slice(close + 2).split(' ');
  const ppid = Number(f[1]);
  return Number.isInteger(ppid) && ppid >= 0 ? ppid : undefined;
}

/** Every pid under /proc. */
async function pids(procPath: string): Promise<number[]> {
  const names = await readdir(procPath).catch(() => [] as string[]);
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/**
 * Pids of the processes listening on `port` in this network namespace, and all their
 * descendants (an engine's API server forks its GPU workers). Reads /proc; processes
 * whose fds cannot be read (other users without privileges) are skipped. An empty set
 * when nothing listens.
 */
export async function enginePids(port: number, procPath = '/proc'): Promise<Set<number>> {
  const inodes = new Set<string>();
  for (const f of ['tcp', 'tcp6']) {
    const text = await readFile(`${procPath}/net/${f}`, 'utf8').catch(() => '');
    for (const i of listeningInodes(text, port)) inodes.add(i);
  }
  const found = new Set<number>();
  if (inodes.size === 0) return found;
  const all = await pids(procPath);
  for (const pid of all) {
    const fds = await readdir(`${procPath}/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`${procPath}/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1])) {
        found.add(pid);
        break;
      }
    }
  }
  if (found.size === 0) return found;
  const children = new Map<number, number[]>();
  for (const pid of all) {
    const stat = await readFile(`${procPath}/${pid}/stat`, 'utf8').catch(() => '');
    const ppid = parentPid(stat);
    if (ppid === undefined) continue;
    let list = children.get(ppid);
    if (!list) children.set(ppid, (list = []));
    list.push(pid);
  }
  const queue = [...found];
  while (queue.length > 0) {
    for (const c of children.get(queue.pop()!) ?? []) {
      if (!found.has(c)) {
        found.add(c);
        queue.push(c);
      }
    }
  }
  return found;
}
