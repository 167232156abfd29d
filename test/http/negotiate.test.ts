import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { negotiate, parseAccept } from '../../src/http/negotiate.js';
import { testApp } from '../helpers/app.js';
import { assertSameAsText, decodeExposition } from '../helpers/protobuf-decode.js';

const TEXT = 'text/plain; version=0.0.4; charset=utf-8';
const OM1 = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const OM0 = 'application/openmetrics-text; version=0.0.1; charset=utf-8';
const PB = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';
const PB_RANGE = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

// The Accept headers real servers send (Prometheus 3 builds its own from scrape_protocols and
// metric_name_escaping_scheme; 2.42's are fixed strings).
const PROM3_DEFAULT = 'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3';
const PROM3_PROTO_FIRST = `${PB_RANGE};q=0.7,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2`;
const PROM3_TEXT_ONLY = 'text/plain;version=1.0.0;escaping=underscores;q=0.7,*/*;q=0.6';
const PROM2_DEFAULT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const PROM2_NATIVE = `${PB_RANGE},application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`;

const CASES: Array<[string | undefined, string, string]> = [
  // [Accept, expected content type, why]
  [undefined, TEXT, 'no header: text, unchanged'],
  ['', TEXT, 'empty header'],
  ['*/*', TEXT, 'a bare wildcard names no format version: text'],
  ['text/plain', TEXT, 'text without version means 0.0.4'],
  ['text/*', TEXT, 'a subtype wildcard with text/plain defaults: matches nothing, falls back to text'],
  ['application/json', TEXT, 'an unknown format'],
  ['application/json, image/png;q=0.9', TEXT, 'only unknown formats'],
  ['application/openmetrics-text', OM0, 'OpenMetrics without version means 0.0.1'],
  ['application/openmetrics-text;version=1.0.0', OM1, 'OpenMetrics 1.0.0'],
  ['application/openmetrics-text;version=2.0.0', TEXT, 'OpenMetrics 2.0.0 is not served'],
  ['application/openmetrics-text;version=2.0.0;q=0.9,' + PB_RANGE + ';q=0.5', `${PB}; escaping=underscores`, 'an unserved format ranked first is passed over'],
  ['application/vnd.google.protobuf', TEXT, 'protobuf without proto and encoding'],
  [PB_RANGE.replace('delimited', 'text'), TEXT, 'the protobuf text encoding is not served'],
  [PB_RANGE.replace('MetricFamily', 'Other'), TEXT, 'another message type'],
  [PB_RANGE, `${PB}; escaping=underscores`, 'protobuf; underscores when no scheme was named'],
  [`${PB_RANGE};escaping=allow-utf-8`, `${PB}; escaping=allow-utf-8`, 'protobuf with the scheme asked for'],
  ['text/plain;q=0.1,application/openmetrics-text;version=1.0.0;q=0.9', OM1, 'weights beat order'],
  [`application/openmetrics-text;version=1.0.0,${PB_RANGE}`, OM1, 'equal weights keep their order'],
  [`${PB_RANGE},application/openmetrics-text;version=1.0.0`, `${PB}; escaping=underscores`, 'equal weights keep their order (reversed)'],
  ['application/openmetrics-text;version=1.0.0;q=0,text/plain;q=0.2', TEXT, 'weight 0 means not acceptable'],
  ['application/openmetrics-text;version=1.0.0;q=abc', TEXT, 'an unreadable weight counts as 0'],
  ['application/openmetrics-text;version=1.0.0;q=', TEXT, 'an empty weight counts as 0'],
  ['application/openmetrics-text;version=1.0.0;q=0.001', OM1, 'a small weight is still acceptable'],
  ['Application/OpenMetrics-Text; Version=1.0.0', OM1, 'type, subtype and parameter names are case-insensitive'],
  ['application/openmetrics-text; version="1.0.0"', OM1, 'a quoted parameter value'],
  ['  application/openmetrics-text ;  version=1.0.0  ; q=1 ', OM1, 'spaces around everything'],
  ['text/plain;version=0.0.4;escaping=values', `${TEXT}; escaping=values`, 'text with a scheme named'],
  ['text/plain;escaping=bogus', TEXT, 'an unknown scheme is ignored'],
  ['application/openmetrics-text;version=1.0.0;escaping=dots', `${OM1}; escaping=dots`, 'OpenMetrics with a scheme named'],
  ['text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4', `${TEXT}; escaping=allow-utf-8`, 'the scheme of a better-ranked range carries to the match (as in client_golang)'],
  [PROM3_DEFAULT, `${OM1}; escaping=allow-utf-8`, 'Prometheus 3 default'],
  [PROM3_PROTO_FIRST, `${PB}; escaping=underscores`, 'Prometheus 3 with scrape_native_histograms'],
  [PROM3_TEXT_ONLY, `${TEXT}; escaping=underscores`, 'Prometheus 3 with text 1.0.0 only: text 0.0.4 is the same bytes for legacy names'],
  [PROM2_DEFAULT, OM1, 'Prometheus 2.42 default'],
  [PROM2_NATIVE, `${PB}; escaping=underscores`, 'Prometheus 2.42 with --enable-feature=native-histograms'],
  [',,,;;;===', TEXT, 'separators only'],
  ['text/plain/extra', TEXT, 'three-part media type'],
  ['/', TEXT, 'empty type and subtype'],
  ['*/plain', TEXT, 'a wildcard type with a concrete subtype'],
  [';q=1', TEXT, 'parameters without a media type'],
  ['application/openmetrics-text;version=1.0.0=x', OM0, 'a parameter with two = is ignored (version then defaults)'],
  ['\u0000\u0001\u00ff', TEXT, 'control and Latin-1 bytes'],
];

