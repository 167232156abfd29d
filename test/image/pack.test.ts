// What the container image runs, tested without a Docker engine: the package as `npm pack`
// makes it (the build stage packs it), installed with production dependencies only, started.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { ROOT, waitFor } from '../helpers/procs.js';
import { parseDockerfile } from './dockerfile.js';

const RUNTIME_FILES = ['dist', 'assets', 'dashboards', 'alerts', 'docs', 'README.md'];

/** The environment without the npm_* variables of an enclosing `npm test`. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function run(cmd: string, args: string[], cwd: string, timeoutMs = 240_000, env = cleanEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`, { cause: err }));
      else done({ stdout, stderr });
    });
  });
}

interface Packed {
  tarball: string;
  files: string[];
  prepareOutput: string;
}

let work: string;
let packed: Packed;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ds-pack-'));
  // A copy of the sources without dist/: only `prepare` can have built what the tarball holds.
  const src = join(work, 'src');
  await mkdir(src);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', ...RUNTIME_FILES.filter((f) => f !== 'dist')]) {
    if (existsSync(join(ROOT, f))) await cp(join(ROOT, f), join(src, f), { recursive: true });
  }
  await symlink(join(ROOT, 'node_modules'), join(src, 'node_modules'), 'dir');
  const out = join(work, 'out');
  await mkdir(out);
  const r = await run('npm', ['pack', '--json', '--pack-destination', out], src);
  const info = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))[0] as { filename: string; files: { path: string }[] };
  packed = { tarball: join(out, info.filename), files: info.files.map((f) => f.path), prepareOutput: r.stderr + r.stdout };
}, { timeout: 300_000 });

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Starts the exporter binary on a free loopback port; resolves once it logged its address. */
async function start(bin: string, cwd: string): Promise<{ child: ChildProcess; base: string; log: () => string }> {
  const child = spawn(bin, ['--simulate', '--web.listen-address=127.0.0.1:0'], { cwd, env: cleanEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const base = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`no listening line in 60 s:\n${log}`)), 60_000);
    const onData = (b: Buffer) => {
      log += b.toString();
      const m = /msg="ds-exporter listening".*address=(127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        done(`http://${m[1]}`);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`exited with ${code} before listening:\n${log}`));
    });
  });
  return { child, base, log: () => log };
}

