// `npm run image`: builds the exporter's OCI image archive without a container engine or a
// registry. The root file system holds exactly what the exporter runs on: the Node.js
// binary that runs this build, the shared libraries it and koffi's native module load
// (resolved with ldd, taken from the Debian packages installed on this machine), a passwd
// and group entry for the non-root user, /tmp, and /app: the package as `npm pack` makes
// it with its production dependencies, pruned like the Dockerfile prunes them. No shell,
// no package manager. The tar layers, config and manifest are written by scripts/image/oci.ts
// with SOURCE_DATE_EPOCH (the commit time) as every timestamp, so two builds of a commit on
// the same machine give the same digests.
//
//   npm run image [-- --output PATH] [--no-cache] [--node PATH] [--app-dir DIR]
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, cpSync, chmodSync, utimesSync, writeFileSync, openSync, closeSync, writeSync, fsyncSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { basename, delimiter, dirname, join, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type Entry, type Layer, image, layer, ociArchive, sha256, tarLayer } from './oci.js';
import { prune } from './prune.mjs';

export const ROOT = resolve(import.meta.dirname, '../..');
export const DEFAULT_OUTPUT = 'dist/ds-exporter-oci.tar';
/** The image's user and group (the chart's runAsUser/runAsGroup). */
export const IMAGE_UID = 65532;
export const LIB_DIR = 'usr/lib/x86_64-linux-gnu';
/** What `npm pack` puts in the tarball is built from these (package.json "files" + build inputs). */
const PACK_INPUTS = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs', 'src', 'assets', 'dashboards', 'alerts', 'docs', 'README.md'];
/** Debian packages that provide the tools the build runs. */
const TOOLS: Record<string, string> = { npm: 'npm', ldd: 'libc-bin', git: 'git', tar: 'tar' };

export class ImageError extends Error {}

