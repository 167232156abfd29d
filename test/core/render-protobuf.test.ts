import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { catalog } from '../../src/catalog/index.js';
import { bucketIndex, bucketUpperBound, encodeSide, ExponentialBuckets, INITIAL_SCHEMA, MAX_BUCKETS, ZERO_THRESHOLD } from '../../src/core/native-histogram.js';
import { ProtoWriter } from '../../src/core/protobuf.js';
import { SampleStore } from '../../src/core/store.js';
import { assertSameAsText, decodeExposition, delimited, expandSide, fields, type DecodedFamily } from '../helpers/protobuf-decode.js';

const id = { gpu: '0', uuid: 'GPU-0' };
const em = { engine: 'vllm', model: 'm' };

async function both(s: SampleStore): Promise<{ text: string; pb: DecodedFamily[]; body: Buffer }> {
  const text = (await s.render('text')).body.toString();
  const r = await s.render('protobuf');
  assert.match(r.contentType, /^application\/vnd\.google\.protobuf; proto=io\.prometheus\.client\.MetricFamily; encoding=delimited/);
  return { text, pb: decodeExposition(r.body), body: r.body };
}

test('protobuf carries exactly what the text format carries: gauges, counters, info, histograms; no timestamps', async () => {
  const s = new SampleStore();
  s.commit(
    s.batch('gpu')
      .gauge('ds_gpu_power_watts', id, 123.5)
      .gauge('ds_gpu_temperature_celsius', id, -0)
      .gauge('ds_gpu_utilization_ratio', id, Infinity)
      .counter('ds_gpu_busy_seconds_total', id, 2 ** 40 + 0.25)
      .info('ds_gpu_info', { ...id, name: 'NVIDIA H100 80GB HBM3', pci_bus_id: '00000000:18:00.0', driver_version: '580.65', mig_mode: '' }),
  );
  s.commit(s.batch('engine').histogram('ds_serving_time_to_first_token_seconds', em, catalog.find((d) => d.name === 'ds_serving_time_to_first_token_seconds')!.buckets!.map((_, i) => i * 3).concat([80]), 12.5));
  for (const v of [0.00003, 0.0004, 0.0004, 0.002, 7]) s.commit(s.batch('peers').observe('ds_comm_peer_latency_seconds', { peer: 'a:1' }, v));
  const { text, pb } = await both(s);
  assertSameAsText(text, pb);
  for (const f of pb) for (const m of f.metrics) assert.equal(m.timestampMs, undefined, `${f.name} carries no timestamp, like the text format`);
  const info = pb.find((f) => f.name === 'ds_gpu_info')!;
  assert.equal(info.type, 'GAUGE');
  assert.equal(info.metrics[0].labels.mig_mode, '');
  assert.equal(pb.find((f) => f.name === 'ds_gpu_busy_seconds_total')!.type, 'COUNTER');
  assert.equal(pb.find((f) => f.name === 'ds_gpu_busy_seconds_total')!.metrics[0].counter, 2 ** 40 + 0.25);
  assert.ok(Object.is(pb.find((f) => f.name === 'ds_gpu_temperature_celsius')!.metrics[0].gauge, -0));
});

