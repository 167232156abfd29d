import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { COLLECTIVE_BUCKETS } from '../../src/catalog/comm.js';
import { PROMETHEUS_VERSIONS, type PrometheusVersion } from '../helpers/go-tools.js';
import { type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

// Collective durations pushed with known values: 400 durations from 0.5 ms to about 0.45 s,
// spaced evenly in log scale, so each quantile's exact value is known here.
const DURATIONS = Array.from({ length: 400 }, (_, i) => 0.0005 * 1.0172 ** i);
const SORTED = [...DURATIONS].sort((a, b) => a - b);
/** Resolution of schema 3: each bucket's upper bound is 2^(1/8) times its lower one. */
const NATIVE_FACTOR = 2 ** (1 / 8);

/** The exact q-quantile of the pushed durations (the smallest value with at least q·n values at or below it). */
function exact(q: number): number {
  return SORTED[Math.max(0, Math.ceil(q * SORTED.length) - 1)];
}

/** The classic bucket (lower, upper] that holds `v`. */
function classicBucket(v: number): [number, number] {
  let lo = 0;
  for (const b of COLLECTIVE_BUCKETS) {
    if (v <= b) return [lo, b];
    lo = b;
  }
  return [lo, Infinity];
}

async function push(url: string): Promise<void> {
  const body = {
    version: 1,
    reporter: { job: 'pbtest', rank: 0, pid: 4242, host: 'e2e' },
    collectives: [{ op: 'all_reduce', durations_seconds: DURATIONS.slice(0, 200) }],
  };
  let res = await fetch(`${url}/api/v1/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 202, await res.text());
  body.collectives[0].durations_seconds = DURATIONS.slice(200);
  res = await fetch(`${url}/api/v1/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 202, await res.text());
}

interface Raw {
  metric: Record<string, string>;
  value?: [number, string];
  histogram?: [number, { count: string; sum: string; buckets?: Array<[number, string, string, string]> }];
}

async function raw(promUrl: string, expr: string, time?: number): Promise<Raw[]> {
  const at = time === undefined ? '' : `&time=${time}`;
  const body = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}${at}`)).json()) as { status: string; error?: string; data?: { result: Raw[] } };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
  return body.data!.result;
}

async function targetHealth(promUrl: string): Promise<{ health: string; lastError: string }> {
  const t = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ health: string; lastError: string }> } };
  return t.data.activeTargets[0];
}

interface Mode {
  readonly name: string;
  readonly version: PrometheusVersion;
  readonly jobExtra: string[];
  readonly args: string[];
  /** The server ingests the native histograms (it negotiated protobuf). */
  readonly native: boolean;
  /** The server keeps the classic buckets of a histogram that also has native ones. */
  readonly classicBeside: boolean;
  /** The server turns classic-only histograms into custom-bucket native ones. */
  readonly nhcb: boolean;
}

const [v2, v3] = PROMETHEUS_VERSIONS;
const MODES: Mode[] = [
  {
    name: `Prometheus ${v3.label}: protobuf negotiated (scrape_protocols, scrape_native_histograms), classic buckets kept, engine histograms converted to custom buckets`,
    version: v3,
    jobExtra: ['scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]', 'scrape_native_histograms: true', 'always_scrape_classic_histograms: true', 'convert_classic_histograms_to_nhcb: true'],
    args: [],
    native: true,
    classicBeside: true,
    nhcb: true,
  },
  {
    name: `Prometheus ${v3.label}: default configuration (OpenMetrics negotiated, classic only)`,
    version: v3,
    jobExtra: [],
    args: [],
    native: false,
    classicBeside: true,
    nhcb: false,
  },
  {
    name: `Prometheus ${v2.label}: --enable-feature=native-histograms (protobuf negotiated)`,
    version: v2,
    jobExtra: [],
    args: ['--enable-feature=native-histograms'],
    native: true,
    classicBeside: false,
    nhcb: false,
  },
  {
    name: `Prometheus ${v2.label}: default (OpenMetrics negotiated)`,
    version: v2,
    jobExtra: [],
    args: [],
    native: false,
    classicBeside: true,
    nhcb: false,
  },
];

for (const mode of MODES) {
  describe(mode.name, { skip: mode.version.skip }, () => {
    let exporter: Proc;
    let prom: Awaited<ReturnType<typeof startPrometheus>>;

    before(async () => {
      exporter = await startExporter(['--simulate', '--simulate.gpus=2', '--simulate.peers=3']);
      await push(exporter.url);
      prom = await startPrometheus([exporter.url], { binary: mode.version.prometheus, jobExtra: mode.jobExtra, args: mode.args });
    });
    after(async () => {
      await prom?.stop();
      await exporter?.stop();
    });

    test('the scrape parses; quantiles of the native and classic series agree with the exact ones', { timeout: 120_000 }, async () => {
      await waitFor(async () => (await prom.query('up{job="ds-exporter"} == 1')).length === 1, 60_000, `target up (${prom.output()})`);
      const sel = '{op="all_reduce",exported_job="pbtest"}';
      await waitFor(async () => (await prom.query(`ds_comm_collective_latency_seconds_count${sel}`)).length > 0 || (await raw(prom.url, `ds_comm_collective_latency_seconds${sel}`)).length > 0, 30_000, 'collective latency ingested');
      const h = await targetHealth(prom.url);
      assert.equal(h.health, 'up', h.lastError);
      assert.equal(h.lastError, '');

      const nativeSeries = await raw(prom.url, `ds_comm_collective_latency_seconds${sel}`);
      const classicBuckets = await prom.query(`ds_comm_collective_latency_seconds_bucket${sel}`);
      if (mode.native) {
        assert.equal(nativeSeries.length, 1, 'one native series');
        assert.ok(nativeSeries[0].histogram, 'a native histogram sample (only protobuf carries one)');
        assert.equal(Number(nativeSeries[0].histogram![1].count), DURATIONS.length);
        assert.ok(Math.abs(Number(nativeSeries[0].histogram![1].sum) - DURATIONS.reduce((a, b) => a + b, 0)) < 1e-9);
      } else {
        assert.equal(nativeSeries.length, 0, 'no native series without protobuf');
      }
      assert.equal(classicBuckets.length > 0, mode.classicBeside, 'classic buckets beside the native ones where the server keeps them');

      for (const q of [0.5, 0.9, 0.99]) {
        const truth = exact(q);
        const [lo, hi] = classicBucket(truth);
        if (mode.classicBeside) {
          const classic = Number((await prom.query(`histogram_quantile(${q}, ds_comm_collective_latency_seconds_bucket${sel})`))[0].value[1]);
          assert.ok(classic >= lo && classic <= hi, `classic p${q * 100} ${classic} within the classic bucket (${lo}, ${hi}] of the exact ${truth}`);
        }
        if (mode.native) {
          const native = Number((await prom.query(`histogram_quantile(${q}, ds_comm_collective_latency_seconds${sel})`))[0].value[1]);
          const ratio = native / truth;
          assert.ok(ratio <= NATIVE_FACTOR * 1.001 && ratio >= 1 / (NATIVE_FACTOR * 1.001), `native p${q * 100} ${native} within one schema-3 bucket of the exact ${truth}`);
          assert.ok(native >= lo / NATIVE_FACTOR && native <= hi * NATIVE_FACTOR, `native p${q * 100} ${native} agrees with the classic bucket (${lo}, ${hi}]`);
        }
      }
      // The peer round trips of the simulator are native too where the server reads them.
      const peers = await raw(prom.url, 'ds_comm_peer_latency_seconds');
      assert.equal(peers.length > 0 && peers.every((p) => p.histogram), mode.native, 'peer round trips as native histograms');
    });

    test('engine histograms (set whole from classic buckets) stay classic; converted to custom buckets their quantiles equal the classic ones', { timeout: 60_000 }, async () => {
      await waitFor(async () => (await prom.query('ds_serving_time_to_first_token_seconds_count')).length > 0 || (await raw(prom.url, 'ds_serving_time_to_first_token_seconds')).length > 0, 30_000, 'engine histograms ingested');
      const classic = await prom.query('histogram_quantile(0.9, ds_serving_time_to_first_token_seconds_bucket)');
      assert.ok(classic.length > 0);
      const nhcb = await raw(prom.url, 'ds_serving_time_to_first_token_seconds');
      if (!mode.nhcb) {
        assert.equal(nhcb.length, 0, 'no native series for an engine histogram');
        return;
      }
      assert.ok(nhcb.length > 0 && nhcb.every((s) => s.histogram), 'custom-bucket native series');
      // The same scrape feeds both: a query at one instant sees the same counts.
      const at = Number(nhcb[0].histogram![0]);
      const c = await raw(prom.url, 'histogram_quantile(0.9, ds_serving_time_to_first_token_seconds_bucket)', at);
      const n = await raw(prom.url, 'histogram_quantile(0.9, ds_serving_time_to_first_token_seconds)', at);
      const key = (r: Raw) => JSON.stringify(Object.entries(r.metric).filter(([k]) => k !== '__name__').sort());
      const byKey = new Map(c.map((r) => [key(r), Number(r.value![1])]));
      assert.equal(n.length, c.length);
      assert.ok(n.some((r) => Number.isFinite(Number(r.value![1])) && Number(r.value![1]) > 0), 'some engine histogram has observations');
      for (const r of n) {
        const want = byKey.get(key(r));
        const got = Number(r.value![1]);
        assert.ok(want !== undefined && (Object.is(want, got) || Math.abs(want - got) <= 1e-9 * Math.abs(want)), `${key(r)}: custom-bucket ${got} vs classic ${want}`);
      }
    });
  });
}