export interface Options {
  output: string;
  /** an /app tree already packed and installed (as the Dockerfile's build stage leaves it) */
  appDir?: string;
  cache: boolean;
  node: string;
  cacheDir: string;
  log: (line: string) => void;
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Options {
  const opts: Options = {
    output: resolve(ROOT, DEFAULT_OUTPUT),
    cache: true,
    node: process.execPath,
    cacheDir: join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ds-exporter', 'image'),
    log: (line) => process.stderr.write(`${line}\n`),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (name: string): string => {
      if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
      const v = argv[++i];
      if (v === undefined || v === '') throw new ImageError(`${name} needs a value`);
      return v;
    };
    if (a === '--output' || a.startsWith('--output=')) opts.output = resolve(value('--output'));
    else if (a === '--node' || a.startsWith('--node=')) opts.node = resolve(value('--node'));
    else if (a === '--app-dir' || a.startsWith('--app-dir=')) opts.appDir = resolve(value('--app-dir'));
    else if (a === '--no-cache') opts.cache = false;
    else if (a === '--help' || a === '-h') throw new ImageError('usage: npm run image [-- --output PATH] [--no-cache] [--node PATH] [--app-dir DIR]');
    else throw new ImageError(`unknown argument '${a}' (usage: npm run image [-- --output PATH] [--no-cache] [--node PATH] [--app-dir DIR])`);
  }
  if (opts.output.endsWith('/') || (existsSync(opts.output) && statSync(opts.output).isDirectory())) throw new ImageError(`--output ${opts.output} is a directory; give the archive's file name`);
  return opts;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Every tool the build runs is on PATH; else one line naming the Debian package. */
export function checkTools(): void {
  for (const [tool, pkg] of Object.entries(TOOLS)) {
    if (!which(tool)) throw new ImageError(`${tool} not found: install the Debian package ${pkg} (apt-get install ${pkg})`);
  }
}

/** The Node.js binary copied into the image: Node 20 or newer, x86-64 Linux. */
export function checkNode(node: string): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new ImageError(`builds linux/amd64 images on x86-64 Linux only; this is ${process.platform}/${process.arch}`);
  if (!existsSync(node)) throw new ImageError(`the Node.js runtime ${node} does not exist`);
  const r = spawnSync(node, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const version = r.stdout?.trim() ?? '';
  const m = /^v(\d+)\.\d+\.\d+$/.exec(version);
  if (r.status !== 0 || !m) throw new ImageError(`${node} --version did not print a Node.js version (${(r.stderr || version || String(r.error)).trim().slice(0, 200)})`);
  if (Number(m[1]) < 20) throw new ImageError(`the image needs Node.js 20 or newer and copies the build's own runtime; ${node} is ${version}: run the build with Node.js 20+ (or pass --node PATH)`);
  return version;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error) throw new ImageError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new ImageError(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
  return r.stdout;
}

/** The environment of npm without the variables of an enclosing `npm run`. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

export interface Source {
  epoch: number;
  revision: string;
  version: string;
  files: string[];
}

/** What the build reads from the checkout: the pack inputs, their hash, the commit and its time. */
export function readSource(env: NodeJS.ProcessEnv = process.env): Source {
  const files = run('git', ['ls-files', '-co', '--exclude-standard', '--', ...PACK_INPUTS], ROOT)
    .split('\n')
    .filter((f) => f && existsSync(join(ROOT, f)))
    .sort();
  let epoch: number;
  if (env.SOURCE_DATE_EPOCH !== undefined) {
    if (!/^\d{1,12}$/.test(env.SOURCE_DATE_EPOCH)) throw new ImageError(`SOURCE_DATE_EPOCH='${env.SOURCE_DATE_EPOCH}' is not a number of seconds`);
    epoch = Number(env.SOURCE_DATE_EPOCH);
  } else {
    epoch = Number(run('git', ['log', '-1', '--format=%ct'], ROOT).trim());
    if (!Number.isFinite(epoch) || epoch <= 0) throw new ImageError('no commit time: set SOURCE_DATE_EPOCH or build from a git checkout with a commit');
  }
  const head = run('git', ['rev-parse', 'HEAD'], ROOT).trim();
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no', '--', ...PACK_INPUTS], ROOT).trim() !== '';
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  return { epoch, revision: dirty ? `${head}-modified` : head, version, files };
}

/** A directory produced by `make` into a temporary sibling, then moved into the cache. */
function cached(opts: Options, name: string, make: (dir: string) => void): { dir: string; hit: boolean } {
  if (!opts.cache) {
    const dir = mkdtempSync(join(tmpdir(), `ds-image-${name}-`));
    try {
      make(dir);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return { dir, hit: false };
  }
  const dir = join(opts.cacheDir, name);
  if (existsSync(join(dir, '.complete'))) {
    const now = new Date();
    utimesSync(dir, now, now);
    return { dir, hit: true };
  }
  mkdirSync(opts.cacheDir, { recursive: true });
  const tmp = mkdtempSync(join(opts.cacheDir, `.${name}-`));
  try {
    make(tmp);
    writeFileSync(join(tmp, '.complete'), '');
    // Checkouts share the cache: a build that finished the same entry first wins, and an
    // entry is never replaced under a build that reads it.
    if (existsSync(dir) && !existsSync(join(dir, '.complete'))) rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(join(dir, '.complete'))) return { dir, hit: true };
    throw err;
  }
  return { dir, hit: false };
}

/** The pack inputs copied into `dir`, with the repository's dev dependencies linked in. */
function copyInputs(src: Source, dir: string, only: (f: string) => boolean = () => true): void {
  for (const f of src.files.filter(only)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  if (!existsSync(join(ROOT, 'node_modules/typescript'))) throw new ImageError('node_modules/typescript missing: run npm ci first (the build compiles with the dev dependencies)');
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
}

/** The compiler's inputs: what `npm run build` reads. */
const compileInput = (f: string) => f.startsWith('src/') || /^(package\.json|package-lock\.json|tsconfig(\.build)?\.json|scripts\/build\.mjs)$/.test(f);

export function compileKey(src: Source): string {
  const h = createHash('sha256');
  for (const f of src.files.filter(compileInput)) h.update(`${f}\0`).update(readFileSync(join(ROOT, f))).update('\0');
  const tsc = join(ROOT, 'node_modules/typescript/package.json');
  if (existsSync(tsc)) h.update(readFileSync(tsc));
  return h.digest('hex').slice(0, 32);
}

/** The compiler as `prepare` runs it (tsc -p tsconfig.build.json) in a copy of its inputs; dist/ moved into `out`. */
function compileInto(src: Source, out: string): void {
  const work = mkdtempSync(join(tmpdir(), 'ds-image-build-'));
  try {
    copyInputs(src, work, compileInput);
    run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], work, npmEnv());
    cpSync(join(work, 'dist'), join(out, 'dist'), { recursive: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * As the Dockerfile's build stage: `npm pack --ignore-scripts` of the inputs with the compiled
 * dist/, unpacked into `out` (package/ stripped), the lockfile next to its package.json.
 */
function packInto(src: Source, dist: string, out: string): void {
  const work = mkdtempSync(join(tmpdir(), 'ds-image-pack-'));
  try {
    const copy = join(work, 'src');
    copyInputs(src, copy);
    cpSync(dist, join(copy, 'dist'), { recursive: true });
    const stdout = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], copy, npmEnv());
    const info = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string }[];
    run('tar', ['-xzf', join(work, info[0].filename), '-C', out, '--strip-components=1', '--no-same-owner'], work);
    cpSync(join(ROOT, 'package-lock.json'), join(out, 'package-lock.json'));
    // The bin scripts executable, as npm install makes them (and the Dockerfile's chmod).
    const bin = (JSON.parse(readFileSync(join(out, 'package.json'), 'utf8')) as { bin?: Record<string, string> }).bin ?? {};
    for (const target of Object.values(bin)) chmodSync(join(out, target), 0o755);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Production dependencies of the packed package (npm ci --omit=dev), pruned, into `out`. */
function depsInto(app: string, out: string): void {
  cpSync(join(app, 'package.json'), join(out, 'package.json'));
  cpSync(join(app, 'package-lock.json'), join(out, 'package-lock.json'));
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], out, { ...npmEnv(), NODE_ENV: 'production' });
  prune(out);
}

/** Files of a directory as layer entries under `prefix`, read-only for everyone but root. */
export function treeEntries(dir: string, prefix: string, skip: (rel: string) => boolean = () => false): Entry[] {
  const out: Entry[] = [];
  const walk = (abs: string, rel: string) => {
    for (const name of readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const a = join(abs, name);
      const st = lstatSync(a);
      const path = `${prefix}/${r}`;
      if (st.isSymbolicLink()) out.push({ type: 'symlink', path, target: readlinkSync(a) });
      else if (st.isDirectory()) {
        out.push({ type: 'dir', path, mode: 0o755 });
        walk(a, r);
      } else if (st.isFile()) out.push({ type: 'file', path, mode: st.mode & 0o111 ? 0o755 : 0o644, data: readFileSync(a) });
      else throw new ImageError(`${a}: neither file, directory nor symbolic link`);
    }
  };
  walk(dir, '');
  return out;
}

/** Shared libraries `ldd` resolves for an ELF file: soname → path on this machine, and the loader. */
export function sharedLibraries(elf: string): { libs: Map<string, string>; loader?: string } {
  const text = run('ldd', [elf], ROOT);
  const libs = new Map<string, string>();
  let loader: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+) => (\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (m) libs.set(m[1], m[2]);
    else if (/^\s*(\/\S*ld-linux\S*) \(0x[0-9a-f]+\)$/.test(line)) loader = line.trim().split(' ')[0];
    else if (/not found/.test(line)) throw new ImageError(`${elf}: ${line.trim()}`);
  }
  return { libs, loader };
}

/** Debian package (name and version) that installed a file, for the image's record of its origin. */
function debianPackageOf(path: string): string {
  const candidates = [path, realpathSync(path)];
  for (const p of candidates) {
    const r = spawnSync('dpkg-query', ['-S', p], { encoding: 'utf8' });
    const m = r.status === 0 ? /^([^:,\s]+)(?::\S+)?: /.exec(r.stdout) : null;
    if (m) {
      const v = spawnSync('dpkg-query', ['-W', '-f=${Version}', m[1]], { encoding: 'utf8' });
      return v.status === 0 ? `${m[1]}=${v.stdout.trim()}` : m[1];
    }
    // Merged /usr: dpkg knows the /lib path of files that live in /usr/lib.
    const alt = p.startsWith('/usr/lib/') ? p.slice(4) : p.startsWith('/lib/') ? `/usr${p}` : '';
    if (alt) {
      const r2 = spawnSync('dpkg-query', ['-S', alt], { encoding: 'utf8' });
      const m2 = r2.status === 0 ? /^([^:,\s]+)(?::\S+)?: /.exec(r2.stdout) : null;
      if (m2) {
        const v = spawnSync('dpkg-query', ['-W', '-f=${Version}', m2[1]], { encoding: 'utf8' });
        return v.status === 0 ? `${m2[1]}=${v.stdout.trim()}` : m2[1];
      }
    }
  }
  return 'unpackaged';
}

export interface Base {
  entries: Entry[];
  /** soname → Debian package=version it comes from */
  origins: Record<string, string>;
}

/** The runtime under /app: node, the closure of its libraries and of every native module in `app`. */
export function baseEntries(node: string, elves: string[]): Base {
  const libs = new Map<string, string>();
  let loader: string | undefined;
  for (const elf of [node, ...elves]) {
    const r = sharedLibraries(elf);
    for (const [k, v] of r.libs) libs.set(k, v);
    loader ??= r.loader;
  }
  if (!loader) throw new ImageError(`${node}: ldd names no ELF interpreter (a static or non-glibc runtime is not supported)`);
  const loaderName = basename(loader);
  const origins: Record<string, string> = { node: debianPackageOf(node) };
  const entries: Entry[] = [
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/passwd', mode: 0o644, data: Buffer.from(`root:x:0:0:root:/root:/usr/sbin/nologin\nds-exporter:x:${IMAGE_UID}:${IMAGE_UID}:ds-exporter:/nonexistent:/usr/sbin/nologin\n`) },
    { type: 'file', path: 'etc/group', mode: 0o644, data: Buffer.from(`root:x:0:\nds-exporter:x:${IMAGE_UID}:\n`) },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'usr', mode: 0o755 },
    { type: 'dir', path: 'usr/bin', mode: 0o755 },
    { type: 'dir', path: 'usr/lib', mode: 0o755 },
    { type: 'dir', path: LIB_DIR, mode: 0o755 },
    { type: 'dir', path: 'usr/local', mode: 0o755 },
    { type: 'dir', path: 'usr/local/bin', mode: 0o755 },
    { type: 'file', path: 'usr/local/bin/node', mode: 0o755, data: readFileSync(node) },
    { type: 'dir', path: 'lib64', mode: 0o755 },
    { type: 'symlink', path: `lib64/${loaderName}`, target: `../${LIB_DIR}/${loaderName}` },
    { type: 'file', path: `${LIB_DIR}/${loaderName}`, mode: 0o755, data: readFileSync(realpathSync(loader)) },
  ];
  origins[loaderName] = debianPackageOf(loader);
  for (const [soname, path] of [...libs].sort()) {
    if (soname === loaderName) continue;
    entries.push({ type: 'file', path: `${LIB_DIR}/${soname}`, mode: 0o644, data: readFileSync(realpathSync(path)) });
    origins[soname] = debianPackageOf(path);
  }
  return { entries, origins };
}