test('an engine histogram set whole is classic only; an observed one carries native buckets beside its classic ones', async () => {
  const s = new SampleStore();
  const ttft = catalog.find((d) => d.name === 'ds_serving_time_to_first_token_seconds')!;
  s.commit(s.batch('engine').histogram(ttft.name, em, ttft.buckets!.map(() => 4).concat([4]), 1));
  const values = [0, 0.00003, 0.0004, 0.0004, 0.002, 0.5, 1, 2, 7];
  for (const v of values) s.commit(s.batch('peers').observe('ds_comm_peer_latency_seconds', { peer: 'a:1' }, v));
  const { pb } = await both(s);
  const classic = pb.find((f) => f.name === ttft.name)!.metrics[0].histogram!;
  assert.equal(classic.schema, undefined);
  assert.equal(classic.positiveSpans.length, 0);
  assert.equal(classic.zeroThreshold, undefined);
  const h = pb.find((f) => f.name === 'ds_comm_peer_latency_seconds')!.metrics[0].histogram!;
  assert.equal(h.count, values.length);
  assert.equal(h.schema, INITIAL_SCHEMA);
  assert.equal(h.zeroThreshold, ZERO_THRESHOLD);
  assert.equal(h.zeroCount, 1);
  assert.ok(h.buckets.length > 0, 'classic buckets kept');
  // Each value lies in the bucket it is counted in, computed here from the schema's definition.
  const pos = expandSide(h.positiveSpans, h.positiveDeltas);
  const expected = new Map<number, number>();
  for (const v of values.filter((x) => x > 0)) {
    const base = 2 ** (2 ** -h.schema!);
    const i = Math.ceil(Math.log(v) / Math.log(base) - 1e-9);
    assert.ok(base ** (i - 1) < v * (1 + 1e-12) && v <= base ** i * (1 + 1e-12), `${v} in (${base ** (i - 1)}, ${base ** i}]`);
    expected.set(i, (expected.get(i) ?? 0) + 1);
  }
  assert.deepEqual(pos, expected);
  assert.equal(h.zeroCount! + [...pos.values()].reduce((a, b) => a + b, 0), h.count);
});

test('a histogram kept before its first observation is native with no buckets; one set whole later loses its native part', async () => {
  const s = new SampleStore();
  s.commit(s.batch('peers').keep('ds_comm_peer_latency_seconds', { peer: 'a:1' }));
  let h = (await both(s)).pb.find((f) => f.name === 'ds_comm_peer_latency_seconds')!.metrics[0].histogram!;
  assert.equal(h.schema, INITIAL_SCHEMA);
  assert.equal(h.zeroThreshold, ZERO_THRESHOLD, 'a zero threshold above 0 marks it native for the server');
  assert.equal(h.count, 0);
  s.commit(s.batch('peers').observe('ds_comm_peer_latency_seconds', { peer: 'a:1' }, 0.001));
  h = (await both(s)).pb.find((f) => f.name === 'ds_comm_peer_latency_seconds')!.metrics[0].histogram!;
  assert.equal(h.count, 1);
  assert.deepEqual([...expandSide(h.positiveSpans, h.positiveDeltas).values()], [1]);
  const peerBuckets = catalog.find((d) => d.name === 'ds_comm_peer_latency_seconds')!.buckets!;
  s.commit(s.batch('peers').histogram('ds_comm_peer_latency_seconds', { peer: 'a:1' }, peerBuckets.map(() => 2).concat([2]), 0.5));
  h = (await both(s)).pb.find((f) => f.name === 'ds_comm_peer_latency_seconds')!.metrics[0].histogram!;
  assert.equal(h.schema, undefined, 'no native part once the observations are unknown');
  assert.equal(h.count, 2);
});

test('fractional bucket counts (re-bucketed engine histograms) use the float fields', async () => {
  const s = new SampleStore();
  const ttft = catalog.find((d) => d.name === 'ds_serving_time_to_first_token_seconds')!;
  const cum = ttft.buckets!.map((_, i) => i * 0.5).concat([ttft.buckets!.length * 0.5]);
  s.commit(s.batch('engine').histogram(ttft.name, em, cum, 3.25));
  const { text, pb } = await both(s);
  assertSameAsText(text, pb);
  const h = pb[0].metrics[0].histogram!;
  assert.equal(h.count, undefined);
  assert.equal(h.countFloat, ttft.buckets!.length * 0.5);
  assert.equal(h.buckets[3].cumulativeFloat, 1.5);
});

test('label values with quotes, backslashes, newlines and any UTF-8 arrive unescaped; lone surrogates become U+FFFD', async () => {
  const s = new SampleStore();
  const odd = 'a"b\\c\nd ☃ 𝄞 \u0000';
  s.commit(s.batch('gpu').gauge('ds_gpu_up', { gpu: '0', uuid: odd }, 1).gauge('ds_gpu_up', { gpu: '1', uuid: 'x\uD800y' }, 1));
  const { text, pb } = await both(s);
  assertSameAsText(text.replace('x\uD800y', 'x\uFFFDy'), pb);
  assert.equal(pb[0].metrics[0].labels.uuid, odd);
  assert.equal(pb[0].metrics[1].labels.uuid, 'x\uFFFDy');
});