/** The exporter serves /metrics with ds_gpu_up, becomes ready, and stops cleanly on SIGTERM. */
async function assertServes(bin: string, cwd: string): Promise<void> {
  const { child, base, log } = await start(bin, cwd);
  try {
    const metrics = await waitFor(async () => {
      const res = await fetch(`${base}/metrics`);
      const text = await res.text();
      return res.status === 200 && /^ds_gpu_up\{[^}]*\} 1$/m.test(text) ? text : undefined;
    }, 30_000, 'ds_gpu_up on /metrics', { everyMs: 250 });
    assert.match(metrics, /^# TYPE ds_gpu_up gauge$/m);
    assert.match(metrics, /^ds_exporter_build_info\{/m);
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 30_000, '/readyz 200', { everyMs: 250 });
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  } finally {
    const code = await new Promise<number | null>((done) => {
      if (child.exitCode !== null) return done(child.exitCode);
      child.once('exit', (c) => done(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 0, `exit code after SIGTERM:\n${log()}`);
  }
}

describe('the npm package (what the image installs)', { timeout: 600_000 }, () => {
  test('package.json ships what the runtime needs and builds dist when packing', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    for (const f of RUNTIME_FILES) assert.ok(pkg.files.includes(f), `files lists ${f}`);
    assert.equal(pkg.bin['ds-exporter'], 'dist/main.js');
    assert.match(pkg.scripts.prepare, /tsc -p tsconfig\.build\.json|npm run (-s )?build/);
    assert.ok(!('typescript' in pkg.dependencies), 'the compiler is a devDependency');
  });

  test('npm pack runs prepare, which builds dist/ into the tarball; no sources or tests in it', () => {
    assert.match(packed.prepareOutput, /> ds-exporter@[^ ]+ prepare/);
    assert.ok(packed.files.includes('dist/main.js'), 'dist/main.js packed');
    assert.ok(packed.files.includes('dist/app.js'), 'dist/app.js packed');
    assert.ok(packed.files.includes('package.json'));
    for (const f of RUNTIME_FILES) {
      if (existsSync(join(ROOT, f))) assert.ok(packed.files.some((p) => p === f || p.startsWith(`${f}/`)), `${f} exists in the repository and is packed`);
    }
    const stray = packed.files.filter((p) => /^(src|test|bench|helm|clients|scripts|node_modules)\//.test(p) || (p.endsWith('.ts') && !p.endsWith('.d.ts')));
    assert.deepEqual(stray, []);
  });
});

describe('the Dockerfile', { timeout: 600_000 }, () => {
  test('two stages on node:20-slim, non-root numeric user, port 9842, ds-exporter entrypoint, no GPU library', async () => {
    const text = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    const df = parseDockerfile(text);
    assert.ok(df.args.some((a) => a.op === 'ARG' && a.args === 'NODE_IMAGE=node:20-slim'));
    assert.equal(df.stages.length, 2);
    const [build, runtime] = df.stages;
    assert.equal(build.from, '${NODE_IMAGE}');
    assert.equal(build.name, 'build');
    assert.equal(runtime.from, '${NODE_IMAGE}');
    const runs = (s: typeof build) => s.body.filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ');
    assert.match(runs(build), /npm ci\b/);
    assert.match(runs(build), /npm run build\b/);
    assert.match(runs(build), /npm pack\b/);
    assert.match(runs(build), /npm ci --omit=dev\b/);
    assert.match(runs(build), /node \/src\/scripts\/image\/prune\.mjs \/app/);
    // The runtime stage takes nothing from the build context: only the packed, installed /app.
    for (const c of runtime.body.filter((i) => i.op === 'COPY' || i.op === 'ADD')) assert.match(c.args, /^--from=build /, `runtime ${c.op} ${c.args}`);
    const user = runtime.body.filter((i) => i.op === 'USER').at(-1)?.args ?? '';
    assert.match(user, /^[1-9][0-9]*(:[1-9][0-9]*)?$/, 'numeric non-root USER');
    const chartValues = parseYaml(await readFile(join(ROOT, 'helm/ds-exporter/values.yaml'), 'utf8'));
    assert.equal(Number(user.split(':')[0]), chartValues.containerSecurityContext.runAsUser, 'the chart runs as the image user');
    assert.ok(runtime.body.some((i) => i.op === 'EXPOSE' && /\b9842\/tcp\b/.test(i.args)));
    assert.deepEqual(runtime.body.filter((i) => i.op === 'ENTRYPOINT').map((i) => JSON.parse(i.args)), [['ds-exporter']]);
    const code = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    assert.doesNotMatch(code, /nvidia|cuda|libnvidia|nvml|apt-get/i, 'no GPU library or package installed');
    const ignore = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'dist', '.git', '.test-tools', 'test']) assert.ok(ignore.includes(p), `.dockerignore excludes ${p}`);
    assert.ok(ignore.includes('!scripts/image/prune.mjs'), 'the prune script is in the build context');
  });
});

describe('installed and started', { timeout: 600_000 }, () => {
  test('npm install --omit=dev of the tarball into an empty directory serves /metrics', { timeout: 400_000 }, async () => {
    const dir = join(work, 'install');
    await mkdir(dir);
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'ds-exporter-install-test', private: true }));
    await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', packed.tarball], dir);
    assert.ok(!existsSync(join(dir, 'node_modules/typescript')), 'no devDependency installed');
    assert.ok(existsSync(join(dir, 'node_modules/ds-exporter/dist/main.js')));
    await assertServes(join(dir, 'node_modules/.bin/ds-exporter'), dir);
  });
});
