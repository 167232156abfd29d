import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort, ROOT, waitFor } from './procs.js';

// A live llama.cpp engine: `llama-server` built by scripts/setup-llama-server.sh, serving the
// tiny random-weight model written by test/tools/tiny-gguf/make_tiny_gguf.py.

export const LLAMA_SERVER = join(ROOT, '.test-tools/bin/llama-server');
export const TINY_MODEL = join(ROOT, '.test-tools/models/tiny.gguf');
const UNAVAILABLE = join(ROOT, '.test-tools/llama-server.unavailable');

/** Why the live llama.cpp tests cannot run here (for `skip`), or undefined when they can. */
export function llamaServerAvailable(): string | undefined {
  let why: string | undefined;
  try {
    why = readFileSync(UNAVAILABLE, 'utf8').trim() || undefined;
  } catch {
    // no note from the setup
  }
  for (const [path, mode, what] of [
    [LLAMA_SERVER, constants.X_OK, 'llama-server'],
    [TINY_MODEL, constants.R_OK, 'the tiny model'],
  ] as const) {
    try {
      accessSync(path, mode);
    } catch {
      return `${what} is missing (${path}): ${why ?? 'run scripts/setup-llama-server.sh'}`;
    }
  }
  return undefined;
}

export interface LlamaServerOptions {
  /** Total context (`-c`), shared by the slots; default 2048. */
  readonly ctx?: number;
  /** Slots (`--parallel`); default 4. */
  readonly parallel?: number;
  /** CPU threads (`-t`); default 1. */
  readonly threads?: number;
  /** Served model name (`--alias`); without it llama-server names the model by its path. */
  readonly alias?: string;
  /** Port; default a free one. */
  readonly port?: number;
  /** More command-line arguments. */
  readonly args?: readonly string[];
  /** How long to wait for /health; default 60 s. */
  readonly readyMs?: number;
}

export interface LlamaServer {
  readonly url: string;
  readonly port: number;
  /** The model path as passed with `-m` (what /props and /v1/models name without an alias). */
  readonly model: string;
  /** The running process (a new one after `restart`). */
  child(): ChildProcess;
  /** stdout and stderr so far (the last 100 kB or more). */
  output(): string;
  /** SIGTERM, SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL now, as a crash would. */
  kill(): void;
  /** Stops it and starts it again on the same port (the counters start over), waiting for /health. */
  restart(): Promise<void>;
}

/** Starts llama-server with `--metrics` on a loopback port and waits until /health says ok. */
export async function startLlamaServer(opts: LlamaServerOptions = {}): Promise<LlamaServer> {
  const reason = llamaServerAvailable();
  if (reason) throw new Error(`llama-server cannot run: ${reason}`);
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = [
    '-m', TINY_MODEL,
    '--host', '127.0.0.1',
    '--port', String(port),
    '--metrics',
    '-c', String(opts.ctx ?? 2048),
    '--parallel', String(opts.parallel ?? 4),
    '-t', String(opts.threads ?? 1),
    ...(opts.alias ? ['--alias', opts.alias] : []),
    ...(opts.args ?? []),
  ];
  let out = '';
  let child: ChildProcess;

  const launch = async () => {
    child = spawn(LLAMA_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const add = (d: Buffer) => {
      out += d.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout!.on('data', add);
    child.stderr!.on('data', add);
    const started = child;
    await waitFor(
      async () => {
        if (started.exitCode !== null || started.signalCode !== null) {
          throw new Error(`llama-server exited (code ${started.exitCode}, signal ${started.signalCode}):\n${out.slice(-3000)}`);
        }
        const res = await fetch(`${url}/health`);
        return res.ok && ((await res.json()) as { status?: string }).status === 'ok';
      },
      opts.readyMs ?? 60_000,
      `llama-server /health on ${url}`,
      { everyMs: 100 },
    ).catch(async (e: unknown) => {
      await stopChild(started);
      throw new Error(`${String(e)}\n${out.slice(-3000)}`);
    });
  };
  await launch();

  return {
    url,
    port,
    model: TINY_MODEL,
    child: () => child,
    output: () => out,
    stop: () => stopChild(child),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    async restart() {
      await stopChild(child);
      await launch();
    },
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      res();
    });
    child.kill('SIGTERM');
  });
}

export interface ChatStreamOptions {
  readonly prompt: string;
  /** `max_tokens`; default 16. */
  readonly maxTokens?: number;
  /** `chat` (default): /v1/chat/completions with one user message; `completions`: /v1/completions with the raw prompt. */
  readonly endpoint?: 'chat' | 'completions';
  /** The `model` field, when the server needs one. */
  readonly model?: string;
  /**
   * llama.cpp's `ignore_eos`: generate exactly maxTokens. Default true (the tiny model never
   * samples its end token anyway; this keeps that true for other models).
   */
  readonly ignoreEos?: boolean;
  /** llama.cpp's `cache_prompt` (reuse the slot's cached prefix); left to the server when unset. */
  readonly cachePrompt?: boolean;
  /** More request body fields (temperature, seed, ...). */
  readonly extra?: Record<string, unknown>;
  /** Drop the connection after this many content chunks (a client that goes away). */
  readonly abortAfterChunks?: number;
  /** Give up (abort) after this long; default 60 s. */
  readonly timeoutMs?: number;
}

