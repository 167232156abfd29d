// A small, deterministic writer of OCI image layouts and `oci-archive` files: tar layers
// (POSIX ustar, pax records for long names), gzip, the image config, manifest and index.
// Every byte is a function of the entries given: no clock, no owner or permission bits
// from the build machine, entries in a fixed order. Readers of the result (skopeo, umoci,
// podman, containerd) need nothing from this file.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/** One file-system entry of a layer; `path` is relative to the root, without a leading slash. */
export type Entry =
  | { type: 'dir'; path: string; mode: number; uid?: number; gid?: number }
  | { type: 'file'; path: string; mode: number; data: Buffer; uid?: number; gid?: number }
  | { type: 'symlink'; path: string; target: string };

const BLOCK = 512;

/** Bytes of one tar header field: octal, NUL-terminated, zero-padded to fit. */
function octal(value: number, width: number): string {
  const s = value.toString(8);
  if (s.length > width - 1) throw new RangeError(`tar: ${value} does not fit ${width - 1} octal digits`);
  return s.padStart(width - 1, '0') + '\0';
}

function header(fields: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname?: string; prefix?: string }): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const put = (off: number, width: number, s: string) => {
    const b = Buffer.from(s, 'utf8');
    if (b.length > width) throw new RangeError(`tar: field '${s}' longer than ${width} bytes`);
    b.copy(h, off);
  };
  put(0, 100, fields.name);
  put(100, 8, octal(fields.mode, 8));
  put(108, 8, octal(fields.uid, 8));
  put(116, 8, octal(fields.gid, 8));
  put(124, 12, octal(fields.size, 12));
  put(136, 12, octal(fields.mtime, 12));
  h.fill(0x20, 148, 156); // checksum computed over spaces
  put(156, 1, fields.type);
  put(157, 100, fields.linkname ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(345, 155, fields.prefix ?? '');
  let sum = 0;
  for (const byte of h) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** name/prefix split of ustar, or undefined when the path needs a pax record. */
function ustarName(path: string): { name: string; prefix: string } | undefined {
  if (Buffer.byteLength(path) <= 100 && /^[\x20-\x7e]*$/.test(path)) return { name: path, prefix: '' };
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (/^[\x20-\x7e]*$/.test(path) && prefix.length <= 155 && name.length <= 100 && name.length > 0) return { name, prefix };
  }
  return undefined;
}

function padded(data: Buffer): Buffer[] {
  const rest = data.length % BLOCK;
  return rest === 0 ? [data] : [data, Buffer.alloc(BLOCK - rest, 0)];
}

