import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { detectEngine, extractReading, nameVariants, outcomeOf } from '../../src/collectors/engine/engines.js';
import { parseTargets } from '../../src/collectors/engine/scrape.js';
import { counterIncrease, histogramDelta, histogramQuantile, type Hist } from '../../src/collectors/engine/window.js';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { parseExposition } from '../../src/parse/exposition.js';
import { snapshotOf } from '../../src/http/snapshot.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/engines/${name}`, import.meta.url), 'utf8');
const read = (text: string) => {
  const exp = parseExposition(text);
  const engine = detectEngine(exp);
  return extractReading(exp, engine);
};

test('histogram_quantile: linear interpolation inside the bucket, +Inf gives the highest finite bound', () => {
  const h: Hist = { bounds: [0.1, 0.5, 1, Infinity], counts: [0, 10, 10, 10] };
  assert.equal(histogramQuantile(0.5, h), 0.1 + 0.4 * 0.5);
  assert.ok(Math.abs(histogramQuantile(0.9, h)! - (0.1 + 0.4 * 0.9)) < 1e-12);
  // First bucket starts at zero.
  assert.equal(histogramQuantile(0.5, { bounds: [2, Infinity], counts: [4, 4] }), 1);
  // Rank in +Inf: the highest finite bound, as PromQL does.
  assert.equal(histogramQuantile(0.99, { bounds: [1, 2, Infinity], counts: [0, 1, 100] }), 2);
  // Nothing observed: no value.
  assert.equal(histogramQuantile(0.5, { bounds: [1, Infinity], counts: [0, 0] }), undefined);
  assert.equal(histogramQuantile(0.5, { bounds: [Infinity], counts: [5] }), undefined);
});

test('histogram_quantile agrees with sorted observations to within one bucket width', () => {
  const bounds = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, Infinity];
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 4.99, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.constantFrom(0.5, 0.9, 0.99), (obs, q) => {
      const counts = bounds.map((b) => obs.filter((o) => o <= b).length);
      const est = histogramQuantile(q, { bounds, counts })!;
      const sorted = [...obs].sort((a, b) => a - b);
      const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
      const i = bounds.findIndex((b) => exact <= b);
      const lo = i === 0 ? 0 : bounds[i - 1];
      assert.ok(est >= lo - 1e-9 && est <= bounds[i] + 1e-9, `q=${q} est=${est} exact=${exact} bucket=(${lo},${bounds[i]}]`);
    }),
    { numRuns: 500 },
  );
});

test('counter and histogram deltas treat a drop as a restart', () => {
  assert.equal(counterIncrease(100, 130), 30);
  assert.equal(counterIncrease(100, 7), 7);
  const a: Hist = { bounds: [1, Infinity], counts: [5, 8] };
  assert.deepEqual(histogramDelta(a, { bounds: [1, Infinity], counts: [7, 12] }).counts, [2, 4]);
  assert.deepEqual(histogramDelta(a, { bounds: [1, Infinity], counts: [1, 1] }).counts, [1, 1]);
  assert.deepEqual(histogramDelta(a, { bounds: [2, Infinity], counts: [9, 9] }).counts, [9, 9]);
});

test('engine detection on each real payload', () => {
  assert.equal(detectEngine(parseExposition(fixture('vllm.txt'))), 'vllm');
  assert.equal(detectEngine(parseExposition(fixture('sglang.txt'))), 'sglang');
  assert.equal(detectEngine(parseExposition(fixture('triton.txt'))), 'triton');
  assert.equal(detectEngine(parseExposition(fixture('trtllm-triton-backend.txt'))), 'triton');
  assert.equal(detectEngine(parseExposition('# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n')), 'tgi');
  assert.equal(detectEngine(parseExposition('trtllm_request_success_total{model_name="m",finished_reason="stop"} 1\n')), 'trtllm');
  assert.equal(detectEngine(parseExposition('llamacpp:requests_processing 2\n')), 'llamacpp');
  assert.equal(detectEngine(parseExposition('process_open_fds 3\n')), 'unknown');
});

