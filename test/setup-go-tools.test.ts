import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/procs.js';

// scripts/setup-go-tools.sh and test/helpers/go-tools.ts, with a stand-in `go` on PATH that
// records its calls: a cached tool is reused without building, a failed build leaves a marker
// with the reason that the tests' skip message carries, and the script never fails the setup.

const TABLE = readFileSync(join(ROOT, 'scripts/go-tools.tsv'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.startsWith('#'))
  .map((l) => l.split('\t'));

function sandbox(goScript: string): { cache: string; calls: string; env: NodeJS.ProcessEnv; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-go-tools-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const calls = join(dir, 'calls');
  writeFileSync(join(bin, 'go'), `#!/bin/sh\necho "$@" >>"${calls}"\n${goScript}\n`);
  chmodSync(join(bin, 'go'), 0o755);
  return {
    cache: join(dir, 'cache', 'ds-exporter', 'go-tools'),
    calls,
    env: { ...process.env, XDG_CACHE_HOME: join(dir, 'cache'), PATH: `${bin}:/usr/bin:/bin` },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function lookup(env: NodeJS.ProcessEnv, tool: string, binary: string): { path?: string; skip: string | false } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('./test/helpers/go-tools.ts').then((m) => console.log(JSON.stringify(m.goTool(${JSON.stringify(tool)}, ${JSON.stringify(binary)}))))`], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('the table names Prometheus 3, Alertmanager and VictoriaMetrics with pinned versions', () => {
  const names = TABLE.map((r) => r[0]);
  assert.deepEqual(names, ['prometheus', 'alertmanager', 'victoriametrics']);
  for (const [, module, version, packages] of TABLE) {
    assert.match(module, /^github\.com\/[\w.-]+\/[\w.-]+$/);
    assert.match(version, /^v\d+\.\d+\.\d+$/);
    assert.ok(packages.split(' ').length >= 1);
  }
  assert.equal(TABLE[0][2], 'v0.316.0', 'Prometheus 3.16 (module v0.316.0)');
});

test('a failed build leaves a marker with the reason, the tests skip with it, and the setup goes on', () => {
  const sb = sandbox('echo "go: module lookup disabled" >&2; exit 1');
  try {
    const r = spawnSync('bash', [join(ROOT, 'scripts/setup-go-tools.sh'), 'victoriametrics'], { cwd: ROOT, env: sb.env, encoding: 'utf8' });
    assert.equal(r.status, 0, 'the setup never fails on a tool');
    assert.match(r.stdout, /victoriametrics NOT available, its tests will skip: the build failed \(see .*victoriametrics-build\.log\)/);
    const marker = join(sb.cache, 'victoriametrics-v1.151.0.unavailable');
    assert.match(readFileSync(marker, 'utf8'), /build failed/);
    assert.match(readFileSync(join(sb.cache, 'victoriametrics-build.log'), 'utf8'), /module lookup disabled/, 'the build log keeps go\'s message');
    const found = lookup(sb.env, 'victoriametrics', 'vmalert');
    assert.equal(found.path, undefined);
    assert.match(String(found.skip), /vmalert v1\.151\.0 .* is missing from .*victoriametrics-v1\.151\.0: the victoriametrics v1\.151\.0 build failed/);
    // Only the tool asked for was tried.
    assert.doesNotMatch(readFileSync(sb.calls, 'utf8'), /prometheus|alertmanager/);
  } finally {
    sb.cleanup();
  }
});

test('a tool whose binaries are cached is reused without calling go, and its marker goes', () => {
  const sb = sandbox('exit 1');
  try {
    const dir = join(sb.cache, 'prometheus-v0.316.0');
    mkdirSync(dir, { recursive: true });
    for (const b of ['prometheus', 'promtool']) {
      writeFileSync(join(dir, b), '#!/bin/sh\n');
      chmodSync(join(dir, b), 0o755);
    }
    writeFileSync(`${dir}.unavailable`, 'an old failure');
    const r = spawnSync('bash', [join(ROOT, 'scripts/setup-go-tools.sh'), 'prometheus'], { cwd: ROOT, env: sb.env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'a cache hit says nothing');
    assert.equal(existsSync(sb.calls), false, 'go was not called');
    assert.equal(existsSync(`${dir}.unavailable`), false);
    assert.deepEqual(lookup(sb.env, 'prometheus', 'promtool'), { path: join(dir, 'promtool'), version: 'v0.316.0', skip: false });
  } finally {
    sb.cleanup();
  }
});

test('without any setup the lookup says how to get the tool', () => {
  const sb = sandbox('exit 1');
  try {
    assert.match(String(lookup(sb.env, 'alertmanager', 'alertmanager').skip), /alertmanager v0\.35\.0 \(github\.com\/prometheus\/alertmanager\) is missing .*: run scripts\/setup-go-tools\.sh/);
    assert.throws(() => lookup(sb.env, 'alertmanager', 'amtool'));
  } finally {
    sb.cleanup();
  }
});
