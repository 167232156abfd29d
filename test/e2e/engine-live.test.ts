import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { test } from 'node:test';
import { parseExposition } from '../../src/parse/exposition.js';
import { chatStream, llamaServerAvailable, startLlamaServer, type ChatStreamResult } from '../helpers/llama.js';
import { startExporter, waitFor } from '../helpers/procs.js';

// A real llama.cpp server (built from source by scripts/setup-llama-server.sh) under a fixed
// streaming load, read by the real exporter: what the exporter counts must match what the
// clients counted, across a kill and a restart of the engine.

const skip = llamaServerAvailable();

/** Sum of the samples of `name` whose labels include `labels`; undefined when there is none. */
function sumOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const fam = parseExposition(text).families.get(name);
  let out: number | undefined;
  for (const s of fam?.samples ?? []) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) out = (out ?? 0) + s.value;
  }
  return out;
}

function within(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance * expected, `${what}: exporter ${actual}, clients ${expected} (±${tolerance * 100}%)`);
}

/** Four clients, each sending `rounds` requests one after another; prompts share a prefix so the prompt cache hits. */
async function load(url: string, rounds: number, tag: string): Promise<ChatStreamResult[]> {
  const prefix = 'You are a careful assistant. Answer briefly and precisely, in plain words. '.repeat(6);
  const clients = Array.from({ length: 4 }, async (_, c) => {
    const out: ChatStreamResult[] = [];
    for (let r = 0; r < rounds; r++) {
      const res = await chatStream(url, { prompt: `${prefix} Question ${tag}-${c}-${r}: what is ${c} plus ${r}?`, maxTokens: 24, ignoreEos: true, timeoutMs: 60_000 });
      assert.equal(res.status, 200, res.error);
      assert.ok(res.done && res.usage, `request ${tag}-${c}-${r} finished with usage`);
      out.push(res);
    }
    return out;
  });
  return (await Promise.all(clients)).flat();
}

