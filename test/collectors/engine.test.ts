import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { buildApp, type BuiltApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/core/logger.js';
import type { Labels } from '../../src/core/store.js';
import { histogramQuantile, type Hist } from '../../src/collectors/engine/window.js';
import { histogramSeries, parseExposition } from '../../src/parse/exposition.js';
import { freePort, has, promtoolCheckMetrics } from '../helpers/procs.js';
import { snapshotOf } from '../../src/http/snapshot.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/engines/${name}`, import.meta.url), 'utf8');

/** A rule that makes one sample grow at a known rate: name, optional `le` lower limit, per second. */
interface Grow {
  readonly name: string;
  readonly leFrom?: number;
  readonly where?: RegExp;
  readonly perSecond: number;
}

/** The fixture with the matching samples grown by `perSecond × elapsedS`. */
function grown(text: string, rules: readonly Grow[], elapsedS: number): string {
  return text
    .split('\n')
    .map((line) => {
      if (line.startsWith('#') || !line.trim()) return line;
      const m = /^([^{\s]+)(\{.*\})?\s+(\S+)$/.exec(line);
      if (!m) return line;
      let v = Number(m[3]);
      for (const r of rules) {
        if (r.name !== m[1]) continue;
        if (r.where && !r.where.test(m[2] ?? '')) continue;
        if (r.leFrom !== undefined) {
          const le = /le="([^"]+)"/.exec(m[2] ?? '')?.[1];
          const bound = le === '+Inf' ? Infinity : Number(le);
          if (!(bound >= r.leFrom)) continue;
        }
        v += r.perSecond * elapsedS;
      }
      return `${m[1]}${m[2] ?? ''} ${v}`;
    })
    .join('\n');
}

interface Route {
  body?: () => string;
  status?: number;
  delayMs?: number;
  /** Streams this many bytes of valid-looking lines, chunked. */
  hugeBytes?: number;
}

async function engineServer(routes: Record<string, Route>): Promise<{ url: (path: string) => string; server: Server; hits: Map<string, number>; close(): Promise<void> }> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const r = routes[path];
    if (!r) {
      res.writeHead(404).end('not found');
      return;
    }
    const respond = () => {
      if (r.hugeBytes) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const line = 'vllm:num_requests_running{model_name="huge"} 1\n'.repeat(1000);
        let sent = 0;
        const pump = () => {
          while (sent < r.hugeBytes! && !res.destroyed) {
            sent += line.length;
            if (!res.write(line)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (sent = r.hugeBytes!));
        pump();
        return;
      }
      res.writeHead(r.status ?? 200, { 'content-type': 'text/plain; version=0.0.4' }).end(r.body ? r.body() : '');
    };
    if (r.delayMs) {
      const t = setTimeout(respond, r.delayMs);
      res.on('close', () => clearTimeout(t));
    } else respond();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    server,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback URL nothing listens on (a port just freed). */
async function refusedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/metrics`;
}

async function exporter(argv: string[], now: () => number, lines: string[] = []): Promise<BuiltApp> {
  // Tests drive samples by hand; the interval only sets the timeouts, generous for a loaded machine.
  return buildApp(loadConfig(['--no-collector.gpu', '--sample.interval=10s', '--engine.timeout=5s', ...argv], {}), { logger: createLogger('info', (l) => lines.push(l)), now, processMetrics: false });
}

type Snap = Record<string, Array<{ labels: Labels; value: number }>>;
const snap = (b: BuiltApp) => snapshotOf(b.store).metrics as Snap;
function value(s: Snap, metric: string, labels: Record<string, string>): number | undefined {
  return s[metric]?.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
}
/** The exported histogram `name` of the series with `labels`, read back from /metrics. */
async function exportedHist(b: BuiltApp, name: string, labels: Record<string, string>): Promise<Hist | undefined> {
  const exp = parseExposition((await b.app.inject({ url: '/metrics' })).body);
  const h = histogramSeries(exp, name).find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return h && { bounds: h.bounds, counts: h.counts, sum: h.sum };
}
/** What a histogram gained between two readings (same bounds). */
function gained(a: Hist | undefined, b: Hist | undefined): Hist {
  assert.ok(a && b, 'histogram absent');
  return { bounds: b.bounds, counts: b.counts.map((c, i) => c - a.counts[i]), sum: (b.sum ?? 0) - (a.sum ?? 0) };
}
function close(actual: number | undefined, expected: number, what: string): void {
  assert.ok(actual !== undefined, `${what}: absent`);
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} != ${expected}`);
}

