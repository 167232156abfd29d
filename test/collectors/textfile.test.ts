import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { parseTextfile, readTextfiles } from '../../src/collectors/textfile/index.js';
import { mapFamilies, MappingError } from '../../src/collectors/textfile/map.js';
import { ExpositionError } from '../../src/parse/exposition.js';
import { testApp, valueOf } from '../helpers/app.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/comm/${name}`, import.meta.url), 'utf8');
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'dsx-textfile-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
/** A textfile's families in order of first sample (strict parsing, as the collector reads it). */
const parseFamilies = (text: string) => [...parseTextfile(text).families.values()];

test('parser: HELP/TYPE, labels with escapes, special values, timestamps, histogram suffixes', () => {
  const fams = parseFamilies([
    '# HELP a_total Some help \\\\ here',
    '# TYPE a_total counter',
    'a_total{x="1",y="q\\"uote\\\\ back\\nline"} 3 1700000000000',
    '# a plain comment',
    '',
    'b +Inf',
    'c{} -1.5e-3',
    'd NaN',
    '# TYPE h histogram',
    'h_bucket{le="0.1"} 1',
    'h_bucket{le="+Inf"} 2',
    'h_sum 0.3',
    'h_count 2',
    '',
  ].join('\n'));
  assert.deepEqual(fams.map((f) => [f.name, f.type, f.samples.length]), [['a_total', 'counter', 1], ['b', 'untyped', 1], ['c', 'untyped', 1], ['d', 'untyped', 1], ['h', 'histogram', 4]]);
  assert.equal(fams[0].help, 'Some help \\ here');
  assert.deepEqual({ ...fams[0].samples[0], labels: { ...fams[0].samples[0].labels } }, { name: 'a_total', labels: { x: '1', y: 'q"uote\\ back\nline' }, value: 3, timestampMs: 1700000000000 });
  assert.equal(fams[1].samples[0].value, Infinity);
  assert.equal(fams[2].samples[0].value, -0.0015);
  assert.ok(Number.isNaN(fams[3].samples[0].value));
});

test('parser: broken lines are errors naming the line', () => {
  for (const [text, re] of [
    ['a 1\nb{x="1" 2\n', /line 2/],
    ['a one\n', /bad value/],
    ['a{x="1",x="2"} 1\n', /twice/],
    ['a 1\na 2\n', /duplicate/],
    ['# TYPE a gauge\n# TYPE a counter\n', /second TYPE/],
    ['a{x="\\q"} 1\n', /bad escape/],
    ['a 1 2 3\n', /value \[timestamp\]/],
    ['{x="1"} 1\n', /metric name/],
    ['# TYPE a wat\n', /unknown type/],
  ] as const) {
    assert.throws(() => parseTextfile(text), (e: Error) => e instanceof ExpositionError && re.test(e.message), text);
  }
});

test('parser fuzz: any text either parses or throws ExpositionError; generated expositions round-trip', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => {
    try {
      parseTextfile(s);
    } catch (e) {
      assert.ok(e instanceof ExpositionError, String(e));
    }
  }), { numRuns: 5000 });
  const name = fc.stringMatching(/^[a-z_][a-z0-9_]{0,12}$/);
  const labelValue = fc.string({ maxLength: 12 });
  const sample = fc.record({ labels: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/), labelValue, { maxKeys: 4 }), value: fc.double({ noNaN: true }) });
  fc.assert(fc.property(name, fc.uniqueArray(sample, { selector: (s) => JSON.stringify(Object.entries(s.labels).sort()), maxLength: 6, minLength: 1 }), (n, samples) => {
    const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const fmt = (v: number) => (v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));
    const text = `# TYPE ${n} gauge\n` + samples.map((s) => `${n}{${Object.entries(s.labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',')}} ${fmt(s.value)}\n`).join('');
    const fams = parseFamilies(text);
    assert.equal(fams.length, 1);
    assert.deepEqual(fams[0].samples.map((s) => [{ ...s.labels }, Object.is(s.value, -0) ? 0 : s.value]), samples.map((s) => [{ ...s.labels }, Object.is(s.value, -0) ? 0 : s.value]));
  }), { numRuns: 3000 });
});