/** Native modules (ELF shared objects loaded by node) in the app tree. */
function nativeModules(app: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && name.endsWith('.node')) out.push(p);
    }
  };
  walk(app);
  return out.sort();
}

/** Name of the temporary sibling an archive is written to before it is renamed into place. */
function partialName(path: string, pid: number): string {
  return join(dirname(path), `.${basename(path)}.${pid}.partial`);
}

/**
 * Removes what an interrupted earlier build left next to `path` (a .partial file of a process
 * that is gone); the archive itself is only ever renamed into place whole.
 */
function removeStalePartials(path: string): void {
  if (!existsSync(dirname(path))) return;
  const prefix = `.${basename(path)}.`;
  for (const name of readdirSync(dirname(path))) {
    const m = name.startsWith(prefix) ? /^(\d+)\.partial$/.exec(name.slice(prefix.length)) : null;
    if (!m) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      alive = false;
    }
    if (!alive) rmSync(join(dirname(path), name), { force: true });
  }
}

/** Writes `data` to `path` through a temporary sibling renamed into place; nothing is left on failure. */
export function writeAtomically(path: string, data: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = partialName(path, process.pid);
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, Math.min(data.length - off, 16 << 20));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new ImageError(`writing ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The gzip blob of a layer tar. gzip is the slow step (the node binary); its output is a
 * function of the tar, the level and zlib, so it is cached under the tar's digest and the
 * zlib version. --no-cache compresses afresh.
 */
function layerCachePath(opts: Options, diffId: string): string {
  return join(opts.cacheDir, 'layers', `${diffId.slice('sha256:'.length)}-zlib${process.versions.zlib}.tar.gz`);
}

function compressed(opts: Options, tar: Buffer): Layer {
  if (!opts.cache) return layer(tar);
  const diffId = sha256(tar);
  const path = layerCachePath(opts, diffId);
  if (existsSync(path)) {
    const data = readFileSync(path);
    // A cache entry is used only when it still decompresses to this very tar.
    if (sha256(gunzipSync(data)) === diffId) return { diffId, blob: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(data), size: data.length, data } };
  }
  const l = layer(tar);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.partial`;
  writeFileSync(tmp, l.blob.data);
  renameSync(tmp, path);
  return l;
}