test('the whole exposition with the process and Node.js metrics: the same families, types and series as the text format', async () => {
  const s = new SampleStore({ processMetrics: true });
  s.commit(s.batch('gpu').gauge('ds_gpu_up', id, 1));
  // Let the GC observer and the event-loop monitor record something.
  global.gc?.();
  await new Promise((r) => setTimeout(r, 50));
  const { text, pb } = await both(s);
  // Runtime values move between the two renderings; their series and types must not.
  assertSameAsText(text, pb, { valuesOf: (name) => name.startsWith('ds_') });
  const names = new Set(pb.map((f) => f.name));
  assert.ok(names.has('process_cpu_seconds_total'), 'counters keep _total in protobuf');
  assert.equal(pb.find((f) => f.name === 'process_cpu_seconds_total')!.type, 'COUNTER');
  assert.ok(pb.find((f) => f.name === 'nodejs_heap_space_size_total_bytes')!.metrics.every((m) => m.labels.space));
});

test('rendering is cached like the text one: the same promise until a commit; an unchanged family keeps its bytes', async () => {
  const s = new SampleStore();
  s.commit(s.batch('gpu').gauge('ds_gpu_up', id, 1));
  s.commit(s.batch('sim').gauge('ds_engine_up', { target: 't', engine: 'vllm' }, 1));
  const a = s.render('protobuf');
  assert.equal(s.render('protobuf'), a, 'concurrent scrapes share one rendering');
  const first = (await a).body;
  s.commit(s.batch('gpu').gauge('ds_gpu_up', id, 0));
  const second = (await s.render('protobuf')).body;
  const [gpuA, engineA] = delimited(first);
  const [gpuB, engineB] = delimited(second);
  assert.notDeepEqual(gpuA, gpuB);
  assert.deepEqual(engineA, engineB);
  assert.equal(decodeExposition(second)[0].metrics[0].gauge, 0);
});

test('a large exposition: 60,000 series in one family, multi-byte length prefixes, decoded back exactly', async () => {
  const s = new SampleStore();
  const b = s.batch('gpu');
  for (let i = 0; i < 60_000; i++) b.gauge('ds_gpu_power_watts', { gpu: String(i), uuid: `GPU-${i.toString(16).padStart(32, '0')}` }, i + 0.5);
  s.commit(b);
  const t0 = performance.now();
  const r = await s.render('protobuf');
  const ms = performance.now() - t0;
  assert.ok(r.body.length > 4_000_000, `${r.body.length} bytes`);
  const fam = decodeExposition(r.body)[0];
  assert.equal(fam.metrics.length, 60_000);
  assert.equal(fam.metrics[59_999].gauge, 59_999.5);
  assert.equal(fam.metrics[12_345].labels.uuid, `GPU-${(12_345).toString(16).padStart(32, '0')}`);
  assert.ok(ms < 5000, `rendering took ${ms} ms`);
  const gz = await r.gzip();
  assert.ok(gz.length < r.body.length);
});

test('the writer: varints up to 2^53, zigzag, nested messages whose length needs several bytes', () => {
  const w = new ProtoWriter(1);
  const ints = [0, 1, 127, 128, 300, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1];
  for (const n of ints) w.uint(1, n);
  const sints = [0, -1, 1, -64, 64, -(2 ** 31), 2 ** 31, -(2 ** 52), 2 ** 52];
  for (const n of sints) w.sint(2, n);
  w.fork(3).string(1, 'x'.repeat(70_000)).fork(2).double(1, Math.PI).join().join();
  const out = fields(w.finish());
  assert.deepEqual(out.filter((f) => f.no === 1).map((f) => Number((f as { int: bigint }).int)), ints);
  assert.deepEqual(out.filter((f) => f.no === 2).map((f) => { const v = (f as { int: bigint }).int; return Number((v >> 1n) ^ -(v & 1n)); }), sints);
  const nested = fields((out.find((f) => f.no === 3) as { bytes: Buffer }).bytes);
  assert.equal((nested[0] as { bytes: Buffer }).bytes.length, 70_000);
  assert.equal(fields((nested[1] as { bytes: Buffer }).bytes)[0].no, 1);
  assert.throws(() => new ProtoWriter().join(), /without fork/);
  assert.throws(() => new ProtoWriter().fork(1).finish(), /open fork/);
});

