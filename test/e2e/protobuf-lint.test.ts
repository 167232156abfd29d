import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, promtoolCheckMetrics, startExporter } from '../helpers/procs.js';
import { assertSameAsText, asText, decodeExposition, type DecodedFamily } from '../helpers/protobuf-decode.js';

// The whole /metrics of a running exporter (every part simulated, the Node.js runtime's own
// families included) in protobuf, as Prometheus asks for it: decoded by the tests' own decoder,
// held to the text body family by family, and linted by each promtool once written back as text.

const PROTO_FIRST = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2';

describe('the full /metrics of a running exporter in protobuf', () => {
  let exporter: Proc;
  let pb: DecodedFamily[];
  let text: string;

  before(async () => {
    exporter = await startExporter(['--simulate', '--simulate.gpus=4', '--simulate.peers=3']);
    const res = await fetch(`${exporter.url}/metrics`, { headers: { accept: PROTO_FIRST, 'accept-encoding': 'gzip' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores');
    // fetch undoes the gzip itself; the raw bytes are the protobuf body.
    pb = decodeExposition(Buffer.from(await res.arrayBuffer()));
    text = await (await fetch(`${exporter.url}/metrics`)).text();
  });
  after(async () => {
    await exporter?.stop();
  });

  test('the same families, types, help and series as the text body of the same process', () => {
    // Values move between the two requests (a sample may fall between them); series must not.
    assertSameAsText(text, pb, { valuesOf: () => false });
    for (const name of ['ds_gpu_busy_seconds_total', 'ds_serving_tokens_total', 'ds_comm_peer_latency_seconds', 'ds_exporter_build_info', 'process_cpu_seconds_total', 'nodejs_gc_duration_seconds']) {
      assert.ok(pb.some((f) => f.name === name && f.metrics.length > 0), name);
    }
  });

  for (const v of PROMETHEUS_VERSIONS) {
    test(`promtool check metrics ${v.label}: protobuf written back as text, no finding`, { skip: v.skip }, () => {
      const out = promtoolCheckMetrics(asText(pb), v.promtool);
      assert.equal(out.trim(), '', out);
    });
  }
});