test('NCCL Inspector fixture maps to catalog families in base units', () => {
  const { samples, ignored } = mapFamilies(parseTextfile(fixture('nccl-inspector.prom')));
  assert.deepEqual(ignored, []);
  const by = new Map(samples.map((s) => [s.name, s]));
  const exec = by.get('ds_nccl_collective_exec_time_seconds')!;
  assert.ok(Math.abs(exec.value - 9498.47e-6) < 1e-12);
  assert.deepEqual(exec.labels, { node: 'nvl72004-T01', gpu: '0', comm_name: 'DP Group 0', n_nodes: '1', nranks: '4', collective: 'AllReduce', message_size: '4-5GB', algo_proto: 'Ring_ll', slurm_job_id: 'unknown' });
  assert.equal(by.get('ds_nccl_bus_bandwidth_bytes_per_second')!.value, 678.263e9);
  assert.equal(by.get('ds_nccl_p2p_bus_bandwidth_bytes_per_second')!.value, 464.9e9);
  const p2p = by.get('ds_nccl_p2p_exec_time_seconds')!;
  assert.ok(Math.abs(p2p.value - 1154.87e-6) < 1e-12);
  assert.equal(p2p.labels.p2p_operation, 'Send');
  assert.equal(p2p.labels.message_size, '512-513MB');
});

test('NCCL Inspector per-device statistics (synthetic lines in its format) map to counters', () => {
  const { samples } = mapFamilies(parseTextfile(fixture('nccl-inspector-stats.prom')));
  assert.deepEqual(samples.map((s) => [s.name, s.type, s.value]), [
    ['ds_nccl_collectives_total', 'counter', 184320],
    ['ds_nccl_collectives_dropped_total', 'counter', 12],
    ['ds_nccl_p2p_operations_total', 'counter', 9216],
    ['ds_nccl_p2p_operations_dropped_total', 'counter', 0],
  ]);
  assert.deepEqual(samples[0].labels, { node: 'nvl72004-T01', gpu: '0', slurm_job_id: '4242' });
  assert.throws(() => mapFamilies(parseTextfile('nccl_collectives_total{gpu="GPU0"} -1\n')), MappingError);
});

test('mapping: textfile-sourced ds_ families pass, others are ignored, misfits are errors', () => {
  const ok = mapFamilies(parseTextfile('ds_nccl_test_latency_seconds{op="all_reduce",size_bytes="8",in_place="true"} 2e-5\nnode_load1 0.5\nds_gpu_up{gpu="0",uuid="x"} 1\n'));
  assert.deepEqual(ok.samples.map((s) => s.name), ['ds_nccl_test_latency_seconds']);
  assert.deepEqual(ok.ignored, ['node_load1', 'ds_gpu_up']);
  assert.throws(() => mapFamilies(parseTextfile('ds_nccl_test_latency_seconds{op="x"} 1\n')), MappingError);
  assert.throws(() => mapFamilies(parseTextfile('# TYPE ds_nccl_test_latency_seconds counter\nds_nccl_test_latency_seconds{op="x",size_bytes="1",in_place="false"} 1\n')), MappingError);
});