test('real payloads read through the alias tables', () => {
  const v = read(fixture('vllm.txt'));
  const m = v.models.get('facebook/opt-125m')!;
  assert.equal(m.promptTokens, 5);
  assert.equal(m.generationTokens, 7);
  assert.equal(m.requests.get('success'), 1);
  assert.equal(m.running, 0);
  assert.equal(m.kvCacheRatio, 0);
  assert.equal(m.ttft!.counts.at(-1), 1);
  assert.equal(m.itl!.counts.at(-1), 144); // the newer inter_token_latency_seconds wins over the older name
  const s = read(fixture('sglang.txt')).models.get('meta-llama/Llama-3.1-8B-Instruct')!;
  assert.equal(s.generationTokens, 7557572);
  assert.equal(s.running, 162);
  assert.equal(s.waiting, 2826);
  assert.equal(s.kvCacheRatio, 0.28);
  assert.equal(s.itl!.counts.at(-1), 7400757); // only the older time_per_output_token_seconds exists
  const t = read(fixture('triton.txt'));
  assert.equal(t.models.get('densenet_onnx')!.requests.get('success'), 3);
  assert.equal(t.models.get('densenet_onnx')!.requests.get('error'), 0);
  assert.equal(t.models.get('densenet_onnx')!.promptTokens, undefined);
  const trt = read(fixture('trtllm-triton-backend.txt')).models.get('tensorrt_llm')!;
  assert.equal(trt.running, 0);
  assert.equal(trt.waiting, 1);
  assert.equal(trt.kvCacheRatio, 1 / 6239);
});

test('aliases: older and newer vLLM names, both prefix separators, counters with and without _total', () => {
  const oldOnly = 'vllm:gpu_cache_usage_perc{model_name="m"} 0.5\nvllm:time_per_output_token_seconds_bucket{model_name="m",le="0.1"} 3\nvllm:time_per_output_token_seconds_bucket{model_name="m",le="+Inf"} 4\n';
  const o = read(oldOnly).models.get('m')!;
  assert.equal(o.kvCacheRatio, 0.5);
  assert.deepEqual(o.itl!.counts, [3, 4]);
  const newOnly = '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="m"} 0.25\n# TYPE vllm:inter_token_latency_seconds histogram\nvllm:inter_token_latency_seconds_bucket{model_name="m",le="+Inf"} 9\n';
  const n = read(newOnly).models.get('m')!;
  assert.equal(n.kvCacheRatio, 0.25);
  assert.deepEqual(n.itl!.counts, [9]);
  // sglang_ prefix and an OpenMetrics counter (TYPE without _total).
  const sg = read('# TYPE sglang_prompt_tokens counter\nsglang_prompt_tokens_total{model_name="x"} 42\nsglang_prompt_tokens_created{model_name="x"} 1.7e9\n# EOF\n').models.get('x')!;
  assert.equal(sg.promptTokens, 42);
  // Counters without _total (Triton style) also match a _total alias and the reverse.
  assert.deepEqual(nameVariants('vllm:prompt_tokens_total'), ['vllm:prompt_tokens_total', 'vllm:prompt_tokens', 'vllm_prompt_tokens_total', 'vllm_prompt_tokens']);
  const vOld = read('vllm_prompt_tokens{model_name="m"} 11\n').models.get('m')!;
  assert.equal(vOld.promptTokens, 11);
});