test('bucket index: each value lies in (upper(i-1), upper(i)] for every schema, powers of two on the upper bound', () => {
  fc.assert(
    fc.property(fc.double({ min: 1e-300, max: 1e300, noNaN: true }), fc.integer({ min: -4, max: 8 }), (v, schema) => {
      const i = bucketIndex(v, schema);
      const hi = bucketUpperBound(i, schema);
      const lo = bucketUpperBound(i - 1, schema);
      // Bounds computed with Math.pow may be off by an ulp or so from the exact ones.
      return lo <= v * (1 + 1e-12) && v <= hi * (1 + 1e-12) && lo < v * (1 + 1e-12);
    }),
    { numRuns: 3000 },
  );
  for (let schema = -4; schema <= 8; schema++) {
    for (const e of [-20, -1, 0, 1, 10]) {
      // Bucket bounds of a negative schema are powers of 2^(2^-schema).
      const v = 2 ** (e * 2 ** Math.max(0, -schema));
      const i = bucketIndex(v, schema);
      assert.equal(bucketUpperBound(i, schema), v, `${v} is the upper bound of its bucket at schema ${schema}`);
    }
  }
  assert.equal(bucketIndex(Number.MIN_VALUE, 0), -1074, 'subnormals');
  assert.equal(bucketIndex(Number.MAX_VALUE, 0), 1024);
});

test('spans and deltas expand back to exactly the buckets, for any set of buckets', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.integer({ min: -3000, max: 3000 }).map(String), fc.integer({ min: 1, max: 2 ** 40 }), { maxKeys: 200 }), (d) => {
      const side = new Map(Object.entries(d).map(([k, v]) => [Number(k), v]));
      const enc = encodeSide(side);
      assert.deepEqual(expandSide(enc.spans, enc.deltas), side);
      return true;
    }),
  );
});

test('hostile observations across the whole double range: the resolution drops, the bucket count stays bounded, nothing is lost', () => {
  const n = new ExponentialBuckets();
  let count = 0;
  fc.assert(
    fc.property(fc.double({ min: -1e300, max: 1e300, noNaN: true }), (v) => {
      n.observe(v);
      count++;
      return n.positive.size + n.negative.size <= MAX_BUCKETS;
    }),
    { numRuns: 5000 },
  );
  assert.ok(n.schema < INITIAL_SCHEMA, `schema ${n.schema}`);
  assert.equal(n.count, count);
  for (const v of [Number.MIN_VALUE, -Number.MIN_VALUE, 0, -0, ZERO_THRESHOLD]) n.observe(v);
  assert.equal(n.count, count + 5);
});

test('a store histogram fed hostile values keeps native and classic counts equal', async () => {
  const s = new SampleStore();
  const b = s.batch('push');
  for (let i = 0; i < 2000; i++) b.observe('ds_comm_collective_latency_seconds', { op: 'all_reduce', job: 'j' }, (i % 2 ? 1 : -1) * 10 ** ((i % 600) - 300));
  s.commit(b);
  const { text, pb } = await both(s);
  assertSameAsText(text, pb);
  const h = pb[0].metrics[0].histogram!;
  const total = h.zeroCount! + [...expandSide(h.positiveSpans, h.positiveDeltas).values(), ...expandSide(h.negativeSpans, h.negativeDeltas).values()].reduce((a, c) => a + c, 0);
  assert.equal(total, 2000);
  assert.equal(h.count, 2000);
  assert.ok(h.positiveSpans.length + h.negativeSpans.length > 0);
});

test('every metric and label name the exporter can serve is in the legacy character set, so each escaping scheme serves the same bytes', async () => {
  const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
  for (const d of catalog) {
    assert.match(d.name, metricName);
    for (const l of d.labels) assert.match(l, labelName, `${d.name}: label ${l}`);
  }
  const s = new SampleStore({ processMetrics: true });
  for (const m of await s.textRegistry.getMetricsAsJSON()) {
    assert.match(m.name, metricName);
    for (const v of m.values) for (const l of Object.keys(v.labels)) assert.match(l, labelName, `${m.name}: label ${l}`);
  }
});