test('a live llama.cpp server: tokens counted as the clients counted them, across a kill and a restart', { skip, timeout: 240_000 }, async () => {
  const engine = await startLlamaServer({ parallel: 4 });
  const exporter = await startExporter(['--no-collector.gpu', '--sample.interval=500ms', `--engine.target=${engine.url}/metrics`]);
  const model = basename(engine.model);
  const l = { engine: 'llamacpp', model };
  const scrape = async () => (await fetch(`${exporter.url}/metrics`)).text();
  try {
    // The model name comes from the server's /v1/models: no "unknown".
    const first = await waitFor(async () => {
      const t = await scrape();
      return sumOf(t, 'ds_engine_up', { engine: 'llamacpp' }) === 1 && sumOf(t, 'ds_serving_requests_running', l) !== undefined ? t : undefined;
    }, 20_000, 'the exporter reading llama-server');
    assert.equal(sumOf(first, 'ds_serving_requests_running', { model: 'unknown' }), undefined);
    const before = {
      prompt: sumOf(first, 'ds_serving_tokens_total', { ...l, phase: 'prompt' }) ?? 0,
      generation: sumOf(first, 'ds_serving_tokens_total', { ...l, phase: 'generation' }) ?? 0,
      cached: sumOf(first, 'ds_serving_prompt_cached_tokens_total', l) ?? 0,
      decode: sumOf(first, 'ds_serving_decode_seconds_total', l) ?? 0,
    };

    const started = performance.now();
    const results = await load(engine.url, 5, 'a');
    const seconds = (performance.now() - started) / 1000;
    const clients = {
      prompt: results.reduce((a, r) => a + r.usage!.prompt_tokens, 0),
      generation: results.reduce((a, r) => a + r.usage!.completion_tokens, 0),
      cached: results.reduce((a, r) => a + (r.cachedTokens ?? r.usage!.prompt_tokens_details?.cached_tokens ?? 0), 0),
    };
    // llama.cpp adds a request's tokens when its slot is released: wait for two samples after the last one.
    const after = await waitFor(async () => {
      const t = await scrape();
      const g = sumOf(t, 'ds_serving_tokens_total', { ...l, phase: 'generation' }) ?? 0;
      return g - before.generation >= clients.generation ? t : undefined;
    }, 10_000, 'generation tokens counted');
    await new Promise((r) => setTimeout(r, 1200));
    const settled = await waitFor(scrape, 5_000, 'a scrape of the exporter');
    const got = {
      prompt: sumOf(settled, 'ds_serving_tokens_total', { ...l, phase: 'prompt' })! - before.prompt,
      generation: sumOf(settled, 'ds_serving_tokens_total', { ...l, phase: 'generation' })! - before.generation,
      cached: (sumOf(settled, 'ds_serving_prompt_cached_tokens_total', l) ?? 0) - before.cached,
      decode: (sumOf(settled, 'ds_serving_decode_seconds_total', l) ?? 0) - before.decode,
    };
    assert.ok(after);
    // Rates over the load window, as rate() over the counters would give them.
    within(got.generation / seconds, clients.generation / seconds, 0.1, 'generation tokens/s');
    within(got.prompt / seconds, clients.prompt / seconds, 0.1, 'prompt tokens/s (cache hits included)');
    assert.ok(clients.cached > 0, 'the shared prefix was served from the prompt cache');
    within(got.cached, clients.cached, 0.1, 'cached prompt tokens');
    // Mean inter-token latency from the engine's decode seconds, against the clients' stream timing.
    const clientItl = results.reduce((a, r) => a + Math.max(0, r.e2eMs - (r.ttftMs ?? r.e2eMs)), 0) / 1000 / Math.max(1, clients.generation - results.length);
    const exporterItl = got.decode / got.generation;
    assert.ok(exporterItl > 0 && exporterItl <= clientItl * 1.5, `mean inter-token latency: exporter ${exporterItl * 1000} ms, clients ${clientItl * 1000} ms`);
    // llama.cpp counts no requests: nothing is made up.
    assert.equal(sumOf(settled, 'ds_serving_requests_total', l), undefined);
    console.log(`live llama.cpp: ${results.length} requests in ${seconds.toFixed(1)} s; generation ${got.generation}/${clients.generation}, prompt ${got.prompt}/${clients.prompt}, cached ${got.cached}/${clients.cached} tokens (exporter/clients); mean ITL ${(exporterItl * 1000).toFixed(2)} ms (clients' streams ${(clientItl * 1000).toFixed(2)} ms)`);

    // Killed: down within a few samples, the exporter keeps serving, no frozen serving values.
    const totalBeforeKill = sumOf(settled, 'ds_serving_tokens_total', { ...l, phase: 'generation' })!;
    engine.kill();
    const down = await waitFor(async () => {
      const t = await scrape();
      return sumOf(t, 'ds_engine_up', { engine: 'llamacpp' }) === 0 ? t : undefined;
    }, 5_000, 'ds_engine_up 0 after the kill');
    assert.equal(sumOf(down, 'ds_serving_requests_running', l), undefined, 'no frozen gauge');
    assert.equal(sumOf(down, 'ds_serving_tokens_total', l), undefined, 'no frozen counter');

    // Restarted (its counters start from zero): the exported counter continues, no drop, no spike.
    await engine.restart();
    const again = await load(engine.url, 1, 'b');
    const newTokens = again.reduce((a, r) => a + r.usage!.completion_tokens, 0);
    const resumed = await waitFor(async () => {
      const t = await scrape();
      const g = sumOf(t, 'ds_serving_tokens_total', { ...l, phase: 'generation' });
      return g !== undefined && g - totalBeforeKill >= newTokens ? t : undefined;
    }, 15_000, 'counters after the restart');
    const resumedTotal = sumOf(resumed, 'ds_serving_tokens_total', { ...l, phase: 'generation' })!;
    assert.equal(resumedTotal - totalBeforeKill, newTokens, 'the restart adds exactly the new tokens');
  } finally {
    await exporter.stop();
    await engine.stop();
  }
});