function paxRecord(key: string, value: string): string {
  // "<len> key=value\n" where len counts itself.
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/**
 * A tar stream of the entries, sorted by path, every mtime `mtime`, owner root unless the
 * entry says otherwise, with parent directories listed before their children.
 */
export function tarLayer(entries: Entry[], mtime: number): Buffer {
  const seen = new Set<string>();
  for (const e of entries) {
    if (!e.path || e.path.startsWith('/') || e.path.endsWith('/') || e.path.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new Error(`layer: bad path '${e.path}'`);
    if (seen.has(e.path)) throw new Error(`layer: '${e.path}' listed twice`);
    seen.add(e.path);
  }
  for (const e of entries) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!seen.has(parent)) throw new Error(`layer: '${e.path}' has no parent directory entry '${parent}'`);
    }
  }
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const out: Buffer[] = [];
  for (const e of sorted) {
    const name = e.type === 'dir' ? `${e.path}/` : e.path;
    const typeflag = e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0';
    const linkname = e.type === 'symlink' ? e.target : '';
    const size = e.type === 'file' ? e.data.length : 0;
    const mode = e.type === 'symlink' ? 0o777 : e.mode;
    const uid = e.type === 'symlink' ? 0 : (e.uid ?? 0);
    const gid = e.type === 'symlink' ? 0 : (e.gid ?? 0);
    const split = ustarName(name);
    const longLink = Buffer.byteLength(linkname) > 100 || !/^[\x20-\x7e]*$/.test(linkname);
    if (!split || longLink) {
      let records = '';
      if (!split) records += paxRecord('path', name);
      if (longLink) records += paxRecord('linkpath', linkname);
      const body = Buffer.from(records, 'utf8');
      out.push(header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, type: 'x' }), ...padded(body));
    }
    const short = split ?? { name: name.slice(-100).replace(/^[^/]*\//, ''), prefix: '' };
    out.push(header({ name: short.name, prefix: short.prefix, mode, uid, gid, size, mtime, type: typeflag, linkname: longLink ? '' : linkname }));
    if (e.type === 'file') out.push(...padded(e.data));
  }
  out.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(out);
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

function blob(mediaType: string, data: Buffer): Blob {
  return { mediaType, digest: sha256(data), size: data.length, data };
}

export interface Layer {
  /** digest of the uncompressed tar (the config's diff_id) */
  diffId: string;
  blob: Blob;
}

/**
 * A gzip-compressed layer. Node's gzip writes no name and a zero timestamp in its header, so
 * equal tars give equal blobs with the same zlib.
 */
export function layer(tar: Buffer): Layer {
  return { diffId: sha256(tar), blob: blob('application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(tar, { level: 9, memLevel: 9 })) };
}

/** Canonical JSON: keys sorted at every level, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface ImageConfig {
  user: string;
  env: string[];
  entrypoint: string[];
  cmd?: string[];
  workingDir: string;
  exposedPorts: string[];
  labels: Record<string, string>;
  created: string;
  history: string[];
}

export interface Image {
  config: Blob;
  manifest: Blob;
  layers: Layer[];
  /** index.json of the layout */
  index: Buffer;
}

/** The OCI config, manifest and index of an image made of these layers (linux/amd64). */
export function image(layers: Layer[], cfg: ImageConfig, refName: string): Image {
  if (cfg.history.length !== layers.length) throw new Error('image: one history line per layer');
  const config = blob(
    'application/vnd.oci.image.config.v1+json',
    Buffer.from(
      canonicalJson({
        architecture: 'amd64',
        os: 'linux',
        created: cfg.created,
        config: {
          User: cfg.user,
          Env: cfg.env,
          Entrypoint: cfg.entrypoint,
          Cmd: cfg.cmd,
          WorkingDir: cfg.workingDir,
          ExposedPorts: Object.fromEntries(cfg.exposedPorts.map((p) => [p, {}])),
          Labels: cfg.labels,
        },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: cfg.history.map((created_by) => ({ created: cfg.created, created_by })),
      }),
    ),
  );
  const manifest = blob(
    'application/vnd.oci.image.manifest.v1+json',
    Buffer.from(
      canonicalJson({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size })),
        annotations: cfg.labels,
      }),
    ),
  );
  const index = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: manifest.mediaType,
          digest: manifest.digest,
          size: manifest.size,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'org.opencontainers.image.ref.name': refName },
        },
      ],
    }),
  );
  return { config, manifest, layers, index };
}

/** The image as an `oci-archive`: a tar of the OCI layout (oci-layout, index.json, blobs/). */
export function ociArchive(img: Image, mtime: number): Buffer {
  const entries: Entry[] = [
    { type: 'file', path: 'oci-layout', mode: 0o644, data: Buffer.from(canonicalJson({ imageLayoutVersion: '1.0.0' })) },
    { type: 'file', path: 'index.json', mode: 0o644, data: img.index },
    { type: 'dir', path: 'blobs', mode: 0o755 },
    { type: 'dir', path: 'blobs/sha256', mode: 0o755 },
  ];
  const blobs = new Map<string, Blob>();
  for (const b of [img.config, img.manifest, ...img.layers.map((l) => l.blob)]) blobs.set(b.digest, b);
  for (const b of blobs.values()) entries.push({ type: 'file', path: `blobs/sha256/${b.digest.slice('sha256:'.length)}`, mode: 0o644, data: b.data });
  return tarLayer(entries, mtime);
}
