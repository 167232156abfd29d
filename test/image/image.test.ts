// `npm run image` end to end: the OCI archive is built (warm runs reuse ~/.cache/ds-exporter/
// image), read back by GNU tar and by skopeo/umoci, its root file system holds exactly what
// the exporter needs, it runs under chroot as its configured user and serves /metrics, the
// Dockerfile (replayed here) makes the same /app, and a second build from that independent
// /app gives the same layer digests.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, lstatSync, mkdirSync, writeFileSync, chmodSync, symlinkSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { ROOT, freePort, has, waitFor } from '../helpers/procs.js';
import { replayDockerfile, sh } from './dockerfile.js';
import type { Result as BuildResult } from '../../scripts/image/build.js';

/** The environment without the npm_* variables of an enclosing `npm test`. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
const isRoot = process.getuid?.() === 0;
const canUnshare = isRoot && spawnSync('unshare', ['--mount', '--pid', '--fork', '--mount-proc', 'true']).status === 0;
const needChroot = canUnshare ? {} : { skip: isRoot ? 'unshare --mount --pid is not permitted here: the image cannot be run under chroot' : 'running the image under chroot needs root' };
const needOciTools = has('skopeo', ['--version']) && has('umoci', ['--version']) ? {} : { skip: 'skopeo or umoci missing: run scripts/setup-test-tools.sh (apt-get install skopeo umoci)' };

function build(args: string[], env: NodeJS.ProcessEnv = cleanEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/image/build.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

interface Unpacked {
  config: { User: string; Env: string[]; Entrypoint: string[]; Cmd?: string[]; WorkingDir: string; Labels: Record<string, string>; ExposedPorts: Record<string, object> };
  rootfs: string;
  created: string;
}

/** The archive read with GNU tar only: index → manifest → config and layers, unpacked in order. */
async function unpack(archive: string, dir: string): Promise<Unpacked> {
  const layout = join(dir, 'layout');
  const rootfs = join(dir, 'rootfs');
  mkdirSync(layout, { recursive: true });
  mkdirSync(rootfs, { recursive: true });
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  const blob = (digest: string) => {
    const data = readFileSync(join(layout, 'blobs/sha256', digest.replace(/^sha256:/, '')));
    assert.equal(`sha256:${createHash('sha256').update(data).digest('hex')}`, digest, 'blob content matches its digest');
    return data;
  };
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 1);
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  for (const l of manifest.layers) {
    assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    blob(l.digest);
    execFileSync('tar', ['-xzf', join(layout, 'blobs/sha256', l.digest.replace(/^sha256:/, '')), '-C', rootfs, '--numeric-owner', '--same-permissions']);
  }
  return { config: config.config, rootfs, created: config.created };
}

/** Every path under `dir`, relative, with a type mark: 'd' dir, 'l' link, 'f' file (and x for executables). */
function listTree(dir: string, base = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, base)).sort()) {
    const rel = base ? `${base}/${name}` : name;
    const st = lstatSync(join(dir, rel));
    if (st.isDirectory()) {
      out.push(`d ${rel}`);
      out.push(...listTree(dir, rel));
    } else out.push(`${st.isSymbolicLink() ? 'l' : st.mode & 0o100 ? 'x' : 'f'} ${rel}`);
  }
  return out;
}

function sonamesOf(elf: string): string[] {
  return execFileSync('ldd', [elf], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\S+) => \S+ \(0x/.exec(l)?.[1] ?? /^\s*\/\S*\/(ld-linux[^\s/]*) \(0x/.exec(l)?.[1])
    .filter((s): s is string => !!s);
}

let work: string;
let built: BuildResult;
let image: Unpacked;
let buildLog = '';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ds-image-'));
  // What a build killed part way through left: removed by the next build.
  mkdirSync(join(work, 'a'));
  writeFileSync(join(work, 'a/.ds-exporter-oci.tar.999999999.partial'), 'half an archive');
  const r = await build(['--output', join(work, 'a/ds-exporter-oci.tar')]);
  buildLog = r.stderr;
  assert.equal(r.code, 0, `npm run image failed:\n${r.stderr}`);
  built = JSON.parse(r.stdout) as BuildResult;
  image = await unpack(built.output, join(work, 'unpacked'));
}, { timeout: 900_000 });

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

