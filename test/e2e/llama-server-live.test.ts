import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chatStream, type LlamaServer, llamaServerAvailable, startLlamaServer } from '../helpers/llama.js';
import { waitFor } from '../helpers/procs.js';

// The live llama.cpp engine the engine tests rely on, and the behaviour of its /metrics that the
// llama.cpp normalization assumes (DESIGN.md, engines).

const skip = llamaServerAvailable() ?? false;
let server: LlamaServer;

before(async () => {
  if (skip) return;
  server = await startLlamaServer({ parallel: 2 });
});
after(async () => {
  await server?.stop();
});

async function metrics(url: string): Promise<Map<string, number>> {
  let res: Response;
  try {
    res = await fetch(`${url}/metrics`);
  } catch (err) {
    // The server may close an idle keep-alive connection just as the next request reuses it: once more, on a new one.
    if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
    res = await fetch(`${url}/metrics`);
  }
  assert.equal(res.status, 200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^llamacpp:([a-z_]+) (\S+)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

const delta = (a: Map<string, number>, b: Map<string, number>, name: string) => (b.get(name) ?? NaN) - (a.get(name) ?? NaN);

test('llama-server serves the tiny model and names it by its path in /props and /v1/models', { skip, timeout: 60_000 }, async () => {
  const props = (await (await fetch(`${server.url}/props`)).json()) as { model_alias: string; model_path: string; total_slots: number };
  assert.equal(props.model_path, server.model);
  assert.equal(props.model_alias, server.model);
  assert.equal(props.total_slots, 2);
  const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: Array<{ id: string; owned_by: string }> };
  assert.equal(models.data[0].id, server.model);
  assert.equal(models.data[0].owned_by, 'llamacpp');
});

test('a streamed completion: usage, chunks and the counters agree', { skip, timeout: 60_000 }, async () => {
  const before = await metrics(server.url);
  const r = await chatStream(server.url, { prompt: 'Count the waves on a quiet sea, one by one.', maxTokens: 12 });
  assert.equal(r.status, 200, r.error);
  assert.ok(r.done, 'the stream ends with [DONE]');
  assert.equal(r.finishReason, 'length');
  assert.ok(r.usage, 'a usage chunk');
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.chunks, 12, `one content chunk per token: ${JSON.stringify(r.text)}`);
  assert.ok(r.ttftMs !== undefined && r.ttftMs <= r.e2eMs);
  const cached = r.cachedTokens ?? 0;
  const afterOne = await metrics(server.url);
  // prompt_tokens_total leaves out the tokens reused from the prompt cache; those are prompt_tokens_cached_total.
  assert.equal(delta(before, afterOne, 'prompt_tokens_total'), r.usage.prompt_tokens - cached);
  assert.equal(delta(before, afterOne, 'prompt_tokens_cached_total'), cached);
  assert.equal(delta(before, afterOne, 'tokens_predicted_total'), 12);

  // The same prompt again: all of it but the last token comes from the slot's cache.
  const again = await chatStream(server.url, { prompt: 'Count the waves on a quiet sea, one by one.', maxTokens: 12 });
  assert.equal(again.cachedTokens, again.usage!.prompt_tokens - 1);
  const afterTwo = await metrics(server.url);
  assert.equal(delta(afterOne, afterTwo, 'prompt_tokens_total'), 1);
  assert.equal(delta(afterOne, afterTwo, 'prompt_tokens_cached_total'), again.usage!.prompt_tokens - 1);
});

test('tokens_predicted_total moves when a request ends, not while it streams', { skip, timeout: 60_000 }, async () => {
  const start = await metrics(server.url);
  const streaming = chatStream(server.url, { prompt: 'A long answer, please.', maxTokens: 400 });
  const during = await waitFor(async () => {
    const m = await metrics(server.url);
    return m.get('requests_processing') === 1 && delta(start, m, 'prompt_tokens_total') > 0 ? m : undefined;
  }, 20_000, 'the request to be processing', { everyMs: 5 });
  const r = await streaming;
  assert.equal(r.usage?.completion_tokens, 400);
  assert.equal(delta(start, during, 'tokens_predicted_total'), 0, 'nothing counted while the request streams');
  const end = await metrics(server.url);
  assert.equal(delta(start, end, 'tokens_predicted_total'), 400);
  assert.equal(end.get('requests_processing'), 0);
});

test('a client that goes away: its generated tokens are still counted when the slot is released', { skip, timeout: 60_000 }, async () => {
  const start = await metrics(server.url);
  const r = await chatStream(server.url, { prompt: 'Go on and on.', maxTokens: 400, abortAfterChunks: 3 });
  assert.ok(r.aborted);
  const end = await waitFor(async () => {
    const m = await metrics(server.url);
    return m.get('requests_processing') === 0 && delta(start, m, 'tokens_predicted_total') > 0 ? m : undefined;
  }, 20_000, 'the cancelled request to be released');
  const n = delta(start, end, 'tokens_predicted_total');
  assert.ok(n >= 3 && n <= 400, `tokens counted for the cancelled request: ${n}`);
});

test('restart: the counters start over', { skip, timeout: 60_000 }, async () => {
  await chatStream(server.url, { prompt: 'Something to count.', maxTokens: 4 });
  assert.ok(((await metrics(server.url)).get('tokens_predicted_total') ?? 0) > 0);
  await server.restart();
  const m = await metrics(server.url);
  assert.equal(m.get('tokens_predicted_total'), 0);
  assert.equal(m.get('prompt_tokens_total'), 0);
});
