import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { importNcclTests, runImport } from '../../src/commands/import-nccl-tests.js';
import { normalizeOp, parseNcclTests, parseNcclTestsJson, parseNcclTestsText } from '../../src/commands/nccl-tests-parse.js';
import { readTextfiles } from '../../src/collectors/textfile/index.js';
import { ConfigError, SourceError } from '../../src/core/errors.js';

const fixturePath = (name: string) => new URL(`../fixtures/comm/${name}`, import.meta.url).pathname;
const fixture = (name: string) => readFileSync(fixturePath(name), 'utf8');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

test('the recorded all_reduce_perf table parses to out-of-place and in-place rows', () => {
  const rows = parseNcclTestsText(fixture('nccl-tests-all_reduce_perf.txt'), 'all_reduce_perf');
  assert.equal(rows.length, 2);
  assert.deepEqual(rows.map((r) => [r.op, r.sizeBytes, r.inPlace]), [['all_reduce', 33554432, false], ['all_reduce', 33554432, true]]);
  assert.ok(close(rows[0].timeSeconds, 973.2e-6));
  assert.ok(close(rows[0].busBandwidthBytesPerSecond, 25.86e9));
  assert.ok(close(rows[1].timeSeconds, 969.7e-6));
  assert.ok(close(rows[1].algBandwidthBytesPerSecond, 34.6e9));
  assert.equal(parseNcclTestsText(fixture('nccl-tests-all_reduce_perf.txt'))[0].op, 'unknown');
});

test('the JSON report (synthetic sample of the -J format) parses; nan halves are dropped', () => {
  const rows = parseNcclTestsJson(fixture('nccl-tests-all_reduce_perf.synthetic.json'));
  assert.equal(rows.length, 5);
  assert.ok(rows.every((r) => r.op === 'all_reduce'));
  const big = rows.filter((r) => r.sizeBytes === 134217728);
  assert.deepEqual(big.map((r) => r.inPlace), [false]);
  assert.ok(close(big[0].busBandwidthBytesPerSecond, 329.707e9));
  assert.throws(() => parseNcclTestsJson('{"results": 3}'), /results/);
  assert.throws(() => parseNcclTestsJson('{"results":[{"size":-1}]}'), /size/);
  assert.throws(() => parseNcclTestsJson('{not json'), SourceError);
});

test('newer layouts: the op line, per-iteration columns, N/A #wrong, trailing timestamps', () => {
  const text = [
    '# nccl-tests version 2.17.6 nccl-headers=22803 nccl-library=22803',
    '# Collective test starting: all_gather_perf',
    '#',
    '#                                                              out-of-place (+ per-iteration)                                in-place (+ per-iteration)',
    '#       size         count      type   redop    root     time   algbw   busbw #wrong    i_min    i_max    i_p99    i_cv%     time   algbw   busbw #wrong    i_min    i_max    i_p99    i_cv%',
    '#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)     (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)',
    '     1048576        32768     float    none      -1    40.10   26.15   22.88    N/A    39.00    42.00    41.90     1.20    39.80   26.35   23.05    N/A    38.90    41.00    40.80     1.10  2026-01-15 10:00:00',
  ].join('\n');
  const rows = parseNcclTestsText(text);
  assert.deepEqual(rows.map((r) => [r.op, r.sizeBytes, r.inPlace, r.timeSeconds, r.busBandwidthBytesPerSecond]), [
    ['all_gather', 1048576, false, 40.1e-6, 22.88e9],
    ['all_gather', 1048576, true, 39.8e-6, 23.05e9],
  ]);
  assert.throws(() => parseNcclTestsText('# nothing here\n'), SourceError);
});

test('op names are normalized', () => {
  assert.equal(normalizeOp('/opt/nccl-tests/build/all_reduce_perf_mpi'), 'all_reduce');
  assert.equal(normalizeOp('AllReduce'), 'all_reduce');
  assert.equal(normalizeOp('sendrecv_perf'), 'sendrecv');
  assert.equal(normalizeOp('***'), 'unknown');
});

const row = fc.record({
  size: fc.integer({ min: 0, max: 2 ** 40 }),
  out: fc.record({ time: fc.double({ min: 0.01, max: 1e7, noNaN: true }), alg: fc.double({ min: 0, max: 1e4, noNaN: true }), bus: fc.double({ min: 0, max: 1e4, noNaN: true }) }),
  inp: fc.record({ time: fc.double({ min: 0.01, max: 1e7, noNaN: true }), alg: fc.double({ min: 0, max: 1e4, noNaN: true }), bus: fc.double({ min: 0, max: 1e4, noNaN: true }) }),
});

