import { open } from 'node:fs/promises';
import { join } from 'node:path';

/** The Kubernetes pod and container a process runs in, as its cgroup path names them. */
export interface CgroupIdentity {
  /** Pod UID, lowercase with dashes (`1f0e…-…`), or 32 hex digits for static pods. */
  readonly podUid: string;
  /** Container ID (hex) without the runtime's prefix; empty when the process sits in the pod's own cgroup. */
  readonly containerId: string;
}

const QOS = new Set(['burstable', 'besteffort', 'guaranteed']);
/** Longer segments are no cgroup name Kubernetes makes; skipping them keeps parsing cheap. */
const MAX_SEGMENT = 256;

/** `1f0e..._...` (systemd) or `1f0e...-...` (cgroupfs) → canonical pod UID, or undefined. */
function podUid(raw: string): string | undefined {
  const u = raw.toLowerCase().replace(/_/g, '-');
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(u) || /^[0-9a-f]{32}$/.test(u)) return u;
  return undefined;
}

/**
 * The pod UID in one path segment: systemd driver `kubepods[-<qos>]-pod<uid_with_underscores>.slice`
 * (also with a prefix, e.g. `kubelet-kubepods-…` in nested clusters), cgroupfs driver
 * `pod<uid>` below a `kubepods` segment.
 */
function podOf(segment: string, underKubepods: boolean): string | undefined {
  if (segment.endsWith('.slice')) {
    const i = segment.lastIndexOf('-pod');
    if (i < 0) return undefined;
    const parts = segment.slice(0, i).split('-');
    let k = parts.length - 1;
    if (QOS.has(parts[k])) k--;
    if (parts[k] !== 'kubepods') return undefined;
    return podUid(segment.slice(i + 4, -'.slice'.length));
  }
  if (underKubepods && segment.startsWith('pod')) return podUid(segment.slice(3));
  return undefined;
}

/**
 * The container ID in the segment below the pod's: `cri-containerd-<id>.scope` (containerd),
 * `crio-<id>.scope` (CRI-O), `docker-<id>.scope` (Docker) with the systemd driver; the bare
 * `<id>` or `crio-<id>` with cgroupfs. Anything else (e.g. CRI-O's `crio-conmon-<id>.scope`
 * monitor) is no container: empty.
 */
function containerOf(segment: string | undefined): string {
  if (segment === undefined) return '';
  const m = /^(?:(?:cri-containerd|crio|docker|containerd)-)?([0-9a-f]{12,128})(?:\.scope)?$/i.exec(segment);
  return m ? m[1].toLowerCase() : '';
}

/** The identity one cgroup path gives, or undefined for a path outside Kubernetes' pods. */
function identityOfPath(path: string): CgroupIdentity | undefined {
  const segments = path.split('/');
  let underKubepods = false;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.length === 0 || s.length > MAX_SEGMENT) continue;
    const uid = podOf(s, underKubepods);
    if (uid) return { podUid: uid, containerId: containerOf(segments[i + 1]) };
    if (s === 'kubepods' || s.endsWith('kubepods.slice') || s.endsWith('-kubepods')) underKubepods = true;
  }
  return undefined;
}

/**
 * Parses `/proc/<pid>/cgroup` (`hierarchy:controllers:path` lines, cgroup v1, v2 or both)
 * into the pod and container of the process; undefined for a process outside Kubernetes
 * pods or text that is not a cgroup file. Paths relative to another cgroup namespace
 * (`0::/../../kubepods-…`) are understood too. A line whose path names a container wins
 * over one naming only the pod. Pure; linear in the input.
 */
export function parseCgroup(text: string): CgroupIdentity | undefined {
  let podOnly: CgroupIdentity | undefined;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    const first = line.indexOf(':');
    const second = first >= 0 ? line.indexOf(':', first + 1) : -1;
    if (second >= 0 && /^\d+$/.test(line.slice(0, first))) {
      const id = identityOfPath(line.slice(second + 1));
      if (id?.containerId) return id;
      podOnly ??= id;
    }
    start = end + 1;
  }
  return podOnly;
}

/** What reading `/proc/<pid>/cgroup` gave. */
export type CgroupRead =
  | { readonly ok: true; readonly text: string }
  /** `gone`: the process exited between NVML's list and this read (or is not in this pid namespace). */
  | { readonly ok: false; readonly gone: boolean; readonly error: string };

/** Bytes read of one cgroup file at most: real ones are a few hundred bytes. */
export const CGROUP_MAX_BYTES = 64 * 1024;

/**
 * Reads `<procPath>/<pid>/cgroup`, at most `maxBytes`. Never throws: a process that exited
 * (ENOENT, ESRCH) is `gone`, any other failure is reported as such.
 */
export async function readProcCgroup(procPath: string, pid: number | 'self', maxBytes = CGROUP_MAX_BYTES): Promise<CgroupRead> {
  if (pid !== 'self' && (!Number.isSafeInteger(pid) || pid <= 0)) return { ok: false, gone: true, error: `invalid pid ${pid}` };
  let fh;
  try {
    fh = await open(join(procPath, String(pid), 'cgroup'), 'r');
    const buf = Buffer.alloc(maxBytes);
    let n = 0;
    while (n < maxBytes) {
      const { bytesRead } = await fh.read(buf, n, maxBytes - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { ok: true, text: buf.toString('utf8', 0, n) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, gone: code === 'ENOENT' || code === 'ESRCH', error: code ?? String(err) };
  } finally {
    await fh?.close().catch(() => {});
  }
}