test('TGI, trtllm-serve and llama.cpp payloads', () => {
  const tgi = read([
    '# TYPE tgi_request_success counter', 'tgi_request_success 90',
    '# TYPE tgi_request_failure counter', 'tgi_request_failure{err="validation"} 4', 'tgi_request_failure{err="overloaded"} 1',
    '# TYPE tgi_queue_size gauge', 'tgi_queue_size 7', '# TYPE tgi_batch_current_size gauge', 'tgi_batch_current_size 12',
    '# TYPE tgi_request_input_length histogram', 'tgi_request_input_length_bucket{le="+Inf"} 95', 'tgi_request_input_length_sum 19000', 'tgi_request_input_length_count 95',
    '# TYPE tgi_request_generated_tokens histogram', 'tgi_request_generated_tokens_bucket{le="+Inf"} 90', 'tgi_request_generated_tokens_sum 27000', 'tgi_request_generated_tokens_count 90',
    '# TYPE tgi_request_duration histogram', 'tgi_request_duration_bucket{le="1"} 50', 'tgi_request_duration_bucket{le="+Inf"} 90', 'tgi_request_duration_count 90', 'tgi_request_duration_sum 100',
  ].join('\n') + '\n');
  assert.equal(tgi.engine, 'tgi');
  const t = tgi.models.get('unknown')!;
  assert.equal(t.promptTokens, 19000);
  assert.equal(t.generationTokens, 27000);
  assert.equal(t.requests.get('success'), 90);
  assert.equal(t.requests.get('error'), 5);
  assert.equal(t.running, 12);
  assert.equal(t.waiting, 7);
  assert.deepEqual(t.e2e!.counts, [50, 90]);
  const trt = read('trtllm_prompt_tokens_total{model_name="ds",engine_type="trtllm"} 100\ntrtllm_generation_tokens_total{model_name="ds",engine_type="trtllm"} 50\ntrtllm_request_success_total{model_name="ds",finished_reason="stop"} 3\ntrtllm_request_success_total{model_name="ds",finished_reason="cancelled"} 1\ntrtllm_time_to_first_token_seconds_bucket{model_name="ds",le="0.5"} 2\ntrtllm_time_to_first_token_seconds_bucket{model_name="ds",le="+Inf"} 4\n').models.get('ds')!;
  assert.equal(trt.promptTokens, 100);
  assert.equal(trt.requests.get('success'), 3);
  assert.equal(trt.requests.get('aborted'), 1);
  assert.deepEqual(trt.ttft!.counts, [2, 4]);
  const ll = read('llamacpp:prompt_tokens_total 10\nllamacpp:tokens_predicted_total 20\nllamacpp:requests_processing 1\nllamacpp:requests_deferred 2\nllamacpp:kv_cache_usage_ratio 0.3\n');
  assert.equal(ll.engine, 'llamacpp');
  assert.deepEqual({ ...ll.models.get('unknown')!, requests: undefined, counters: undefined }, { promptTokens: 10, generationTokens: 20, running: 1, waiting: 2, kvCacheRatio: 0.3, requests: undefined, counters: undefined });
  // Current llama.cpp leaves prompt-cache hits out of prompt_tokens_total: prompt tokens are both.
  const cached = read('llamacpp:prompt_tokens_total 53\nllamacpp:prompt_tokens_cached_total 1462\nllamacpp:tokens_predicted_total 20\nllamacpp:prompt_seconds_total 0.5\nllamacpp:tokens_predicted_seconds_total 0.021\n').models.get('unknown')!;
  assert.equal(cached.promptTokens, 53 + 1462);
  assert.equal(cached.counters.get('cachedTokens'), 1462);
  assert.equal(cached.counters.get('prefillSeconds'), 0.5);
  assert.equal(cached.counters.get('decodeSeconds'), 0.021);
});

test('a summary where a histogram was expected gives no percentile; a histogram without +Inf still does', () => {
  const r = read('# TYPE vllm:time_to_first_token_seconds summary\nvllm:time_to_first_token_seconds{model_name="m",quantile="0.5"} 0.2\nvllm:time_to_first_token_seconds_count{model_name="m"} 4\nvllm:time_to_first_token_seconds_sum{model_name="m"} 1\n# TYPE vllm:e2e_request_latency_seconds histogram\nvllm:e2e_request_latency_seconds_bucket{model_name="m",le="1"} 2\nvllm:e2e_request_latency_seconds_count{model_name="m"} 3\nvllm:num_requests_running{model_name="m"} 1\n').models.get('m')!;
  assert.equal(r.ttft, undefined);
  assert.deepEqual(r.e2e, { bounds: [1, Infinity], counts: [2, 3], sum: undefined });
});

test('series split by another label (vLLM data-parallel engine cores) add up; KV usage takes the fullest', () => {
  const r = read('vllm:num_requests_running{model_name="m",engine="0"} 3\nvllm:num_requests_running{model_name="m",engine="1"} 4\nvllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.5\nvllm:kv_cache_usage_perc{model_name="m",engine="1"} 0.75\nvllm:prompt_tokens_total{model_name="m",engine="0"} 10\nvllm:prompt_tokens_total{model_name="m",engine="1"} 5\n').models.get('m')!;
  assert.equal(r.running, 7);
  assert.equal(r.kvCacheRatio, 0.75);
  assert.equal(r.promptTokens, 15);
});

test('KV cache given in percent is converted to a ratio; nonsense is dropped', () => {
  assert.equal(read('vllm:kv_cache_usage_perc{model_name="m"} 87.5\n').models.get('m')!.kvCacheRatio, 0.875);
  assert.equal(read('vllm:kv_cache_usage_perc{model_name="m"} 1000\nvllm:num_requests_running{model_name="m"} 1\n').models.get('m')!.kvCacheRatio, undefined);
});