// The groups run side by side (the Dockerfile replay is the slow one); each reads `image` only.
describe('the image', { concurrency: true, timeout: 900_000 }, () => {
  describe('npm run image', { timeout: 900_000 }, () => {
    test('package.json runs the builder; the archive lands where --output says, nothing else next to it (a stale partial file is gone)', async () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
      assert.equal(pkg.scripts.image, 'tsx scripts/image/build.ts');
      assert.deepEqual(readdirSync(join(work, 'a')), ['ds-exporter-oci.tar']);
      assert.equal(built.size, lstatSync(built.output).size);
      assert.match(buildLog, /image: wrote .* MB/);
    });

    test('the image config: user 65532, the exporter as entrypoint, NVIDIA runtime env, OCI labels', async () => {
      const c = image.config;
      const values = parseYaml(readFileSync(join(ROOT, 'helm/ds-exporter/values.yaml'), 'utf8'));
      assert.equal(c.User, `${values.containerSecurityContext.runAsUser}:${values.containerSecurityContext.runAsGroup}`);
      assert.equal(c.User, '65532:65532');
      assert.deepEqual(c.Entrypoint, ['/usr/local/bin/node', '--no-memory-reducer', '/app/dist/main.js']);
      assert.equal(c.Cmd, undefined);
      assert.equal(c.WorkingDir, '/app');
      assert.ok(c.Env.includes('NVIDIA_VISIBLE_DEVICES=all'));
      assert.ok(c.Env.includes('NVIDIA_DRIVER_CAPABILITIES=utility'));
      assert.deepEqual(Object.keys(c.ExposedPorts).sort(), ['9842/tcp', '9842/udp']);
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
      const chart = parseYaml(readFileSync(join(ROOT, 'helm/ds-exporter/Chart.yaml'), 'utf8'));
      assert.equal(c.Labels['org.opencontainers.image.version'], pkg.version);
      assert.equal(c.Labels['org.opencontainers.image.licenses'], pkg.license);
      assert.equal(c.Labels['org.opencontainers.image.source'], chart.sources[0]);
      assert.equal(chart.appVersion, pkg.version, 'the chart pulls the tag the README pushes');
      assert.match(c.Labels['org.opencontainers.image.revision'], /^[0-9a-f]{40}(-modified)?$/);
      assert.equal(c.Labels['com.github.ds-exporter.node.version'], process.version);
      // Every time in the image is the commit's (SOURCE_DATE_EPOCH unset: git log -1 --format=%ct).
      const commitTime = Number(execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' }).trim());
      assert.equal(image.created, new Date(commitTime * 1000).toISOString().replace('.000Z', 'Z'));
      assert.equal(c.Labels['org.opencontainers.image.created'], image.created);
    });

    test('the root file system: node, its shared libraries, passwd/group, /tmp and /app; no shell, nothing else', () => {
      const all = listTree(image.rootfs);
      const base = all.filter((e) => !/^[dlfx] app(\/|$)/.test(e));
      const libs = readdirSync(join(image.rootfs, 'usr/lib/x86_64-linux-gnu')).sort();
      // The libraries are exactly the closure ldd finds for the node binary and every native module.
      const elves = [join(image.rootfs, 'usr/local/bin/node'), ...all.filter((e) => / app\/.*\.node$/.test(e)).map((e) => join(image.rootfs, e.slice(2)))];
      assert.ok(elves.length >= 2, 'node and koffi');
      const closure = [...new Set(elves.flatMap(sonamesOf))].sort();
      assert.deepEqual(libs, closure);
      assert.deepEqual(base, [
        'd etc',
        'f etc/group',
        'f etc/passwd',
        'd lib64',
        'l lib64/ld-linux-x86-64.so.2',
        'd tmp',
        'd usr',
        'd usr/bin',
        'd usr/lib',
        'd usr/lib/x86_64-linux-gnu',
        ...libs.map((l) => `${l.startsWith('ld-linux') ? 'x' : 'f'} usr/lib/x86_64-linux-gnu/${l}`),
        'd usr/local',
        'd usr/local/bin',
        'x usr/local/bin/node',
      ]);
      assert.equal(readlinkSync(join(image.rootfs, 'lib64/ld-linux-x86-64.so.2')), '../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
      assert.match(readFileSync(join(image.rootfs, 'etc/passwd'), 'utf8'), /^ds-exporter:x:65532:65532:/m);
      assert.equal(lstatSync(join(image.rootfs, 'tmp')).mode & 0o7777, 0o1777);
      const shells = all.filter((e) => /(^|\/)(sh|bash|dash|busybox|apt|apt-get|dpkg|npm|npx|env)$/.test(e));
      assert.deepEqual(shells, []);
      // /app: the package as packed (no sources, tests or dev dependencies) and pruned modules.
      const app = all.filter((e) => /^[dlfx] app\//.test(e)).map((e) => e.slice(2));
      assert.ok(all.includes('x app/dist/main.js') && app.includes('app/node_modules/fastify/package.json'));
      const stray = app.filter((p) => /^app\/(src|test|bench|helm|clients|scripts)\//.test(p) || /\.(d\.ts|map|md)$/.test(p) && p.startsWith('app/node_modules/') && !/\/licen[cs]e[^/]*$/i.test(p) || /node_modules\/(typescript|tsx|@types)\//.test(p));
      assert.deepEqual(stray, []);
      const owners = new Set(all.map((e) => lstatSync(join(image.rootfs, e.slice(2))).uid));
      assert.deepEqual([...owners], [0], 'everything owned by root: the user 65532 can write nothing but /tmp');
    });

    test('the README lists what the image holds and about how big it is', () => {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const section = readme.slice(readme.indexOf('## Container image'), readme.indexOf('\n## ', readme.indexOf('## Container image') + 5));
      for (const lib of readdirSync(join(image.rootfs, 'usr/lib/x86_64-linux-gnu'))) assert.ok(section.includes(`\`${lib}\``), `README names ${lib}`);
      for (const path of ['/usr/local/bin/node', '/etc/passwd', '/etc/group', '/tmp', '/app', '/lib64/ld-linux-x86-64.so.2']) assert.ok(section.includes(`\`${path}\``), `README names ${path}`);
      const archive = /Archive: about (\d+) MB/.exec(section);
      assert.ok(archive, 'README gives the archive size');
      assert.ok(Math.abs(Number(archive[1]) * 1e6 - built.size) / built.size < 0.15, `README says ${archive[1]} MB, the archive is ${(built.size / 1e6).toFixed(1)} MB`);
      const unpacked = /(\d+) MB unpacked/.exec(section);
      const bytes = Number(execFileSync('du', ['-sb', image.rootfs], { encoding: 'utf8' }).split('\t')[0]);
      assert.ok(unpacked && Math.abs(Number(unpacked[1]) * 1e6 - bytes) / bytes < 0.15, `README says ${unpacked?.[1]} MB unpacked, it is ${(bytes / 1e6).toFixed(1)} MB`);
    });

    test('skopeo and umoci read the archive: same config, same root file system', needOciTools, async () => {
      const inspect = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${built.output}`], { encoding: 'utf8' }));
      assert.deepEqual(inspect.config.Entrypoint, image.config.Entrypoint);
      assert.equal(inspect.config.User, '65532:65532');
      const raw = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${built.output}`], { encoding: 'utf8' }));
      assert.deepEqual(raw.Layers, built.layers);
      execFileSync('skopeo', ['copy', '-q', `oci-archive:${built.output}`, `oci:${join(work, 'layout')}:test`]);
      execFileSync('umoci', ['unpack', '--image', `${join(work, 'layout')}:test`, join(work, 'bundle')]);
      const spec = JSON.parse(readFileSync(join(work, 'bundle/config.json'), 'utf8'));
      assert.deepEqual(spec.process.args, image.config.Entrypoint);
      assert.deepEqual([spec.process.user.uid, spec.process.user.gid], [65532, 65532]);
      assert.equal(spec.process.cwd, '/app');
      assert.deepEqual(listTree(join(work, 'bundle/rootfs')), listTree(image.rootfs));
    });
  });

  /** Host pid of the process the pid namespace's init runs, once it exists. */
  function childOf(pid: number): number | undefined {
    try {
      const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      return kids[0];
    } catch {
      return undefined;
    }
  }

  describe('the image runs', { timeout: 300_000 }, () => {
    test('entrypoint under chroot as 65532 with the image env, as PID 1: --simulate serves /metrics, SIGTERM stops it', needChroot, async () => {
      const port = await freePort();
      // Its own copy: a runtime adds /proc and /dev, which the listing tests must not see.
      const { rootfs } = await unpack(built.output, join(work, 'run'));
      // What a runtime provides: /proc and /dev.
      mkdirSync(join(rootfs, 'proc'), { recursive: true });
      mkdirSync(join(rootfs, 'dev'), { recursive: true });
      const [uid, gid] = image.config.User.split(':');
      const env = Object.fromEntries(image.config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      const script = 'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec unshare --root="$0" --wd="$1" --setgid="$2" --setuid="$3" -- "${@:4}"';
      const child: ChildProcess = spawn('unshare', ['--mount', '--pid', '--fork', '--kill-child', 'bash', '-c', script, rootfs, image.config.WorkingDir, gid, uid, ...image.config.Entrypoint, '--simulate', `--web.listen-address=127.0.0.1:${port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      child.stdout!.on('data', (b) => (log += b));
      child.stderr!.on('data', (b) => (log += b));
      try {
        const metrics = await waitFor(async () => {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`);
          const text = await res.text();
          return res.status === 200 && /^ds_gpu_up\{[^}]*\} 1$/m.test(text) ? text : undefined;
        }, 60_000, `ds_gpu_up from the image (${log})`, { everyMs: 300 });
        assert.match(metrics, /^ds_exporter_build_info\{.*node_version="v20\./m);
        assert.match(metrics, /^ds_exporter_gpu_source_info\{[^}]*source="simulated"/m);
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 30_000, '/readyz');
        const node = childOf(child.pid!);
        assert.ok(node, 'the exporter process');
        const status = readFileSync(`/proc/${node}/status`, 'utf8');
        assert.match(status, /^Uid:\s+65532\s+65532/m);
        assert.match(status, /^NSpid:\s+\d+\s+1$/m, 'PID 1 in its namespace');
        assert.equal(readlinkSync(`/proc/${node}/exe`).endsWith('/usr/local/bin/node'), true);
        const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
        process.kill(node, 'SIGTERM');
        assert.equal(await exited, 0, log);
        assert.doesNotMatch(log, /level=(error|fatal)/);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  });

  describe('the Dockerfile and npm run image', { timeout: 900_000 }, () => {
    test('the Dockerfile, replayed here, makes the same /app; building from it gives the same layer digests', async () => {
      const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter((f) => f && existsSync(join(ROOT, f)) && !lstatSync(join(ROOT, f)).isDirectory());
      const { app, bin } = await replayDockerfile(ROOT, join(work, 'docker'), files, cleanEnv);
      assert.equal(readlinkSync(join(bin, 'ds-exporter')), join(app, 'dist/main.js'));
      const dockerApp = listTree(app).map((e) => `${e.slice(0, 2)}app/${e.slice(2)}`);
      const imageApp = listTree(image.rootfs).filter((e) => /^[dlfx] app\//.test(e));
      assert.deepEqual(dockerApp, imageApp);
      // A second, independent build: its /app is the Dockerfile's (fresh npm pack, npm ci and
      // prune), every layer compressed afresh. Equal digests: the build is reproducible.
      // The commit time A used (from its config), so a commit made meanwhile changes nothing.
      const epoch = String(Date.parse(image.created) / 1000);
      const r = await build(['--no-cache', '--app-dir', app, '--output', join(work, 'b.tar')], { ...cleanEnv, SOURCE_DATE_EPOCH: epoch });
      assert.equal(r.code, 0, r.stderr);
      const second = JSON.parse(r.stdout) as BuildResult;
      assert.deepEqual(second.diffIds, built.diffIds);
      assert.deepEqual(second.layers, built.layers);
      assert.equal(second.manifest, built.manifest);
      assert.deepEqual(readFileSync(second.output), readFileSync(built.output));
    });
  });

  describe('bad input', { timeout: 300_000 }, () => {
    test('unknown argument, --output a directory, missing value: one line, exit 1, no archive', async () => {
      for (const [args, re] of [
        [['--bogus'], /^image: unknown argument '--bogus'/],
        [['--output', work], /is a directory/],
        [['--output'], /--output needs a value/],
      ] as [string[], RegExp][]) {
        const r = await build(args);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, re);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
    });

    test('a missing tool gets one line naming the Debian package', async () => {
      for (const [keep, missing, pkg] of [
        [[], 'npm', 'npm'],
        [['npm'], 'ldd', 'libc-bin'],
        [['npm', 'ldd'], 'git', 'git'],
      ] as [string[], string, string][]) {
        const dir = join(work, `path-${missing}`);
        mkdirSync(dir, { recursive: true });
        for (const k of keep) symlinkSync(execFileSync('bash', ['-c', `command -v ${k}`], { encoding: 'utf8' }).trim(), join(dir, k));
        const r = await build(['--output', join(work, 'never.tar')], { ...cleanEnv, PATH: dir });
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr.trim(), `image: ${missing} not found: install the Debian package ${pkg} (apt-get install ${pkg})`);
        assert.ok(!existsSync(join(work, 'never.tar')));
      }
    });

    test('a Node.js older than 20 is refused and an existing archive stays as it was', async () => {
      const fake = join(work, 'node18');
      writeFileSync(fake, '#!/bin/sh\necho v18.19.0\n');
      chmodSync(fake, 0o755);
      const out = join(work, 'keep/ds-exporter-oci.tar');
      mkdirSync(join(work, 'keep'));
      writeFileSync(out, 'the previous archive');
      const r = await build(['--node', fake, '--output', out]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^image: the image needs Node\.js 20 or newer .* is v18\.19\.0/);
      assert.equal(readFileSync(out, 'utf8'), 'the previous archive');
      assert.deepEqual(readdirSync(join(work, 'keep')), ['ds-exporter-oci.tar']);
    });

    test('a build that runs out of space leaves no half-written archive', needChroot, async () => {
      // A 4 MiB file system for the output: the write fails with ENOSPC part way through.
      const dir = join(work, 'full');
      mkdirSync(dir);
      const script = `mount -t tmpfs -o size=4m tmpfs "$0" && "$1" --import tsx scripts/image/build.ts --output "$0/ds-exporter-oci.tar"; echo "rc=$?"; ls -A "$0"`;
      const out = await sh('unshare', ['--mount', 'bash', '-c', script, dir, process.execPath], ROOT, cleanEnv).catch((e: Error) => e.message);
      assert.match(out, /^rc=1$/m, out);
      assert.doesNotMatch(out, /ds-exporter-oci|partial/, out);
    });
  });
});