export interface StreamUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens?: number;
  readonly prompt_tokens_details?: { readonly cached_tokens?: number };
}

export interface ChatStreamResult {
  readonly status: number;
  /** From sending the request to the first chunk with content, in ms; undefined when none came. */
  readonly ttftMs?: number;
  /** From sending the request to the end of the stream, in ms. */
  readonly e2eMs: number;
  /** Chunks that carried generated text. */
  readonly chunks: number;
  readonly text: string;
  readonly finishReason?: string;
  /** The final usage chunk (`stream_options.include_usage`); undefined when none came. */
  readonly usage?: StreamUsage;
  /** `usage.prompt_tokens_details.cached_tokens`, when given. */
  readonly cachedTokens?: number;
  /** llama.cpp's own `timings` from the last chunk that had them. */
  readonly timings?: Record<string, number>;
  /** True when the stream ended with `data: [DONE]`. */
  readonly done: boolean;
  /** True when the client aborted it (abortAfterChunks). */
  readonly aborted: boolean;
  /** The body, when the status was not 200. */
  readonly error?: string;
}

interface StreamChunk {
  choices?: Array<{ delta?: { content?: string | null }; text?: string; finish_reason?: string | null }>;
  usage?: StreamUsage;
  timings?: Record<string, number>;
}

/**
 * An OpenAI-style streaming completion against `url` (the server's base URL): POSTs with
 * `stream: true` and `stream_options.include_usage`, reads the server-sent events and times them.
 */
export async function chatStream(url: string, opts: ChatStreamOptions): Promise<ChatStreamResult> {
  const chat = (opts.endpoint ?? 'chat') === 'chat';
  const body: Record<string, unknown> = {
    ...(opts.model ? { model: opts.model } : {}),
    ...(chat ? { messages: [{ role: 'user', content: opts.prompt }] } : { prompt: opts.prompt }),
    max_tokens: opts.maxTokens ?? 16,
    stream: true,
    stream_options: { include_usage: true },
    ignore_eos: opts.ignoreEos ?? true,
    ...(opts.cachePrompt === undefined ? {} : { cache_prompt: opts.cachePrompt }),
    ...opts.extra,
  };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`stream from ${url} took over ${opts.timeoutMs ?? 60_000} ms`)), opts.timeoutMs ?? 60_000);
  const t0 = performance.now();
  try {
    const post = () => fetch(`${url.replace(/\/$/, '')}/v1/${chat ? 'chat/completions' : 'completions'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal: ac.signal,
    });
    // A pooled keep-alive connection the server closed just as it was reused ends before any
    // answer (the server never read the request): that case alone is sent again. Several pooled
    // connections can have been closed at once, so up to three times.
    const res = await (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await post();
        } catch (err) {
          const code = (err as { cause?: { code?: string } })?.cause?.code;
          if (ac.signal.aborted || attempt >= 3 || !(code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE')) throw err;
        }
      }
    })();
    if (res.status !== 200 || !res.body) {
      return { status: res.status, e2eMs: performance.now() - t0, chunks: 0, text: '', done: false, aborted: false, error: await res.text() };
    }
    let ttftMs: number | undefined;
    let chunks = 0;
    let text = '';
    let finishReason: string | undefined;
    let usage: StreamUsage | undefined;
    let timings: Record<string, number> | undefined;
    let done = false;
    let aborted = false;
    let buf = '';
    const decoder = new TextDecoder();

    // One SSE event: its `data:` lines joined.
    const event = (raw: string) => {
      const data = raw
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) return;
      if (data === '[DONE]') {
        done = true;
        return;
      }
      const chunk = JSON.parse(data) as StreamChunk & { error?: unknown };
      if (chunk.error) throw new Error(`stream error: ${JSON.stringify(chunk.error)}`);
      const choice = chunk.choices?.[0];
      const piece = chat ? choice?.delta?.content : choice?.text;
      if (piece) {
        ttftMs ??= performance.now() - t0;
        chunks++;
        text += piece;
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
      if (chunk.timings) timings = chunk.timings;
    };

    const reader = res.body.getReader();
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
      let at: number;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        event(buf.slice(0, at));
        buf = buf.slice(at + 2);
      }
      if (opts.abortAfterChunks !== undefined && chunks >= opts.abortAfterChunks) {
        aborted = true;
        await reader.cancel();
        break;
      }
    }
    if (!aborted && buf.trim()) event(buf);
    return {
      status: res.status,
      ttftMs,
      e2eMs: performance.now() - t0,
      chunks,
      text,
      finishReason,
      usage,
      cachedTokens: usage?.prompt_tokens_details?.cached_tokens,
      timings,
      done,
      aborted,
    };
  } finally {
    clearTimeout(timer);
  }
}
