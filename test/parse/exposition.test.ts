import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { ExpositionError, histogramSeries, parseExposition, parseValue, type FamilyType } from '../../src/parse/exposition.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/engines/${name}`, import.meta.url), 'utf8');

const one = (text: string, family: string) => {
  const f = parseExposition(text).families.get(family);
  assert.ok(f, `family ${family} missing`);
  return f;
};

test('label escaping: backslash, quote and newline', () => {
  const f = one('m{a="x\\\\y",b="say \\"hi\\"",c="l1\\nl2",d=""} 1\n', 'm');
  assert.deepEqual({ ...f.samples[0].labels }, { a: 'x\\y', b: 'say "hi"', c: 'l1\nl2', d: '' });
  assert.throws(() => parseExposition('m{a="\\t"} 1\n'), ExpositionError);
  assert.throws(() => parseExposition('m{a="open} 1\n'), ExpositionError);
  assert.throws(() => parseExposition('m{a="1",a="2"} 1\n'), /duplicate label a/);
});

test('special values: NaN, infinities, MSVC nan(ind), exponents', () => {
  for (const [s, v] of [['NaN', NaN], ['nan', NaN], ['-nan(ind)', NaN], ['nan(ind)', NaN], ['+Inf', Infinity], ['-Inf', -Infinity], ['Inf', Infinity], ['1e+06', 1e6], ['-2.5E-3', -0.0025], ['.5', 0.5], ['7.', 7]] as const) {
    const got = parseValue(s);
    assert.ok(Object.is(got, v) || (Number.isNaN(v) && Number.isNaN(got)), `${s} -> ${got}`);
  }
  for (const bad of ['', '0x10', '1_000', 'one', '1e', 'Infinityy', ' 1']) assert.equal(parseValue(bad), undefined, bad);
  const f = one('m{k="a"} NaN\nm{k="b"} +Inf\nm{k="c"} -nan(ind)\n', 'm');
  assert.ok(Number.isNaN(f.samples[0].value));
  assert.equal(f.samples[1].value, Infinity);
  assert.ok(Number.isNaN(f.samples[2].value));
});

test('timestamps: milliseconds in text format, seconds in OpenMetrics', () => {
  assert.equal(one('m 1 1700000000123\n', 'm').samples[0].timestampMs, 1700000000123);
  const om = parseExposition('# TYPE m gauge\nm 1 1700000000.5\n# EOF\n');
  assert.equal(om.format, 'openmetrics');
  assert.equal(om.families.get('m')!.samples[0].timestampMs, 1700000000500);
  assert.throws(() => parseExposition('m 1 17.5\n'), /invalid timestamp/);
  assert.throws(() => parseExposition('m 1 12 extra\n'), /unexpected text/);
});