test('outcomes from finish reasons', () => {
  assert.equal(outcomeOf('stop'), 'success');
  assert.equal(outcomeOf('length'), 'success');
  assert.equal(outcomeOf('abort'), 'aborted');
  assert.equal(outcomeOf('error'), 'error');
  assert.equal(outcomeOf(undefined), 'success');
});

test('targets: URL or KIND=URL, /metrics added to a bare host, credentials kept out of the label', () => {
  const t = parseTargets(['vllm=http://127.0.0.1:8000/metrics', 'http://u:secret@127.0.0.1:9000', 'https://h:1/m?x=a=b']);
  assert.equal(t[0].kind, 'vllm');
  assert.equal(t[0].url, 'http://127.0.0.1:8000/metrics');
  assert.equal(t[1].kind, undefined);
  assert.equal(t[1].url, 'http://u:secret@127.0.0.1:9000/metrics');
  assert.equal(t[1].label, 'http://127.0.0.1:9000/metrics');
  assert.equal(t[2].url, 'https://h:1/m?x=a=b');
  assert.throws(() => parseTargets(['vlm=http://x/']), (e: unknown) => e instanceof ConfigError && /unknown engine "vlm"/.test(e.message));
  assert.throws(() => parseTargets(['ftp://x/']), ConfigError);
  assert.throws(() => parseTargets(['not a url']), ConfigError);
  assert.throws(() => parseTargets(['http://a/m', 'http://a/m']), /twice/);
});

test('the collector turns on when targets are given, unless switched off explicitly', () => {
  const names = (argv: string[]) => loadConfig(argv, {}).collectors.map((c) => c.name);
  assert.ok(!names([]).includes('engine'));
  assert.ok(names(['--engine.target=http://127.0.0.1:1/metrics']).includes('engine'));
  assert.ok(loadConfig([], { DS_EXPORTER_ENGINE_TARGET: 'vllm=http://127.0.0.1:1/metrics,http://127.0.0.1:2' }).collectors.some((c) => c.name === 'engine'));
  assert.ok(!names(['--engine.target=http://127.0.0.1:1/metrics', '--no-collector.engine']).includes('engine'));
  assert.throws(() => loadConfig(['--engine.target=bogus=http://x'], {}), ConfigError);
});