test('fuzz (10,000 runs each): tables and JSON round-trip; any input parses or throws SourceError', () => {
  const p = (v: number) => v.toPrecision(6);
  fc.assert(fc.property(fc.array(row, { minLength: 1, maxLength: 8 }), fc.constantFrom('all_reduce_perf', 'broadcast_perf', 'alltoall_perf'), (rows, prog) => {
    const header = '#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong';
    const lines = [`# Collective test starting: ${prog}`, header, ...rows.map((r) => `  ${r.size}  ${Math.floor(r.size / 4)}  float  sum  -1  ${p(r.out.time)}  ${p(r.out.alg)}  ${p(r.out.bus)}  0  ${p(r.inp.time)}  ${p(r.inp.alg)}  ${p(r.inp.bus)}  0`)];
    const parsed = parseNcclTests(lines.join('\n'));
    assert.equal(parsed.length, rows.length * 2);
    rows.forEach((r, i) => {
      const [o, n] = [parsed[2 * i], parsed[2 * i + 1]];
      assert.equal(o.op, normalizeOp(prog));
      assert.equal(o.sizeBytes, r.size);
      assert.equal(o.inPlace, false);
      assert.equal(n.inPlace, true);
      assert.ok(close(o.timeSeconds, Number(p(r.out.time)) / 1e6));
      assert.ok(close(n.busBandwidthBytesPerSecond, Number(p(r.inp.bus)) * 1e9));
    });
  }), { numRuns: 10_000 });
  fc.assert(fc.property(fc.array(row, { minLength: 1, maxLength: 8 }), (rows) => {
    const doc = { version: 2, args: ['./all_reduce_perf'], results: rows.map((r) => ({ size: r.size, out_of_place: { time: r.out.time, alg_bw: r.out.alg, bus_bw: r.out.bus, nwrong: 0 }, in_place: { time: r.inp.time, alg_bw: r.inp.alg, bus_bw: r.inp.bus, nwrong: null } })) };
    const parsed = parseNcclTests(JSON.stringify(doc));
    assert.equal(parsed.length, rows.length * 2);
    rows.forEach((r, i) => assert.ok(close(parsed[2 * i].timeSeconds, r.out.time / 1e6) && close(parsed[2 * i + 1].busBandwidthBytesPerSecond, r.inp.bus * 1e9)));
  }), { numRuns: 10_000 });
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.json(), fc.array(fc.constantFrom('#', ' ', '1', '-1', 'nan', 'time', 'busbw', 'size', '\n', '{', '"results":[', ']', '}'), { maxLength: 60 }).map((a) => a.join(''))), (s) => {
    try {
      for (const r of parseNcclTests(s)) assert.ok(r.timeSeconds >= 0 && r.busBandwidthBytesPerSecond >= 0 && Number.isInteger(r.sizeBytes));
    } catch (e) {
      assert.ok(e instanceof SourceError, String(e));
    }
  }), { numRuns: 10_000 });
});

test('import writes an atomic textfile the textfile collector serves', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-import-'));
  dirs.push(dir);
  const out = join(dir, 'nccl-tests.prom');
  const io = { stdin: async () => fixture('nccl-tests-all_reduce_perf.synthetic.json'), stdout: () => assert.fail('nothing on stdout with --output'), env: {} };
  assert.equal(await importNcclTests(['-', '--output', out], io), 0);
  assert.deepEqual(readdirSync(dir), ['nccl-tests.prom'], 'no temporary file is left behind');
  const read = await readTextfiles(dir);
  assert.deepEqual(read.errors, []);
  assert.deepEqual(read.files[0].ignored, []);
  const lat = read.samples.filter((s) => s.name === 'ds_nccl_test_latency_seconds');
  assert.equal(lat.length, 5);
  assert.deepEqual(lat[0].labels, { op: 'all_reduce', size_bytes: '8', in_place: 'false' });
  let printed = '';
  assert.equal(await runImport(['nccl-tests', fixturePath('nccl-tests-all_reduce_perf.txt'), '--op=all_reduce_perf'], { stdin: async () => '', stdout: (t) => (printed += t), env: {} }), 0);
  assert.match(printed, /ds_nccl_test_bus_bandwidth_bytes_per_second\{op="all_reduce",size_bytes="33554432",in_place="true"\} 25950000000/);
  await assert.rejects(runImport(['nope']), ConfigError);
  await assert.rejects(importNcclTests(['/nonexistent/file.txt']), SourceError);
});

test('ds-exporter import nccl-tests: exit codes through main', { timeout: 60_000 }, async () => {
  const run = promisify(execFile);
  const main = new URL('../../src/main.ts', import.meta.url).pathname;
  const ok = await run(process.execPath, ['--import', 'tsx', main, 'import', 'nccl-tests', fixturePath('nccl-tests-all_reduce_perf.txt')]);
  assert.match(ok.stdout, /ds_nccl_test_latency_seconds\{op="unknown",size_bytes="33554432",in_place="false"\} 0.0009732/);
  await assert.rejects(run(process.execPath, ['--import', 'tsx', main, 'import', 'nccl-tests', '/nonexistent']), (e: { code: number; stderr: string }) => e.code === 1 && /cannot read/.test(e.stderr));
  await assert.rejects(run(process.execPath, ['--import', 'tsx', main, 'import', 'nccl-tests', '--bogus']), (e: { code: number }) => e.code === 2);
});