test('OpenMetrics: counters without _total in TYPE, _created, exemplars, # EOF, unit', () => {
  const text = [
    '# TYPE req counter',
    '# UNIT req requests',
    '# HELP req Requests.',
    'req_total{code="200"} 10 # {trace_id="abc"} 1.0 1700000000.1',
    'req_created{code="200"} 1700000000.0',
    '# TYPE lat histogram',
    'lat_bucket{le="0.1"} 1',
    'lat_bucket{le="+Inf"} 2',
    'lat_count 2',
    'lat_sum 0.3',
    'lat_created 1700000000',
    '# EOF',
    '',
  ].join('\n');
  const exp = parseExposition(text);
  const req = exp.families.get('req')!;
  assert.equal(req.type, 'counter');
  assert.equal(req.unit, 'requests');
  assert.deepEqual(req.samples.map((s) => s.name), ['req_total', 'req_created']);
  assert.equal(req.samples[0].value, 10);
  assert.deepEqual(exp.families.get('lat')!.samples.map((s) => s.name), ['lat_bucket', 'lat_bucket', 'lat_count', 'lat_sum', 'lat_created']);
  assert.throws(() => parseExposition('m 1\n# EOF\nm 2\n'), /content after # EOF/);
});

test('CRLF line endings, blank lines, tabs and comments in any order', () => {
  const text = '# a comment\r\nm_total{a="1"}\t3\r\n\r\n# HELP m_total Late help.\r\n# TYPE m_total counter\r\n   \r\n';
  const f = one(text, 'm_total');
  assert.equal(f.type, 'counter'); // TYPE after the sample still applies
  assert.equal(f.help, 'Late help.');
  assert.equal(f.samples[0].value, 3);
  // Bucket samples before the histogram's TYPE line still join the family.
  const h = parseExposition('x_bucket{le="1"} 1\nx_count 1\n# TYPE x histogram\n');
  assert.equal(h.families.get('x')!.type, 'histogram');
  assert.equal(h.families.get('x')!.samples.length, 2);
});

test('counters without _total, histograms ending in _total, duplicate series', () => {
  const exp = parseExposition('# TYPE c counter\nc 4\n# TYPE t_total histogram\nt_total_bucket{le="1"} 2\nt_total_bucket{le="+Inf"} 3\nt_total_count 3\nt_total_sum 4\nd{a="1"} 1\nd{a="1"} 2\n');
  assert.equal(exp.families.get('c')!.samples[0].value, 4);
  assert.equal(exp.families.get('t_total')!.samples.length, 4);
  assert.equal(exp.duplicates, 1);
  assert.deepEqual(exp.families.get('d')!.samples.map((s) => s.value), [2]);
});

test('histograms without +Inf take it from _count; summaries are not histograms', () => {
  const exp = parseExposition('# TYPE h histogram\nh_bucket{le="0.5",m="a"} 3\nh_bucket{le="1",m="a"} 5\nh_count{m="a"} 7\nh_sum{m="a"} 4\n# TYPE s summary\ns{quantile="0.5"} 1\ns_count 2\ns_sum 3\n');
  const [h] = histogramSeries(exp, 'h');
  assert.deepEqual(h.bounds, [0.5, 1, Infinity]);
  assert.deepEqual(h.counts, [3, 5, 7]);
  assert.equal(h.sum, 4);
  assert.equal(h.labels.m, 'a');
  assert.deepEqual(histogramSeries(exp, 's'), []);
  // Untyped bucket families (no TYPE lines) are still read as a histogram.
  const u = histogramSeries(parseExposition('u_bucket{le="1"} 1\nu_bucket{le="2"} 4\n'), 'u');
  assert.deepEqual(u[0].counts, [1, 4, 4]);
});

test('bounds: payload size and sample count give a clear error', () => {
  const big = 'm{a="x"} 1\n'.repeat(1000);
  assert.throws(() => parseExposition(big, { maxBytes: 5000 }), (e: unknown) => e instanceof ExpositionError && e.reason === 'too_large' && /larger than 5000 bytes/.test(e.message));
  assert.throws(() => parseExposition('m{a="1"} 1\nm{a="2"} 1\nm{a="3"} 1\n', { maxSeries: 2 }), (e: unknown) => e instanceof ExpositionError && e.reason === 'too_many_series' && /more than 2 samples/.test(e.message));
  // Multi-byte text is measured in bytes, not characters.
  assert.throws(() => parseExposition(`m{a="${'é'.repeat(3000)}"} 1\n`, { maxBytes: 5000 }), /larger than/);
});

test('strict: the text format 0.0.4 only, a repeated series or a late or second TYPE is an error', () => {
  const strict = (text: string) => parseExposition(text, { strict: true });
  // What the lenient parser accepts and strict parsing refuses.
  for (const [text, re] of [
    ['d{a="1"} 1\nd{a="1"} 2\n', /line 2: duplicate sample for d/],
    ['d{a="1",b="2"} 1\nd{b="2",a="1"} 2\n', /duplicate sample/], // label order does not make a new series
    ['m 1\n# TYPE m gauge\n', /line 2: TYPE of m after its samples/],
    ['h_count 1\n# TYPE h histogram\n', /TYPE of h after its samples/],
    ['# TYPE m gauge\n# TYPE m counter\n', /second TYPE for m/],
    ['# TYPE m info\n', /unknown type/],
    ['# TYPE m GAUGE\n', /unknown type/],
    ['m_total 10 # {trace_id="abc"} 1.0\n', /unexpected text after "value \[timestamp\]"/],
    ['m 1 1700000000.5\n# EOF\n', /invalid timestamp/], // never OpenMetrics
  ] as const) {
    parseExposition(text); // accepted without strict
    assert.throws(() => strict(text), (e: unknown) => e instanceof ExpositionError && re.test(e.message), text);
  }
  // A repeated identical TYPE, or a TYPE after an untyped one, is fine.
  assert.equal(strict('# TYPE m untyped\n# TYPE m gauge\n# TYPE m gauge\nm 1\n').families.get('m')!.type, 'gauge');
  // `# EOF` and `# UNIT` are plain comments; only _bucket/_count/_sum join a family.
  const exp = strict('# TYPE c counter\n# UNIT c bad-name!\nc_total 1\nc_created 2\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 2\nh_created 3\n# EOF\nx 1\n');
  assert.equal(exp.format, 'text');
  assert.deepEqual([...exp.families.keys()], ['c_total', 'c_created', 'h', 'h_created', 'x', 'c']);
  assert.deepEqual(exp.families.get('h')!.samples.map((s) => s.name), ['h_bucket', 'h_count', 'h_sum']);
  assert.equal(exp.duplicates, 0);
  // The bounds still hold.
  assert.throws(() => parseExposition('m{a="x"} 1\n'.repeat(1000), { strict: true, maxBytes: 5000 }), (e: unknown) => e instanceof ExpositionError && e.reason === 'too_large');
});

test('hostile label names and values stay plain data', () => {
  const f = one('m{__proto__="polluted",constructor="x",toString="y",v="\\"}{,=\\n"} 1\n', 'm');
  const l = f.samples[0].labels;
  assert.equal(l.__proto__, 'polluted');
  assert.equal(l.constructor, 'x');
  assert.equal(l.v, '"}{,=\n');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // Nothing inherited from Object.prototype.
  assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(l)), null);
  assert.equal(one('m{a="1"} 1\n', 'm').samples[0].labels.toString, undefined);
});