test('fuzz: hostile engine values never throw and never produce a negative rate, an Inf or a ratio outside 0..1', async () => {
  const { EngineCollector } = await import('../../src/collectors/engine/collector.js');
  const { SampleStore } = await import('../../src/core/store.js');
  const { silentLogger } = await import('../../src/core/logger.js');
  const names = ['vllm:prompt_tokens_total', 'vllm:generation_tokens_total', 'vllm:request_success_total', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc', 'vllm:time_to_first_token_seconds_bucket', 'vllm:time_to_first_token_seconds_count', 'vllm:e2e_request_latency_seconds_bucket'];
  const value = fc.oneof(fc.constantFrom('NaN', '+Inf', '-Inf', '0', '-1', '1e308', '-0'), fc.double({ noNaN: true, noDefaultInfinity: true }).map(String));
  const line = fc.tuple(fc.constantFrom(...names), fc.constantFrom('m', 'n', ''), fc.constantFrom('0.1', '1', '+Inf', 'NaN', '-Inf', 'x', '-1'), fc.constantFrom('stop', 'abort', 'error'), value).map(([n, m, le, reason, v]) => `${n}{model_name="${m}",le="${le}",finished_reason="${reason}"} ${v}`);
  const payload = fc.array(line, { maxLength: 25 }).map((ls) => ls.join('\n') + '\n');
  await fc.assert(
    fc.asyncProperty(fc.array(payload, { minLength: 2, maxLength: 4 }), async (payloads) => {
      let now = 1_000_000;
      let i = 0;
      const store = new SampleStore({ now: () => now });
      const c = new EngineCollector({ targets: [{ url: 'http://127.0.0.1:1/metrics', label: 't' }], timeoutMs: 100, maxBytes: 1e6, maxSeries: 1000, logger: silentLogger, now: () => now, fetch: async () => payloads[i++] });
      for (let k = 0; k < payloads.length; k++) {
        const batch = store.batch('engine');
        await c.sample(batch, new AbortController().signal);
        store.commit(batch);
        now += 1000;
        const m = snapshotOf(store).metrics;
        for (const s of m.ds_serving_throughput_tokens_per_second ?? []) assert.ok(Number.isFinite(s.value) && s.value >= 0, `rate ${s.value}`);
        for (const s of m.ds_serving_kv_cache_usage_ratio ?? []) assert.ok(s.value >= 0 && s.value <= 1, `kv ${s.value}`);
        for (const name of ['ds_serving_time_to_first_token_seconds', 'ds_serving_e2e_request_latency_seconds']) for (const s of m[name] ?? []) assert.ok(Number.isFinite(s.value), `${name} ${s.value}`);
        for (const s of m.ds_serving_requests_total ?? []) assert.ok(Number.isFinite(s.value) && s.value >= 0);
      }
    }),
    { numRuns: 300 },
  );
});

test('current engine names (vLLM 0.34, SGLang 0.5, trtllm-serve, llama.cpp) feed the stall and efficiency counters', () => {
  const v = read([
    'vllm:prompt_tokens_total{model_name="m",engine="0"} 1000',
    'vllm:prompt_tokens_cached_total{model_name="m",engine="0"} 400',
    'vllm:prefix_cache_hits_total{model_name="m",engine="0"} 350',
    'vllm:num_preemptions_total{model_name="m",engine="0"} 3',
    'vllm:admission_rejections_total{model_name="m",reason="max_num_queued_reqs"} 2',
    'vllm:admission_rejections_total{model_name="m",reason="max_num_queued_tokens"} 5',
    'vllm:spec_decode_num_draft_tokens_total{model_name="m",engine="0"} 90',
    'vllm:spec_decode_num_accepted_tokens_total{model_name="m",engine="0"} 60',
    'vllm:request_prefill_time_seconds_bucket{model_name="m",engine="0",le="+Inf"} 4',
    'vllm:request_prefill_time_seconds_sum{model_name="m",engine="0"} 1.5',
    'vllm:request_decode_time_seconds_bucket{model_name="m",engine="0",le="+Inf"} 4',
    'vllm:request_decode_time_seconds_sum{model_name="m",engine="0"} 8.25',
    'vllm:request_queue_time_seconds_bucket{model_name="m",engine="0",le="0.3"} 3',
    'vllm:request_queue_time_seconds_bucket{model_name="m",engine="0",le="+Inf"} 4',
    'vllm:request_queue_time_seconds_sum{model_name="m",engine="0"} 0.9',
    'vllm:request_success_total{model_name="m",engine="0",finished_reason="repetition"} 1',
    'vllm:request_success_total{model_name="m",engine="0",finished_reason="error"} 2',
  ].join('\n') + '\n').models.get('m')!;
  assert.equal(v.promptTokens, 1000, 'vLLM prompt tokens already include cache hits');
  assert.equal(v.counters.get('cachedTokens'), 400, 'the newest cached-token counter wins');
  assert.equal(v.counters.get('preemptions'), 3);
  assert.equal(v.counters.get('rejections'), 7, 'rejections of every reason add up');
  assert.equal(v.counters.get('specDraftTokens'), 90);
  assert.equal(v.counters.get('specAcceptedTokens'), 60);
  assert.equal(v.counters.get('prefillSeconds'), 1.5);
  assert.equal(v.counters.get('decodeSeconds'), 8.25);
  assert.deepEqual(v.queue, { bounds: [0.3, Infinity], counts: [3, 4], sum: 0.9 });
  assert.equal(v.requests.get('success'), 1);
  assert.equal(v.requests.get('error'), 2);
  const g = read('sglang:num_retracted_requests_total{model_name="s"} 9\nsglang:cached_tokens_total{model_name="s",cache_source="device"} 30\nsglang:cached_tokens_total{model_name="s",cache_source="host"} 12\nsglang:queue_time_seconds_bucket{model_name="s",le="+Inf"} 2\n').models.get('s')!;
  assert.equal(g.counters.get('preemptions'), 9);
  assert.equal(g.counters.get('cachedTokens'), 42);
  assert.equal(g.queue!.counts.at(-1), 2);
  const t = read('trtllm_prompt_cached_tokens_total{model_name="t",engine_type="trtllm"} 5\ntrtllm_spec_decode_num_draft_tokens_total{model_name="t",engine_type="trtllm"} 8\ntrtllm_request_queue_time_seconds_bucket{model_name="t",engine_type="trtllm",le="+Inf"} 1\n').models.get('t')!;
  assert.equal(t.counters.get('cachedTokens'), 5);
  assert.equal(t.counters.get('specDraftTokens'), 8);
  assert.equal(t.queue!.counts.at(-1), 1);
});

test('NVIDIA Dynamo frontend and worker payloads', () => {
  const d = read([
    '# TYPE dynamo_frontend_requests_total counter',
    'dynamo_frontend_requests_total{model="qwen",endpoint="chat_completions",request_type="stream",status="success",error_type=""} 40',
    'dynamo_frontend_requests_total{model="qwen",endpoint="chat_completions",request_type="stream",status="error",error_type="overload"} 3',
    'dynamo_frontend_active_requests{model="qwen"} 6',
    'dynamo_frontend_queued_requests{model="qwen"} 2',
    'dynamo_frontend_model_rejection_total{model="qwen",endpoint="chat_completions"} 3',
    'dynamo_frontend_output_tokens_total{model="qwen"} 5000',
    'dynamo_frontend_input_sequence_tokens_bucket{model="qwen",le="+Inf"} 43',
    'dynamo_frontend_input_sequence_tokens_sum{model="qwen"} 12000',
    'dynamo_frontend_input_sequence_tokens_count{model="qwen"} 43',
    'dynamo_frontend_cached_tokens_bucket{model="qwen",le="+Inf"} 43',
    'dynamo_frontend_cached_tokens_sum{model="qwen"} 3000',
    'dynamo_frontend_time_to_first_token_seconds_bucket{model="qwen",le="0.5"} 30',
    'dynamo_frontend_time_to_first_token_seconds_bucket{model="qwen",le="+Inf"} 40',
    'dynamo_component_gpu_cache_usage_percent{model="qwen",dynamo_namespace="ns",dynamo_component="backend",dynamo_endpoint="generate"} 0.42',
  ].join('\n') + '\n');
  assert.equal(d.engine, 'dynamo');
  const m = d.models.get('qwen')!;
  assert.equal(m.promptTokens, 12000);
  assert.equal(m.generationTokens, 5000);
  assert.equal(m.counters.get('cachedTokens'), 3000);
  assert.equal(m.counters.get('rejections'), 3);
  assert.equal(m.requests.get('success'), 40);
  assert.equal(m.requests.get('error'), 3);
  assert.equal(m.running, 6);
  assert.equal(m.waiting, 2);
  assert.equal(m.kvCacheRatio, 0.42);
  assert.deepEqual(m.ttft!.counts, [30, 40]);
});

test('Gateway API Inference Extension endpoint picker: current llm_d_epp_ names and the deprecated ones', () => {
  const cur = read([
    'llm_d_epp_request_total{model_name="llama",target_model_name="llama-v2",fairness_id="",priority="0"} 100',
    'llm_d_epp_request_error_total{model_name="llama",target_model_name="llama-v2",fairness_id="",priority="0",error_code="Internal"} 4',
    'llm_d_epp_request_running{model_name="llama",target_model_name="llama-v2",fairness_id="",priority="0"} 7',
    'llm_d_epp_request_input_tokens_bucket{model_name="llama",target_model_name="llama-v2",fairness_id="",priority="0",le="+Inf"} 96',
    'llm_d_epp_request_input_tokens_sum{model_name="llama",target_model_name="llama-v2",fairness_id="",priority="0"} 9600',
    'llm_d_epp_average_kv_cache_utilization{name="pool"} 0.5',
  ].join('\n') + '\n');
  assert.equal(cur.engine, 'epp');
  const c = cur.models.get('llama')!;
  assert.equal(c.requests.get('success'), 96, 'all minus errors');
  assert.equal(c.requests.get('error'), 4);
  assert.equal(c.running, 7);
  assert.equal(c.promptTokens, 9600);
  const old = read('inference_objective_request_total{model_name="m",target_model_name="m"} 10\ninference_objective_running_requests{model_name="m"} 2\ninference_pool_ready_pods{name="p"} 3\n');
  assert.equal(old.engine, 'epp');
  assert.equal(old.models.get('m')!.requests.get('success'), 10);
  assert.equal(old.models.get('m')!.running, 2);
});