test('Accept negotiation: real servers, weights, order, unknown formats and malformed headers', () => {
  for (const [accept, want, why] of CASES) assert.equal(negotiate(accept).contentType, want, `${why}: ${JSON.stringify(accept)}`);
});

test('Accept parsing keeps weight order, a concrete type before a wildcard at equal weight', () => {
  const r = parseAccept('*/*;q=0.5, text/*;q=0.5, text/plain;q=0.5, application/json;q=0.9');
  assert.deepEqual(r.map((x) => `${x.type}/${x.subtype}`), ['application/json', 'text/plain', 'text/*', '*/*']);
});

test('a hostile Accept header: 200,000 ranges or 1 MB of one range is answered quickly with text', () => {
  const many = Array.from({ length: 200_000 }, (_, i) => `application/x-${i};q=0.${i % 10}`).join(',');
  const t0 = performance.now();
  assert.equal(negotiate(many).format, 'text');
  assert.equal(negotiate('a'.repeat(1 << 20)).format, 'text');
  assert.equal(negotiate(';'.repeat(1 << 20)).format, 'text');
  assert.equal(negotiate(`${'x/y;'.repeat(100_000)},${PB_RANGE}`).format, 'text', 'only the first 64 KiB are read');
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `${ms} ms`);
});

test('any Accept header gets one of the three formats with a content type that names it, and never throws', () => {
  const token = fc.constantFrom('text', 'plain', 'application', 'openmetrics-text', 'vnd.google.protobuf', '*', 'version', '0.0.4', '1.0.0', '0.0.1', 'proto', 'io.prometheus.client.MetricFamily', 'encoding', 'delimited', 'escaping', 'allow-utf-8', 'values', 'q', '0.5', '0', '1', '', ' ', '"');
  const sep = fc.constantFrom('/', ';', '=', ',', ' ', '');
  const header = fc.oneof(fc.string({ maxLength: 200 }), fc.array(fc.tuple(token, sep), { maxLength: 40 }).map((parts) => parts.map(([a, b]) => a + b).join('')));
  fc.assert(
    fc.property(header, (h) => {
      const n = negotiate(h);
      const prefix = { text: 'text/plain; version=0.0.4', openmetrics: 'application/openmetrics-text; version=', protobuf: PB }[n.format];
      return n.contentType.startsWith(prefix);
    }),
    { numRuns: 5000 },
  );
});

test('/metrics serves each negotiated format, gzipped or not; protobuf holds exactly what text holds', async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=8', '--simulate.peers=4']);
  try {
    await built.scheduler.sampleAll();
    await built.scheduler.sampleAll();
    const text = await built.app.inject({ url: '/metrics' });
    assert.equal(text.headers['content-type'], TEXT);
    for (const [accept, type, format] of [[PROM3_PROTO_FIRST, `${PB}; escaping=underscores`, 'protobuf'], [PROM3_DEFAULT, `${OM1}; escaping=allow-utf-8`, 'openmetrics'], ['*/*', TEXT, 'text']] as const) {
      for (const gzip of [false, true]) {
        const res = await built.app.inject({ url: '/metrics', headers: { accept, ...(gzip ? { 'accept-encoding': 'gzip' } : {}) } });
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['content-type'], type);
        assert.match(String(res.headers.vary), /Accept/);
        assert.equal(res.headers['content-encoding'], gzip ? 'gzip' : undefined);
        const body = gzip ? gunzipSync(res.rawPayload) : res.rawPayload;
        if (format === 'protobuf') assertSameAsText(text.body, decodeExposition(body));
        else if (format === 'openmetrics') assert.match(body.toString(), /# EOF\n$/);
        else assert.equal(body.toString(), text.body);
      }
    }
    // Native buckets for the simulated peer round trips, classic ones beside them.
    const pb = decodeExposition((await built.app.inject({ url: '/metrics', headers: { accept: PB_RANGE } })).rawPayload);
    const peers = pb.find((f) => f.name === 'ds_comm_peer_latency_seconds')!;
    assert.ok(peers.metrics.length > 0);
    for (const m of peers.metrics) {
      assert.ok(m.histogram!.schema !== undefined && m.histogram!.buckets.length > 0, 'native and classic');
      assert.ok(m.histogram!.count! > 0);
    }
    const ttft = pb.find((f) => f.name === 'ds_serving_time_to_first_token_seconds')!;
    for (const m of ttft.metrics) assert.equal(m.histogram!.schema, undefined, 'engine histograms stay classic');
  } finally {
    await built.close();
  }
});