test('real engine payloads parse: vLLM, SGLang, Triton, TensorRT-LLM backend', () => {
  const vllm = parseExposition(fixture('vllm.txt'));
  assert.equal(vllm.families.get('vllm:prompt_tokens_total')!.type, 'counter');
  assert.equal(vllm.families.get('vllm:time_to_first_token_seconds')!.type, 'histogram');
  const ttft = histogramSeries(vllm, 'vllm:time_to_first_token_seconds');
  assert.equal(ttft.length, 1);
  assert.equal(ttft[0].labels.model_name, 'facebook/opt-125m');
  assert.equal(ttft[0].counts.at(-1), 1);
  assert.ok(vllm.families.has('vllm:gpu_cache_usage_perc') && vllm.families.has('vllm:kv_cache_usage_perc'));
  assert.equal(vllm.duplicates, 0);
  const sglang = parseExposition(fixture('sglang.txt'));
  assert.equal(sglang.families.get('sglang:generation_tokens_total')!.samples[0].value, 7557572);
  assert.equal(histogramSeries(sglang, 'sglang:time_to_first_token_seconds')[0].counts.at(-1), 11008);
  const triton = parseExposition(fixture('triton.txt'));
  assert.equal(triton.families.get('nv_inference_request_success')!.samples.length, 8);
  assert.equal(triton.families.get('nv_inference_request_summary_us')!.type, 'summary');
  const trt = parseExposition(fixture('trtllm-triton-backend.txt'));
  assert.equal(trt.families.get('nv_trt_llm_kv_cache_block_metrics')!.samples.length, 5);
});

// ---- fuzzing ----

test('fuzz: random garbage never throws anything but an ExpositionError and never hangs', () => {
  const pieces = ['m', 'x_bucket', '{', '}', '=', '"', '\\', '\\n', ',', ' ', '\t', '\n', '\r\n', '#', '# TYPE m histogram', '# HELP', '# EOF', 'le="+Inf"', 'NaN', '+Inf', '1e9', '-', '.', '0', 'é', '\u0000', 'a="b"', ':'];
  const garbage = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.array(fc.constantFrom(...pieces), { maxLength: 60 }).map((a) => a.join('')),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  fc.assert(
    fc.property(garbage, fc.boolean(), (text, strict) => {
      try {
        const exp = parseExposition(text, { maxBytes: 4096, maxSeries: 50, strict });
        for (const f of exp.families.values()) for (const s of f.samples) assert.equal(typeof s.value, 'number');
      } catch (err) {
        if (!(err instanceof ExpositionError)) throw err;
      }
    }),
    { numRuns: 12_000 },
  );
});

test('fuzz: pathological long lines parse in linear time', () => {
  const cases = ['m{' + 'a="b",'.repeat(20000) + '} 1', 'm{a="' + '\\\\'.repeat(50000) + '"} 1', '#'.repeat(100000), '# TYPE ' + ' '.repeat(100000) + 'x', 'x'.repeat(100000) + ' 1', '{'.repeat(100000)];
  for (const c of cases) {
    const t0 = performance.now();
    try {
      parseExposition(c);
    } catch (err) {
      assert.ok(err instanceof ExpositionError, String(err));
    }
    assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
  }
});

interface GenFamily {
  name: string;
  type: FamilyType;
  help: string;
  series: Array<{ labels: Array<[string, string]>; value: number; ts?: number }>;
}

const metricName = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,12}$/).filter((n) => !/_(bucket|count|sum|created|total|gcount|gsum|info)$/.test(n));
const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,8}$/).filter((n) => n !== 'le' && n !== 'quantile');
const labelValue = fc.string({ maxLength: 12, unit: fc.oneof(fc.constantFrom('\\', '"', '\n', ' ', '}', ',', '=', 'é', '€'), fc.string({ minLength: 1, maxLength: 1 })) });
const sampleValue = fc.oneof(fc.double({ noNaN: false }), fc.integer().map(Number), fc.constantFrom(Infinity, -Infinity, NaN, 0, -0));