const T0 = 1_700_000_000_000;

test('rates and percentiles match the known growth of real vLLM, SGLang and Triton payloads', async () => {
  let now = T0;
  const elapsed = () => (now - T0) / 1000;
  const vllmRules: Grow[] = [
    { name: 'vllm:prompt_tokens_total', perSecond: 120 },
    { name: 'vllm:generation_tokens_total', perSecond: 450 },
    { name: 'vllm:request_success_total', perSecond: 3 },
    // 10 TTFT observations per second in (0.25, 0.5].
    { name: 'vllm:time_to_first_token_seconds_bucket', leFrom: 0.5, perSecond: 10 },
    { name: 'vllm:time_to_first_token_seconds_count', perSecond: 10 },
    // 100 inter-token observations per second in (0.01, 0.1], under the newer name only.
    { name: 'vllm:inter_token_latency_seconds_bucket', leFrom: 0.1, perSecond: 100 },
    { name: 'vllm:inter_token_latency_seconds_count', perSecond: 100 },
    // 3 requests per second finishing in (2.5, 5].
    { name: 'vllm:e2e_request_latency_seconds_bucket', leFrom: 5, perSecond: 3 },
    { name: 'vllm:e2e_request_latency_seconds_count', perSecond: 3 },
  ];
  const sglangRules: Grow[] = [
    { name: 'sglang:prompt_tokens_total', perSecond: 800 },
    { name: 'sglang:generation_tokens_total', perSecond: 2000 },
    { name: 'sglang:time_to_first_token_seconds_bucket', leFrom: 0.75, perSecond: 5 },
    { name: 'sglang:time_to_first_token_seconds_count', perSecond: 5 },
    { name: 'sglang:time_per_output_token_seconds_bucket', leFrom: 0.025, perSecond: 50 },
    { name: 'sglang:time_per_output_token_seconds_count', perSecond: 50 },
  ];
  const tritonRules: Grow[] = [
    { name: 'nv_inference_request_success', where: /densenet_onnx/, perSecond: 4 },
    { name: 'nv_inference_request_failure', where: /densenet_onnx/, perSecond: 1 },
  ];
  const srv = await engineServer({
    '/vllm': { body: () => grown(fixture('vllm.txt'), vllmRules, elapsed()) },
    '/sglang': { body: () => grown(fixture('sglang.txt'), sglangRules, elapsed()) },
    '/triton': { body: () => grown(fixture('triton.txt'), tritonRules, elapsed()) },
    '/trt': { body: () => fixture('trtllm-triton-backend.txt') },
  });
  const b = await exporter([`--engine.target=${srv.url('/vllm')},${srv.url('/sglang')}`, `--engine.target=${srv.url('/triton')}`, `--engine.target=triton=${srv.url('/trt')}`], () => now);
  try {
    await b.scheduler.sampleAll();
    let s = snap(b);
    // One scrape: no window yet, so no rates; counters, histograms and gauges are there.
    assert.equal(value(s, 'ds_serving_throughput_tokens_per_second', { engine: 'vllm' }), undefined);
    assert.equal(value(s, 'ds_serving_requests_total', { engine: 'vllm', outcome: 'success' }), 1);
    assert.equal(value(s, 'ds_serving_tokens_total', { engine: 'vllm', phase: 'prompt' }), 5);
    assert.equal(value(s, 'ds_serving_tokens_total', { engine: 'vllm', phase: 'generation' }), 7);
    const v0 = { engine: 'vllm', model: 'facebook/opt-125m' };
    const g0 = { engine: 'sglang', model: 'meta-llama/Llama-3.1-8B-Instruct' };
    const before = {
      ttft: await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v0),
      itl: await exportedHist(b, 'ds_serving_inter_token_latency_seconds', v0),
      e2e: await exportedHist(b, 'ds_serving_e2e_request_latency_seconds', v0),
      sgTtft: await exportedHist(b, 'ds_serving_time_to_first_token_seconds', g0),
      sgItl: await exportedHist(b, 'ds_serving_inter_token_latency_seconds', g0),
    };
    assert.equal(before.ttft!.counts.at(-1), 1, 'the engine histogram as it stands');
    for (const path of ['/vllm', '/sglang', '/triton', '/trt']) assert.equal(value(s, 'ds_engine_up', { target: srv.url(path) }), 1, path);
    assert.equal(value(s, 'ds_engine_up', { target: srv.url('/vllm'), engine: 'vllm' }), 1);
    assert.equal(value(s, 'ds_engine_up', { target: srv.url('/sglang'), engine: 'sglang' }), 1);
    assert.equal(value(s, 'ds_engine_up', { target: srv.url('/triton'), engine: 'triton' }), 1);

    now += 10_000;
    await b.scheduler.sampleAll();
    s = snap(b);
    const v = { engine: 'vllm', model: 'facebook/opt-125m' };
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...v, phase: 'prompt' }), 120, 'vllm prompt tokens/s');
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...v, phase: 'generation' }), 450, 'vllm generation tokens/s');
    close(value(s, 'ds_serving_requests_total', { ...v, outcome: 'success' }), 1 + 30, 'vllm requests');
    close(value(s, 'ds_serving_tokens_total', { ...v, phase: 'prompt' }), 5 + 1200, 'vllm prompt tokens');
    close(value(s, 'ds_serving_tokens_total', { ...v, phase: 'generation' }), 7 + 4500, 'vllm generation tokens');
    // What histogram_quantile over rate() of the exported buckets gives for the window.
    const ttft = gained(before.ttft, await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v));
    close(histogramQuantile(0.5, ttft), 0.25 + 0.25 * 0.5, 'ttft p50');
    close(histogramQuantile(0.9, ttft), 0.25 + 0.25 * 0.9, 'ttft p90');
    close(histogramQuantile(0.99, ttft), 0.25 + 0.25 * 0.99, 'ttft p99');
    close(ttft.counts.at(-1), 100, 'ttft observations');
    const itl = gained(before.itl, await exportedHist(b, 'ds_serving_inter_token_latency_seconds', v));
    // vLLM's bounds 0.01 and 0.1 are catalog bounds too: the re-bucketing is exact.
    close(histogramQuantile(0.5, itl), 0.01 + 0.09 * 0.5, 'itl p50');
    const e2e = gained(before.e2e, await exportedHist(b, 'ds_serving_e2e_request_latency_seconds', v));
    close(histogramQuantile(0.99, e2e), 2.5 + 2.5 * 0.99, 'e2e p99');
    close(value(s, 'ds_serving_kv_cache_usage_ratio', v), 0, 'kv');
    close(value(s, 'ds_serving_requests_running', v), 0, 'running');

    const g = { engine: 'sglang', model: 'meta-llama/Llama-3.1-8B-Instruct' };
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...g, phase: 'prompt' }), 800, 'sglang prompt');
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...g, phase: 'generation' }), 2000, 'sglang generation');
    close(histogramQuantile(0.5, gained(before.sgTtft, await exportedHist(b, 'ds_serving_time_to_first_token_seconds', g))), 0.5 + 0.25 * 0.5, 'sglang ttft p50');
    close(histogramQuantile(0.9, gained(before.sgItl, await exportedHist(b, 'ds_serving_inter_token_latency_seconds', g))), 0.02 + 0.005 * 0.9, 'sglang itl p90 (older name)');
    close(value(s, 'ds_serving_kv_cache_usage_ratio', g), 0.28, 'sglang kv');
    close(value(s, 'ds_serving_requests_waiting', g), 2826, 'sglang waiting');
    // An engine's own averaged gauge (sglang:gen_throughput 86.5) is never copied.
    assert.ok(!s.ds_serving_throughput_tokens_per_second.some((x) => Math.abs(x.value - 86.50814177726902) < 1e-6));

    const t = { engine: 'triton', model: 'densenet_onnx' };
    close(value(s, 'ds_serving_requests_total', { ...t, outcome: 'success' }), 3 + 40, 'triton success');
    close(value(s, 'ds_serving_requests_total', { ...t, outcome: 'error' }), 10, 'triton error');
    assert.equal(value(s, 'ds_serving_throughput_tokens_per_second', t), undefined, 'Triton exposes no token counters');
    assert.equal(value(s, 'ds_serving_tokens_total', t), undefined, 'Triton exposes no token counters');
    close(value(s, 'ds_serving_kv_cache_usage_ratio', { engine: 'triton', model: 'tensorrt_llm' }), 1 / 6239, 'trt kv');
    close(value(s, 'ds_serving_requests_waiting', { engine: 'triton', model: 'tensorrt_llm' }), 1, 'trt waiting');

    // A window with no new observations adds nothing to the histograms; rates are then zero.
    const frozen = elapsed();
    srv.server.removeAllListeners('request');
    srv.server.on('request', (req, res) => {
      const path = (req.url ?? '').split('?')[0];
      const body = path === '/vllm' ? grown(fixture('vllm.txt'), vllmRules, frozen) : path === '/sglang' ? grown(fixture('sglang.txt'), sglangRules, frozen) : path === '/triton' ? grown(fixture('triton.txt'), tritonRules, frozen) : fixture('trtllm-triton-backend.txt');
      res.end(body);
    });
    const busy = await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v);
    now += 5_000;
    await b.scheduler.sampleAll();
    s = snap(b);
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...v, phase: 'prompt' }), 0, 'idle prompt');
    assert.deepEqual(gained(busy, await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v)).counts.filter((c) => c !== 0), [], 'idle window adds no observations');

    // The exposition is valid and lists the series.
    const text = (await b.app.inject({ url: '/metrics' })).body;
    assert.match(text, /ds_serving_requests_total\{engine="vllm",model="facebook\/opt-125m",outcome="success"\} 31/);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('counter resets: rates never go negative and request totals keep counting', async () => {
  let now = T0;
  let epoch = T0;
  const rules: Grow[] = [
    { name: 'vllm:prompt_tokens_total', perSecond: 120 },
    { name: 'vllm:request_success_total', perSecond: 2 },
    { name: 'vllm:time_to_first_token_seconds_bucket', leFrom: 0.5, perSecond: 10 },
    { name: 'vllm:time_to_first_token_seconds_count', perSecond: 10 },
  ];
  const srv = await engineServer({ '/m': { body: () => grown(fixture('vllm.txt'), rules, (now - epoch) / 1000) } });
  const b = await exporter([`--engine.target=${srv.url('/m')}`], () => now);
  const v = { engine: 'vllm', model: 'facebook/opt-125m' };
  try {
    await b.scheduler.sampleAll();
    now += 10_000;
    await b.scheduler.sampleAll();
    close(value(snap(b), 'ds_serving_requests_total', { ...v, outcome: 'success' }), 21, 'before reset');
    const ttftBefore = await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v);
    close(ttftBefore?.counts.at(-1), 101, 'ttft before reset');
    // The engine restarts: its counters start again from the fixture values.
    now += 10_000;
    epoch = now;
    await b.scheduler.sampleAll();
    let s = snap(b);
    // Everything counted since the restart is new: 5 prompt tokens over the 10 s window.
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...v, phase: 'prompt' }), 5 / 10, 'rate across the reset');
    close(value(s, 'ds_serving_requests_total', { ...v, outcome: 'success' }), 21 + 1, 'total across the reset');
    // The restarted engine's histogram (1 observation) adds to the exported one, which never goes down.
    const ttftAfter = await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v);
    close(ttftAfter?.counts.at(-1), 101 + 1, 'ttft across the reset');
    assert.ok(ttftAfter!.counts.every((c, i) => c >= ttftBefore!.counts[i]), 'no bucket goes down');
    close(value(s, 'ds_serving_tokens_total', { ...v, phase: 'prompt' }), 5 + 1200 + 5, 'token counter across the reset');
    now += 10_000;
    await b.scheduler.sampleAll();
    s = snap(b);
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...v, phase: 'prompt' }), 120, 'rate after the reset');
    close(value(s, 'ds_serving_requests_total', { ...v, outcome: 'success' }), 22 + 20, 'total after the reset');
    close(value(s, 'ds_serving_tokens_total', { ...v, phase: 'prompt' }), 5 + 1200 + 5 + 1200, 'token counter after the reset');
    const text = (await b.app.inject({ url: '/metrics' })).body;
    assert.match(text, /ds_serving_requests_total\{engine="vllm",model="facebook\/opt-125m",outcome="success"\} 42/);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('failing targets go down with a reason, logged once; the others and the exporter keep serving', async () => {
  let now = T0;
  const srv = await engineServer({
    '/good': { body: () => grown(fixture('vllm.txt'), [{ name: 'vllm:prompt_tokens_total', perSecond: 50 }], (now - T0) / 1000) },
    '/500': { status: 500, body: () => 'internal error' },
    '/slow': { delayMs: 20_000, body: () => fixture('vllm.txt') },
    '/huge': { hugeBytes: 50 * 1024 * 1024 },
    '/garbage': { body: () => 'vllm:prompt_tokens_total{model_name="m" 12\n\u0000\u0001{{{' },
    '/nothing': { body: () => 'process_open_fds 3\n' },
  });
  const refused = await refusedUrl();
  const lines: string[] = [];
  const targets = ['/good', '/500', '/slow', '/huge', '/garbage', '/nothing'].map((p) => srv.url(p));
  const b = await exporter([`--engine.target=${[...targets, refused].join(',')}`, '--engine.timeout=3s', '--sample.interval=5s', '--engine.max-bytes=4194304'], () => now, lines);
  try {
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) {
      await b.scheduler.sampleAll();
      now += 1000;
    }
    const perSample = (performance.now() - t0) / 3;
    assert.ok(perSample < 5000, `a sample took ${perSample} ms: one slow target must not hold the others`);
    assert.ok(process.memoryUsage().rss - rss0 < 300 * 1024 * 1024, 'the 50 MB body was not held in memory');
    const s = snap(b);
    const up = (url: string) => value(s, 'ds_engine_up', { target: url });
    assert.equal(up(srv.url('/good')), 1);
    assert.equal(up(srv.url('/nothing')), 1);
    assert.equal(value(s, 'ds_engine_up', { target: srv.url('/nothing'), engine: 'unknown' }), 1);
    for (const [url, reason] of [[srv.url('/500'), 'http_status'], [srv.url('/slow'), 'timeout'], [srv.url('/huge'), 'too_large'], [srv.url('/garbage'), 'parse'], [refused, 'refused']]) {
      assert.equal(up(url), 0, url);
      assert.equal(value(s, 'ds_engine_up', { target: url, engine: 'unknown' }), 0, `${url} engine label`);
      assert.equal(value(s, 'ds_engine_scrape_errors_total', { target: url, reason }), 3, `${url} ${reason}: ${JSON.stringify(s.ds_engine_scrape_errors_total)}`);
    }
    close(value(s, 'ds_serving_throughput_tokens_per_second', { engine: 'vllm', phase: 'prompt' }), 50, 'good target keeps serving');
    assert.equal(value(s, 'ds_exporter_collector_success', { collector: 'engine' }), 1, 'failed targets do not fail the collector');
    // One warning per target for the whole outage, with the reason.
    const warns = lines.filter((l) => /level=warn/.test(l) && /engine target down/.test(l));
    assert.equal(warns.length, 5, warns.join('\n'));
    assert.ok(warns.some((l) => /reason=http_status/.test(l) && /HTTP 500/.test(l)));
    assert.ok(warns.some((l) => /reason=timeout/.test(l) && /timeout after 3000 ms/.test(l)));
    assert.ok(warns.some((l) => /reason=too_large/.test(l) && /larger than 4194304 bytes/.test(l)));
    assert.ok(warns.some((l) => /reason=refused/.test(l)));
    assert.ok(warns.some((l) => /reason=parse/.test(l) && /line 1/.test(l)));
    assert.equal(lines.filter((l) => /no metrics of a known engine/.test(l)).length, 1);
    const res = await b.app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);

    // A target that recovers says so once and serves again.
    srv.server.removeAllListeners('request');
    srv.server.on('request', (_req, res2) => res2.end(fixture('vllm.txt')));
    await b.scheduler.sampleAll();
    assert.equal(value(snap(b), 'ds_engine_up', { target: srv.url('/500'), engine: 'vllm' }), 1);
    assert.equal(lines.filter((l) => /engine target recovered/.test(l) && l.includes(srv.url('/500'))).length, 1);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('two targets with the same engine and model are aggregated', async () => {
  let now = T0;
  const e = () => (now - T0) / 1000;
  const srv = await engineServer({
    '/a': { body: () => grown(fixture('vllm.txt'), [{ name: 'vllm:generation_tokens_total', perSecond: 300 }, { name: 'vllm:request_success_total', perSecond: 1 }, { name: 'vllm:time_to_first_token_seconds_bucket', leFrom: 0.5, perSecond: 10 }, { name: 'vllm:time_to_first_token_seconds_count', perSecond: 10 }], e()) },
    '/b': { body: () => grown(fixture('vllm.txt'), [{ name: 'vllm:generation_tokens_total', perSecond: 100 }, { name: 'vllm:request_success_total', perSecond: 2 }, { name: 'vllm:time_to_first_token_seconds_bucket', leFrom: 1, perSecond: 10 }, { name: 'vllm:time_to_first_token_seconds_count', perSecond: 10 }], e()).replace(/vllm:gpu_cache_usage_perc\{model_name="facebook\/opt-125m"\} 0/, 'vllm:gpu_cache_usage_perc{model_name="facebook/opt-125m"} 0.9').replace(/vllm:kv_cache_usage_perc\{model_name="facebook\/opt-125m"\} 0/, 'vllm:kv_cache_usage_perc{model_name="facebook/opt-125m"} 0.6') },
  });
  const b = await exporter([`--engine.target=${srv.url('/a')}`, `--engine.target=vllm=${srv.url('/b')}`], () => now);
  try {
    await b.scheduler.sampleAll();
    const v = { engine: 'vllm', model: 'facebook/opt-125m' };
    const ttft0 = await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v);
    now += 4_000;
    await b.scheduler.sampleAll();
    const s = snap(b);
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...v, phase: 'generation' }), 400, 'summed throughput');
    close(value(s, 'ds_serving_requests_total', { ...v, outcome: 'success' }), 2 + 4 * 3, 'summed requests');
    close(value(s, 'ds_serving_kv_cache_usage_ratio', v), 0.6, 'highest KV usage, newer name');
    // 40 observations in (0.25, 0.5] and 40 in (0.75, 1]: the merged p50 is the top of the first half.
    close(value(s, 'ds_serving_tokens_total', { ...v, phase: 'generation' }), 7 + 7 + 1600, 'summed token counters');
    const ttft = gained(ttft0, await exportedHist(b, 'ds_serving_time_to_first_token_seconds', v));
    close(histogramQuantile(0.5, ttft), 0.5, 'merged p50');
    close(histogramQuantile(0.9, ttft), 0.75 + 0.25 * 0.8, 'merged p90');
    assert.equal(s.ds_serving_throughput_tokens_per_second.filter((x) => x.labels.phase === 'generation').length, 1);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('hostile label values from an engine are exported escaped and intact', async () => {
  const model = 'evil"model\\with\nnewline{},= \u00e9';
  const esc = model.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  let now = T0;
  const srv = await engineServer({ '/x': { body: () => `vllm:prompt_tokens_total{model_name="${esc}",__proto__="p"} ${10 + ((now - T0) / 1000) * 7}\nvllm:num_requests_running{model_name="${esc}"} 2\n` } });
  const b = await exporter([`--engine.target=${srv.url('/x')}`], () => now);
  try {
    await b.scheduler.sampleAll();
    now += 2000;
    await b.scheduler.sampleAll();
    const text = (await b.app.inject({ url: '/metrics' })).body;
    const exp = parseExposition(text);
    const fam = exp.families.get('ds_serving_throughput_tokens_per_second')!;
    assert.equal(fam.samples.length, 1);
    assert.equal(fam.samples[0].labels.model, model);
    close(fam.samples[0].value, 7, 'rate with a hostile model name');
    assert.equal(exp.families.get('ds_serving_requests_running')!.samples[0].labels.model, model);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('connections are kept alive between samples', async () => {
  let now = T0;
  const srv = await engineServer({ '/k': { body: () => fixture('vllm.txt') } });
  let connections = 0;
  srv.server.on('connection', () => connections++);
  const b = await exporter([`--engine.target=${srv.url('/k')}`], () => now);
  try {
    for (let i = 0; i < 4; i++) {
      await b.scheduler.sampleAll();
      now += 1000;
      // Samples are an interval apart; give the client a moment to return the socket to its pool.
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(srv.hits.get('/k'), 4);
    assert.equal(connections, 1);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('promtool check metrics accepts an engine-fed exposition', { skip: !has('promtool') && 'promtool not installed (scripts/setup-test-tools.sh installs it)' }, async () => {
  let now = T0;
  const rules: Grow[] = [
    { name: 'vllm:prompt_tokens_total', perSecond: 10 },
    { name: 'vllm:time_to_first_token_seconds_bucket', leFrom: 0.5, perSecond: 10 },
    { name: 'vllm:time_to_first_token_seconds_count', perSecond: 10 },
  ];
  const srv = await engineServer({ '/v': { body: () => grown(fixture('vllm.txt'), rules, (now - T0) / 1000) }, '/bad': { status: 503 } });
  const b = await exporter([`--engine.target=${srv.url('/v')},${srv.url('/bad')}`], () => now);
  try {
    await b.scheduler.sampleAll();
    now += 1000;
    await b.scheduler.sampleAll();
    const text = (await b.app.inject({ url: '/metrics' })).body;
    assert.match(text, /ds_serving_time_to_first_token_seconds_bucket\{/);
    assert.match(text, /ds_engine_scrape_errors_total\{/);
    const out = promtoolCheckMetrics(text);
    assert.equal(out.trim(), '', out);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('llama.cpp: the model comes from /v1/models, prompt tokens include cache hits, and a bad answer leaves "unknown"', async () => {
  let now = T0;
  let models = '{"object":"list","data":[{"id":"/models/tiny-random.gguf","object":"model"}]}';
  const body = () => {
    const t = (now - T0) / 1000;
    return `# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total ${10 + 5 * t}\n# TYPE llamacpp:prompt_tokens_cached_total counter\nllamacpp:prompt_tokens_cached_total ${100 * t}\n# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total ${40 * t}\n# TYPE llamacpp:tokens_predicted_seconds_total counter\nllamacpp:tokens_predicted_seconds_total ${0.04 * t}\nllamacpp:requests_processing 2\n`;
  };
  const srv = await engineServer({ '/metrics': { body }, '/v1/models': { body: () => models } });
  const b = await exporter([`--engine.target=${srv.url('/metrics')}`], () => now);
  try {
    await b.scheduler.sampleAll();
    now += 10_000;
    await b.scheduler.sampleAll();
    const s = snap(b);
    const m = { engine: 'llamacpp', model: 'tiny-random.gguf' };
    close(value(s, 'ds_serving_tokens_total', { ...m, phase: 'prompt' }), 10 + 50 + 1000, 'prompt = computed + cached');
    close(value(s, 'ds_serving_prompt_cached_tokens_total', m), 1000, 'cached');
    close(value(s, 'ds_serving_throughput_tokens_per_second', { ...m, phase: 'prompt' }), 105, 'prompt tokens/s');
    close(value(s, 'ds_serving_decode_seconds_total', m), 0.4, 'decode seconds');
    assert.equal(srv.hits.get('/v1/models'), 1, 'looked up once while the target stays up');
    // Down and back with a hostile answer: the name is looked up again and refused.
    models = '{"data":[{"id":"x\\u0000y"}]}';
    srv.server.removeAllListeners('request');
    srv.server.on('request', (_req, res) => res.writeHead(503).end());
    now += 1000;
    await b.scheduler.sampleAll();
    srv.server.removeAllListeners('request');
    srv.server.on('request', (req, res) => res.end((req.url ?? '').startsWith('/v1/models') ? models : body()));
    now += 1000;
    await b.scheduler.sampleAll();
    assert.equal(value(snap(b), 'ds_serving_requests_running', { engine: 'llamacpp', model: 'unknown' }), 2);
  } finally {
    await b.close();
    await srv.close();
  }
});

test('a histogram whose buckets go down is ignored and logged once; the rest of the target is read', async () => {
  let now = T0;
  const lines: string[] = [];
  const bad = 'vllm:prompt_tokens_total{model_name="m"} 5\nvllm:time_to_first_token_seconds_bucket{model_name="m",le="0.1"} 9\nvllm:time_to_first_token_seconds_bucket{model_name="m",le="+Inf"} 4\nvllm:time_to_first_token_seconds_sum{model_name="m"} 1\n';
  const srv = await engineServer({ '/m': { body: () => bad } });
  const b = await exporter([`--engine.target=${srv.url('/m')}`], () => now, lines);
  try {
    for (let i = 0; i < 3; i++) {
      await b.scheduler.sampleAll();
      now += 1000;
    }
    const s = snap(b);
    assert.equal(value(s, 'ds_serving_tokens_total', { engine: 'vllm', model: 'm', phase: 'prompt' }), 5);
    assert.equal(s.ds_serving_time_to_first_token_seconds, undefined);
    assert.equal(lines.filter((l) => /histogram ignored/.test(l)).length, 1, lines.join('\n'));
  } finally {
    await b.close();
    await srv.close();
  }
});

test('an HTML page answered with 200 is a parse failure; a label set that changes between scrapes moves the series, never freezes them', async () => {
  let now = T0;
  let body = '<!doctype html><html><head><title>Login</title></head><body>sign in</body></html>\n';
  const srv = await engineServer({ '/m': { body: () => body } });
  const lines: string[] = [];
  const b = await exporter([`--engine.target=vllm=${srv.url('/m')}`], () => now, lines);
  try {
    await b.scheduler.sampleAll();
    let s = snap(b);
    assert.equal(value(s, 'ds_engine_up', { engine: 'vllm' }), 0);
    assert.equal(value(s, 'ds_engine_scrape_errors_total', { reason: 'parse' }), 1);
    assert.ok(lines.some((l) => /engine target down/.test(l) && /reason=parse/.test(l)), lines.join('\n'));
    // The engine comes up serving model a, then is redeployed with model b behind the same URL.
    body = 'vllm:generation_tokens_total{model_name="a"} 100\nvllm:num_requests_running{model_name="a"} 3\n';
    now += 1000;
    await b.scheduler.sampleAll();
    body = 'vllm:generation_tokens_total{model_name="b"} 40\nvllm:num_requests_running{model_name="b"} 1\n';
    now += 1000;
    await b.scheduler.sampleAll();
    s = snap(b);
    assert.equal(value(s, 'ds_serving_requests_running', { model: 'a' }), undefined, 'model a is gone, not frozen');
    assert.equal(value(s, 'ds_serving_tokens_total', { model: 'a' }), undefined);
    assert.equal(value(s, 'ds_serving_requests_running', { model: 'b' }), 1);
    assert.equal(value(s, 'ds_serving_tokens_total', { model: 'b', phase: 'generation' }), 40);
    // No rate is made up from two different models' counters.
    assert.equal(value(s, 'ds_serving_throughput_tokens_per_second', { model: 'b' }), undefined);
  } finally {
    await b.close();
    await srv.close();
  }
});