test('collector: broken, partial and duplicate files are skipped and flagged; the rest is served', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'a-inspector.prom'), fixture('nccl-inspector.prom'));
  writeFileSync(join(dir, 'b-broken.prom'), 'nccl_bus_bandwidth_gbs{gpu="GPU1" 3\n');
  writeFileSync(join(dir, 'c-partial.prom'), 'ds_nccl_test_latency_seconds{op="all_reduce",size_bytes="8",in_place="true"} 2.1');
  writeFileSync(join(dir, 'd-dup.prom'), fixture('nccl-inspector.prom'));
  writeFileSync(join(dir, 'e-other.prom'), 'node_textfile_thing 1\n');
  writeFileSync(join(dir, 'ignored.txt'), 'garbage');
  utimesSync(join(dir, 'a-inspector.prom'), 1_700_000_000, 1_700_000_000);
  const read = await readTextfiles(dir);
  assert.deepEqual(read.errors.map((e) => e.file).sort(), ['b-broken.prom', 'c-partial.prom', 'd-dup.prom']);
  assert.match(read.errors.find((e) => e.file === 'c-partial.prom')!.error, /no newline/);
  assert.deepEqual(read.files.map((f) => f.file), ['a-inspector.prom', 'e-other.prom']);

  const built = await testApp(['--no-collector.gpu', `--textfile.directory=${dir}`]);
  await built.scheduler.sampleAll();
  let text = (await built.app.inject({ url: '/metrics' })).body;
  assert.equal(valueOf(text, /^ds_textfile_scrape_error /), 1);
  assert.equal(valueOf(text, /^ds_textfile_mtime_seconds\{file="a-inspector.prom"\}/), 1_700_000_000);
  assert.equal(valueOf(text, /^ds_textfile_ignored_families\{file="e-other.prom"\}/), 1);
  assert.equal(valueOf(text, /^ds_nccl_bus_bandwidth_bytes_per_second\{/), 678263000000);
  assert.equal(valueOf(text, /^ds_exporter_collector_success\{collector="textfile"\}/), 1);
  assert.doesNotMatch(text, /node_textfile_thing|nccl_bus_bandwidth_gbs/);

  // Fix the files the way writers should: write a temporary file, rename it into place.
  rmSync(join(dir, 'b-broken.prom'));
  rmSync(join(dir, 'd-dup.prom'));
  writeFileSync(join(dir, '.c.tmp'), 'ds_nccl_test_latency_seconds{op="all_reduce",size_bytes="8",in_place="true"} 2.1e-05\n');
  renameSync(join(dir, '.c.tmp'), join(dir, 'c-partial.prom'));
  await built.scheduler.sampleAll();
  text = (await built.app.inject({ url: '/metrics' })).body;
  assert.equal(valueOf(text, /^ds_textfile_scrape_error /), 0);
  assert.equal(valueOf(text, /^ds_nccl_test_latency_seconds\{op="all_reduce",size_bytes="8",in_place="true"\}/), 2.1e-5);
  await built.close();
});

test('collector: a missing directory is a scrape error, not a failed exporter', async () => {
  const built = await testApp(['--no-collector.gpu', '--textfile.directory=/nonexistent/dsx-textfiles']);
  await built.scheduler.sampleAll();
  const text = (await built.app.inject({ url: '/metrics' })).body;
  assert.equal(valueOf(text, /^ds_textfile_scrape_error /), 1);
  await built.close();
});

test('collector: an unchanged file is not parsed again; a changed or removed one is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-textfile-cache-'));
  const file = join(dir, 'a.prom');
  writeFileSync(file, 'ds_nccl_test_latency_seconds{op="all_reduce",size_bytes="8",in_place="1"} 0.001\n');
  const cache = new Map();
  await readTextfiles(dir, cache);
  const first = cache.get('a.prom');
  await readTextfiles(dir, cache);
  assert.equal(cache.get('a.prom'), first, 'same entry: not parsed again');
  writeFileSync(file, 'ds_nccl_test_latency_seconds{op="all_reduce",size_bytes="8",in_place="1"} 0.002\n');
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  const read = await readTextfiles(dir, cache);
  assert.notEqual(cache.get('a.prom'), first);
  assert.equal(read.samples[0].value, 0.002);
  writeFileSync(file, 'broken{\n');
  utimesSync(file, new Date(), new Date(Date.now() + 10_000));
  assert.equal((await readTextfiles(dir, cache)).errors.length, 1);
  assert.equal((await readTextfiles(dir, cache)).errors.length, 1, 'a broken file stays reported');
  rmSync(file);
  await readTextfiles(dir, cache);
  assert.equal(cache.size, 0);
});