const genFamily: fc.Arbitrary<GenFamily> = fc.record({
  name: metricName,
  type: fc.constantFrom<FamilyType>('gauge', 'counter', 'untyped'),
  help: fc.string({ maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, '').replace(/^[ \t]+/, '')),
  series: fc.uniqueArray(
    fc.record({
      labels: fc.uniqueArray(fc.tuple(labelName, labelValue), { maxLength: 4, selector: (t) => t[0] }),
      value: sampleValue,
      ts: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
    }),
    { maxLength: 5, selector: (s) => JSON.stringify([...s.labels].sort((a, b) => (a[0] < b[0] ? -1 : 1))) },
  ),
});

function fmtValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function render(fams: GenFamily[], om: boolean, crlf: boolean): string {
  const lines: string[] = [];
  for (const f of fams) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\')}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.series) {
      const ls = s.labels.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
      const ts = s.ts === undefined ? '' : om ? ` ${s.ts / 1000}` : ` ${s.ts}`;
      lines.push(`${f.name}${ls ? `{${ls}}` : ''} ${fmtValue(s.value)}${ts}`);
    }
  }
  if (om) lines.push('# EOF');
  return lines.join(crlf ? '\r\n' : '\n') + (crlf ? '\r\n' : '\n');
}

test('fuzz: generated valid expositions round-trip (text and OpenMetrics, LF and CRLF)', () => {
  fc.assert(
    fc.property(fc.uniqueArray(genFamily, { maxLength: 6, selector: (f) => f.name }), fc.boolean(), fc.boolean(), (fams, om, crlf) => {
      const text = render(fams, om, crlf);
      const exp = parseExposition(text);
      assert.equal(exp.format, om ? 'openmetrics' : 'text');
      // A valid text-format payload reads the same strictly.
      if (!om) assert.deepEqual(parseExposition(text, { strict: true }), exp);
      for (const g of fams) {
        const f = exp.families.get(g.name);
        assert.ok(f, g.name);
        assert.equal(f.type, g.type);
        assert.equal(f.help, g.help);
        assert.equal(f.samples.length, g.series.length);
        g.series.forEach((s, i) => {
          const got = f.samples[i];
          assert.deepEqual({ ...got.labels }, Object.fromEntries(s.labels));
          assert.ok(Object.is(got.value, s.value) || (Number.isNaN(s.value) && Number.isNaN(got.value)) || (got.value === 0 && s.value === 0), `${got.value} vs ${s.value}`);
          if (s.ts === undefined) assert.equal(got.timestampMs, undefined);
          else assert.ok(Math.abs(got.timestampMs! - s.ts) < 1e-3 * Math.max(1, s.ts / 1e9), `${got.timestampMs} vs ${s.ts}`);
        });
      }
    }),
    { numRuns: 10_000 },
  );
});

test('fuzz: generated histograms round-trip through histogramSeries, with or without +Inf', () => {
  const hist = fc.record({
    name: metricName,
    labels: fc.uniqueArray(fc.tuple(labelName, labelValue), { maxLength: 3, selector: (t) => t[0] }),
    bounds: fc.uniqueArray(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 8, comparator: 'SameValueZero' }).map((b) => b.map((x) => x + 0).sort((x, y) => x - y)),
    increments: fc.array(fc.nat({ max: 1000 }), { minLength: 9, maxLength: 9 }),
    withInf: fc.boolean(),
    om: fc.boolean(),
  });
  fc.assert(
    fc.property(hist, (h) => {
      const counts: number[] = [];
      let c = 0;
      h.bounds.forEach((_, i) => counts.push((c += h.increments[i])));
      const total = c + h.increments[8];
      const ls = h.labels.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
      const lines = [`# TYPE ${h.name} histogram`];
      h.bounds.forEach((b, i) => lines.push(`${h.name}_bucket{${[...ls, `le="${b}"`].join(',')}} ${counts[i]}`));
      if (h.withInf) lines.push(`${h.name}_bucket{${[...ls, 'le="+Inf"'].join(',')}} ${total}`);
      lines.push(`${h.name}_count${ls.length ? `{${ls.join(',')}}` : ''} ${total}`);
      lines.push(`${h.name}_sum${ls.length ? `{${ls.join(',')}}` : ''} 12.5`);
      if (h.om) lines.push('# EOF');
      const [s, ...rest] = histogramSeries(parseExposition(lines.join('\n') + '\n'), h.name);
      assert.equal(rest.length, 0);
      assert.deepEqual({ ...s.labels }, Object.fromEntries(h.labels));
      assert.deepEqual(s.bounds, [...h.bounds, Infinity]);
      assert.deepEqual(s.counts, [...counts, total]);
      assert.equal(s.sum, 12.5);
    }),
    { numRuns: 3000 },
  );
});