/** Cache entries unused for this long are removed after a build (other checkouts share the cache). */
const CACHE_MAX_AGE_MS = 3 * 24 * 3600 * 1000;
/** Of each kind (compiled dist/, installed dependencies, layer blobs), the unused entries kept beyond the ones in use. */
const CACHE_KEEP = 4;

/**
 * Marks the entries this build used as fresh; of the others, keeps the CACHE_KEEP most
 * recently used of each kind (a commit's runtime layer is 40 MB) and none older than days.
 */
function tidyCache(opts: Options, used: string[]): void {
  if (!opts.cache || !existsSync(opts.cacheDir)) return;
  const now = new Date();
  for (const p of used) if (existsSync(p)) utimesSync(p, now, now);
  const layers = join(opts.cacheDir, 'layers');
  const kinds = [
    readdirSync(opts.cacheDir).filter((n) => /^dist-[0-9a-f]+$/.test(n)).map((n) => join(opts.cacheDir, n)),
    readdirSync(opts.cacheDir).filter((n) => /^deps-[0-9a-f]+$/.test(n)).map((n) => join(opts.cacheDir, n)),
    existsSync(layers) ? readdirSync(layers).filter((n) => n.endsWith('.tar.gz')).map((n) => join(layers, n)) : [],
    // left by earlier versions of this build
    readdirSync(opts.cacheDir).filter((n) => /^pack-[0-9a-f]+$/.test(n)).map((n) => join(opts.cacheDir, n)),
  ];
  for (const [i, entries] of kinds.entries()) {
    const others = entries
      .filter((p) => !used.includes(p))
      .map((p) => ({ p, mtime: statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
      .sort((x, y) => y.mtime - x.mtime);
    const keep = i === 3 ? 0 : CACHE_KEEP;
    for (const [rank, e] of others.entries()) {
      if (rank >= keep || now.getTime() - e.mtime > CACHE_MAX_AGE_MS) rmSync(e.p, { recursive: true, force: true });
    }
  }
}

export interface Result {
  output: string;
  size: number;
  manifest: string;
  config: string;
  layers: string[];
  diffIds: string[];
  origins: Record<string, string>;
  nodeVersion: string;
}

export function build(opts: Options): Result {
  const t0 = Date.now();
  checkTools();
  const nodeVersion = checkNode(opts.node);
  const src = readSource();
  removeStalePartials(opts.output);
  const chart = parseYaml(readFileSync(join(ROOT, 'helm/ds-exporter/Chart.yaml'), 'utf8')) as { sources?: string[]; home?: string };
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { description: string; license: string };

  if (opts.appDir && !existsSync(join(opts.appDir, 'node_modules'))) throw new ImageError(`--app-dir ${opts.appDir} has no node_modules: give a packed and installed /app tree`);
  let compiled: { dir: string; hit: boolean } | undefined;
  let pack: { dir: string; hit: boolean };
  if (opts.appDir) {
    pack = { dir: opts.appDir, hit: true };
    opts.log(`image: packed package from ${opts.appDir}`);
  } else {
    compiled = cached(opts, `dist-${compileKey(src)}`, (dir) => compileInto(src, dir));
    opts.log(`image: compiled ${compiled.hit ? '(cached)' : 'afresh'}`);
    pack = { dir: mkdtempSync(join(tmpdir(), 'ds-image-app-')), hit: false };
    try {
      packInto(src, join(compiled.dir, 'dist'), pack.dir);
    } catch (err) {
      rmSync(pack.dir, { recursive: true, force: true });
      if (!opts.cache) rmSync(compiled.dir, { recursive: true, force: true });
      throw err;
    }
  }
  let deps: { dir: string; hit: boolean } | undefined;
  try {
    const lockKey = createHash('sha256')
      .update(readFileSync(join(pack.dir, 'package.json')))
      .update(readFileSync(join(pack.dir, 'package-lock.json')))
      .update(readFileSync(join(import.meta.dirname, 'prune.mjs')))
      .update(nodeVersion)
      .digest('hex')
      .slice(0, 32);
    deps = opts.appDir ? { dir: opts.appDir, hit: true } : cached(opts, `deps-${lockKey}`, (dir) => depsInto(pack.dir, dir));
    opts.log(`image: production dependencies ${opts.appDir ? `from ${opts.appDir}` : deps.hit ? '(cached)' : 'installed'}`);
    const skipMeta = (rel: string) => rel === '.complete' || rel === 'node_modules' || rel.startsWith('node_modules/');
    const appEntries: Entry[] = [
      { type: 'dir', path: 'app', mode: 0o755 },
      ...treeEntries(pack.dir, 'app', skipMeta),
      { type: 'dir', path: 'app/node_modules', mode: 0o755 },
      ...treeEntries(join(deps.dir, 'node_modules'), 'app/node_modules'),
    ];
    const base = baseEntries(opts.node, nativeModules(join(deps.dir, 'node_modules')));
    const baseLayer = compressed(opts, tarLayer(base.entries, src.epoch));
    const appLayer = compressed(opts, tarLayer(appEntries, src.epoch));
    const created = new Date(src.epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
    const labels: Record<string, string> = {
      'org.opencontainers.image.title': 'ds-exporter',
      'org.opencontainers.image.description': pkg.description,
      'org.opencontainers.image.version': src.version,
      'org.opencontainers.image.revision': src.revision,
      'org.opencontainers.image.source': chart.sources?.[0] ?? chart.home ?? '',
      'org.opencontainers.image.licenses': pkg.license,
      'org.opencontainers.image.created': created,
      'org.opencontainers.image.ref.name': src.version,
      'com.github.ds-exporter.node.version': nodeVersion,
      'com.github.ds-exporter.runtime.packages': [...new Set(Object.values(base.origins))].sort().join(' '),
    };
    const img = image(
      [baseLayer, appLayer],
      {
        user: `${IMAGE_UID}:${IMAGE_UID}`,
        env: ['PATH=/usr/local/bin:/usr/bin', 'NODE_ENV=production', 'NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_DRIVER_CAPABILITIES=utility'],
        entrypoint: ['/usr/local/bin/node', '--no-memory-reducer', '/app/dist/main.js'],
        workingDir: '/app',
        exposedPorts: ['9842/tcp', '9842/udp'],
        labels,
        created,
        history: [`node ${nodeVersion} and its shared libraries (${labels['com.github.ds-exporter.runtime.packages']}), passwd/group for ${IMAGE_UID}`, `ds-exporter ${src.version} (npm pack) and its production dependencies in /app`],
      },
      src.version,
    );
    const archive = ociArchive(img, src.epoch);
    writeAtomically(opts.output, archive);
    const result: Result = {
      output: opts.output,
      size: archive.length,
      manifest: img.manifest.digest,
      config: img.config.digest,
      layers: img.layers.map((l) => l.blob.digest),
      diffIds: img.layers.map((l) => l.diffId),
      origins: base.origins,
      nodeVersion,
    };
    tidyCache(opts, [...(compiled ? [compiled.dir] : []), deps.dir, ...img.layers.map((l) => layerCachePath(opts, l.diffId))]);
    opts.log(`image: wrote ${relative(process.cwd(), opts.output) || opts.output} (${(archive.length / 1e6).toFixed(1)} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    opts.log(`image: manifest ${img.manifest.digest}`);
    for (const [i, l] of img.layers.entries()) opts.log(`image: layer ${i} ${l.blob.digest} (${(l.blob.size / 1e6).toFixed(1)} MB)`);
    return result;
  } finally {
    if (!opts.appDir) rmSync(pack.dir, { recursive: true, force: true });
    if (!opts.cache && !opts.appDir) {
      if (compiled) rmSync(compiled.dir, { recursive: true, force: true });
      if (deps) rmSync(deps.dir, { recursive: true, force: true });
    }
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const r = build(opts);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } catch (err) {
    if (err instanceof ImageError) {
      process.stderr.write(`image: ${err.message}\n`);
      process.exitCode = 1;
    } else throw err;
  }
}
