import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { freePort, ROOT, waitFor } from './helpers/procs.js';

// @ts-expect-error plain ESM script without type declarations
const { distProblem } = (await import('../scripts/start.mjs')) as { distProblem: (dir: string) => string | undefined };

const tmp = mkdtempSync(join(tmpdir(), 'ds-start-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A checkout-shaped directory: package.json and the start script, with or without dist/ and src/. */
function checkout(name: string, files: Record<string, string>, mtimes: Record<string, number> = {}): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'scripts'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  copyFileSync(join(ROOT, 'scripts/start.mjs'), join(dir, 'scripts/start.mjs'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  for (const [path, s] of Object.entries(mtimes)) utimesSync(join(dir, path), s, s);
  return dir;
}

/** `npm start` in `dir`, as the README runs it. */
function npmStart(dir: string, args: string[] = []): ChildProcess {
  return spawn('npm', ['start', '-s', '--', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(child: ChildProcess): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((res) => child.on('exit', (code) => res({ code, out, err })));
}

test('dist/ missing, older than src/, fresh, or an installed package without src/', () => {
  assert.match(distProblem(checkout('none', {})) ?? '', /dist\/ is missing: run `npm run build`/);
  const t0 = Date.now() / 1000;
  assert.match(distProblem(checkout('stale', { 'dist/main.js': '', 'src/deep/x.ts': '' }, { 'dist/main.js': t0 - 60, 'src/deep/x.ts': t0 })) ?? '', /dist\/ is older than src\/: run `npm run build`/);
  assert.equal(distProblem(checkout('fresh', { 'dist/main.js': '', 'src/x.ts': '' }, { 'dist/main.js': t0, 'src/x.ts': t0 - 60 })), undefined);
  assert.equal(distProblem(checkout('installed', { 'dist/main.js': '' })), undefined);
});

test('npm start never builds: without dist/ it fails at once with one line and exit code 2', { timeout: 60_000 }, async () => {
  const dir = checkout('nobuild', { 'src/main.ts': '' });
  const r = await run(npmStart(dir, ['--version']));
  assert.equal(r.code, 2);
  assert.equal(r.err.trim(), 'ds-exporter: error: dist/ is missing: run `npm run build` (npm ci builds it too)');
  assert.deepEqual(readdirSync(dir).sort(), ['package.json', 'scripts', 'src'], 'nothing was built');
});

/** Builds dist/ of the checkout unless it is fresh (CI has built it already: npm ci, scripts/test.sh). */
function ensureBuilt(): void {
  if (distProblem(ROOT) === undefined) return;
  const r = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** True when nothing listens on 127.0.0.1:`port` (we can bind it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** Processes whose command line mentions `text`, other than this test's own. */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text) && Number(pid) !== process.pid) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('SIGTERM to the pid of `npm start` stops the exporter and releases its port', { timeout: 240_000 }, async () => {
  ensureBuilt();
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const child = npmStart(ROOT, ['--simulate', '--simulate.gpus=1', `--web.listen-address=${addr}`, '--log.level=warn']);
  const done = run(child);
  try {
    await waitFor(async () => (await fetch(`http://${addr}/healthz`)).ok, 60_000, 'the exporter answers /healthz');
    assert.ok(processesWith(`--web.listen-address=${addr}`).length > 0, 'the exporter process is visible');
    child.kill('SIGTERM');
    const r = await done;
    assert.equal(r.code, 0, `npm start exits 0 after SIGTERM: ${r.err}`);
    await waitFor(() => portFree(port), 5000, 'the port released');
    assert.deepEqual(processesWith(`--web.listen-address=${addr}`), [], 'no exporter left running');
  } finally {
    for (const pid of processesWith(`--web.listen-address=${addr}`)) process.kill(pid, 'SIGKILL');
  }
});

test('starts while dist/ is being rebuilt load a whole tree, never a half-written one', { timeout: 300_000 }, async () => {
  ensureBuilt();
  const build = spawn('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'ignore' });
  const built = new Promise<number | null>((res) => build.on('exit', res));
  let finished = false;
  void built.then(() => (finished = true));
  const results: Array<{ code: number | null; out: string; err: string }> = [];
  // Starts until the build is over, and one after it.
  while (!finished || results.length === 0) results.push(await run(npmStart(ROOT, ['--version'])));
  results.push(await run(npmStart(ROOT, ['--version'])));
  assert.equal(await built, 0, 'the build succeeded');
  for (const r of results) {
    if (r.code === 0) assert.match(r.out, /^ds-exporter \d/);
    // Only between the two renames that swap dist/ is there no dist/main.js for a moment.
    else assert.equal(r.err.trim(), 'ds-exporter: error: dist/ is missing: run `npm run build` (npm ci builds it too)', `a start failed otherwise (exit ${r.code}): ${r.err}`);
  }
  assert.ok(results.length >= 2);
  assert.equal(results.at(-1)!.code, 0, 'a start after the build runs');
  assert.deepEqual(readdirSync(ROOT).filter((n) => n.startsWith('dist.')), [], 'no temporary build trees left behind');
});

test('a start waits while a build of the checkout is in progress; a build that was killed does not hold it', { timeout: 60_000 }, async () => {
  const dir = checkout('building', { 'dist/main.js': 'process.stdout.write("started\\n");\n' });
  // A build in progress: its fresh tree, named by its live process.
  const builder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  mkdirSync(join(dir, `dist.tmp-${builder.pid}`));
  const start = run(npmStart(dir));
  await new Promise((r) => setTimeout(r, 1500));
  let exited = false;
  void start.then(() => (exited = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(exited, false, 'the start waits for the build');
  builder.kill();
  await new Promise((r) => builder.once('exit', r));
  // The build was killed: its tree stays behind, and no longer holds a start.
  const r = await start;
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'started\n');
  assert.equal(r.err.trim(), 'ds-exporter: waiting for the build in progress to replace dist/');
  const again = await run(npmStart(dir));
  assert.equal(again.code, 0, again.err);
  assert.equal(again.err, '', 'a dead build\'s tree is not waited for');
});
