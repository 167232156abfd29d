import { ConfigError, SourceError } from '../../core/errors.js';
import { ENGINE_KINDS, type EngineKind } from './engines.js';
import { parseTargetOptions, type TargetGpuOptions } from './gpus.js';

/** Why a scrape failed; the `reason` label of ds_engine_scrape_errors_total. */
export type ScrapeFailure = 'timeout' | 'refused' | 'network' | 'http_status' | 'too_large' | 'parse';

/** A failed scrape with a stable, log-friendly message. */
export class ScrapeError extends SourceError {
  override name = 'ScrapeError';
  constructor(readonly reason: ScrapeFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** One configured target. */
export interface EngineTarget {
  readonly url: string;
  /** The `target` label: the URL without credentials. */
  readonly label: string;
  /** Kind given as `KIND=URL`; detected from the payload otherwise. */
  readonly kind?: EngineKind;
  /** What the URL fragment says about the target's GPUs (`#gpus=0-3`, `#pod=ns/name`). */
  readonly gpus?: TargetGpuOptions;
}

/**
 * Parses `--engine.target` values: `URL` or `KIND=URL`, http(s) only. A URL whose
 * path is empty gets `/metrics`. Throws ConfigError naming the bad value.
 */
export function parseTargets(values: readonly string[]): EngineTarget[] {
  const out: EngineTarget[] = [];
  const seen = new Set<string>();
  for (const raw of values) {
    const v = raw.trim();
    if (!v) continue;
    let kind: EngineKind | undefined;
    let urlText = v;
    const m = /^([a-z][a-z0-9]*)=(.*)$/i.exec(v);
    if (m && !/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
      const k = m[1].toLowerCase();
      if (!(ENGINE_KINDS as readonly string[]).includes(k)) throw new ConfigError(`--engine.target: unknown engine "${m[1]}" in "${v}" (one of ${ENGINE_KINDS.join(', ')})`);
      kind = k as EngineKind;
      urlText = m[2];
    }
    let url: URL;
    try {
      url = new URL(urlText);
    } catch {
      throw new ConfigError(`--engine.target: "${v}" is not a URL (expected e.g. http://127.0.0.1:8000/metrics or vllm=http://...)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`--engine.target: "${v}" must be http or https`);
    if (url.pathname === '' || url.pathname === '/') url.pathname = '/metrics';
    // The fragment is ours (never sent): which GPUs the engine runs on.
    const gpus = parseTargetOptions(url.hash.replace(/^#/, ''), v);
    url.hash = '';
    const label = new URL(url.href);
    label.username = '';
    label.password = '';
    if (seen.has(url.href)) throw new ConfigError(`--engine.target: "${v}" is given twice`);
    seen.add(url.href);
    out.push({ url: url.href, label: label.href, kind, ...(gpus.gpus || gpus.pod ? { gpus } : {}) });
  }
  return out;
}

export interface FetchOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly signal: AbortSignal;
}

function networkReason(err: unknown): { reason: ScrapeFailure; message: string } {
  let cur: unknown = err;
  for (let d = 0; d < 5 && cur; d++) {
    const e = cur as { name?: string; code?: string; message?: string; cause?: unknown };
    if (e.name === 'TimeoutError') return { reason: 'timeout', message: 'timeout' };
    if (e.code === 'ECONNREFUSED') return { reason: 'refused', message: 'connection refused' };
    if (e.code && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return { reason: 'network', message: `network error ${e.code}` };
    cur = e.cause;
  }
  return { reason: 'network', message: `network error: ${(err as Error)?.message ?? String(err)}` };
}

/**
 * GETs a target's payload with a timeout, the sample's abort signal and a size bound
 * (checked on Content-Length and while reading, after decompression). The global
 * fetch keeps connections alive between samples. Throws ScrapeError.
 */
export async function fetchPayload(url: string, opts: FetchOptions): Promise<string> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([opts.signal, timeout]);
  let res: Response;
  try {
    res = await fetch(url, {
      signal,
      headers: { accept: 'text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1' },
      redirect: 'follow',
    });
  } catch (err) {
    if (timeout.aborted) throw new ScrapeError('timeout', `timeout after ${opts.timeoutMs} ms`, { cause: err });
    const { reason, message } = networkReason(err);
    throw new ScrapeError(reason, message, { cause: err });
  }
  try {
    if (res.status < 200 || res.status > 299) throw new ScrapeError('http_status', `HTTP ${res.status}`);
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > opts.maxBytes) throw new ScrapeError('too_large', `body larger than ${opts.maxBytes} bytes`);
    if (!res.body) return '';
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > opts.maxBytes) {
        await reader.cancel().catch(() => {});
        throw new ScrapeError('too_large', `body larger than ${opts.maxBytes} bytes`);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (err) {
    // Drop the rest of the body so the connection is not left half-read.
    await res.body?.cancel().catch(() => {});
    if (err instanceof ScrapeError) throw err;
    if (timeout.aborted) throw new ScrapeError('timeout', `timeout after ${opts.timeoutMs} ms`, { cause: err });
    const { reason, message } = networkReason(err);
    throw new ScrapeError(reason, message, { cause: err });
  }
}

/** Where an engine whose metrics carry no model label names its model, and how to read the answer. */
const MODEL_APIS: Partial<Record<EngineKind, { path: string; pick: (body: unknown) => unknown }>> = {
  // llama.cpp's OpenAI-compatible model list: {"data":[{"id":"<alias or file>"}]}.
  llamacpp: { path: '/v1/models', pick: (b) => (b as { data?: Array<{ id?: unknown }> })?.data?.[0]?.id },
  // TGI's /info: {"model_id":"..."}.
  tgi: { path: '/info', pick: (b) => (b as { model_id?: unknown })?.model_id },
};

/** Longest model name accepted from an engine's API; a longer one is not a name. */
const MAX_MODEL_NAME = 256;

/**
 * The model an engine serves, from its API, for engines whose metrics carry no model
 * label (llama.cpp, TGI): the metrics URL with the API's path. Undefined when the engine
 * has no such API, does not answer, or answers something that is not a plain name.
 */
export async function fetchModelName(metricsUrl: string, engine: EngineKind, opts: FetchOptions): Promise<string | undefined> {
  const api = MODEL_APIS[engine];
  if (!api) return undefined;
  const url = new URL(metricsUrl);
  url.pathname = api.path;
  url.search = '';
  const text = await fetchPayload(url.href, opts);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  const name = api.pick(body);
  if (typeof name !== 'string') return undefined;
  const trimmed = name.trim();
  // Control characters and huge values are not names; the label stays "unknown".
  if (!trimmed || trimmed.length > MAX_MODEL_NAME || /[\u0000-\u001f\u007f]/.test(trimmed)) return undefined;
  // llama.cpp names a model without an alias by its file path: the file name is the name.
  return /\.gguf$/i.test(trimmed) ? trimmed.replace(/^.*[\\/]/, '') : trimmed;
}
