import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** True when `cmd --version` (or `cmd ...args`) runs. */
export function has(cmd: string, args: readonly string[] = ['--version']): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What `promtool check metrics` prints (stdout and stderr) for an exposition: empty when it has no finding. */
export function promtoolCheckMetrics(text: string, promtool = 'promtool'): string {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw r.error;
  return r.stdout + r.stderr;
}

export interface WaitOptions {
  /** Pause between polls; default 200 ms. */
  readonly everyMs?: number;
  /**
   * Default true: an error thrown by `fn` counts as "not yet" (a server still starting) and
   * is named in the timeout. False: it fails the wait at once (an assertion inside `fn`).
   */
  readonly retryErrors?: boolean;
}

/** Polls `fn` until it returns a truthy value (and returns it), or fails after `ms`. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, ms: number, what: string, opts: WaitOptions = {}): Promise<T> {
  const everyMs = opts.everyMs ?? 200;
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (opts.retryErrors === false) throw e;
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface Proc {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
  stop(): Promise<number | null>;
}

function track(child: ChildProcess): () => string {
  let out = '';
  const add = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => out;
}

/** Stops a child: SIGTERM, SIGKILL after 5 s; resolves with its exit code. */
function stopper(child: ChildProcess): () => Promise<number | null> {
  return () =>
    new Promise((res) => {
      if (child.exitCode !== null || child.signalCode !== null) return res(child.exitCode);
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', (code) => {
        clearTimeout(kill);
        res(code);
      });
      child.kill('SIGTERM');
    });
}

/** Starts the real exporter (`src/main.ts` under tsx) on a free loopback port and waits until ready. */
export async function startExporter(args: string[], env: NodeJS.ProcessEnv = {}, opts: { readyUrl?: (port: number) => Promise<boolean> } = {}): Promise<Proc> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), `--web.listen-address=127.0.0.1:${port}`, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = track(child);
  const url = `http://127.0.0.1:${port}`;
  const ready = opts.readyUrl ?? (async () => (await fetch(`${url}/readyz`)).ok);
  await waitFor(async () => child.exitCode === null && (await ready(port)), 30_000, `exporter on ${url} (${output()})`);
  return { child, url, output, stop: stopper(child) };
}

export interface PrometheusOptions {
  readonly ruleFiles?: string[];
  readonly scrapeInterval?: string;
  /** More lines of the scrape job (indented under it). */
  readonly jobExtra?: string[];
  /** The server binary; default Debian's `prometheus` on PATH (test/helpers/go-tools.ts names Prometheus 3). */
  readonly binary?: string;
  /** More lines under `global:` (indented under it), e.g. `external_labels:`. */
  readonly globalExtra?: string[];
  /** More top-level configuration lines (`remote_write:` ...). */
  readonly configExtra?: string[];
  /** More command-line arguments (`--agent`, feature flags). */
  readonly args?: string[];
}

/** Starts a real Prometheus scraping `targets` every second, with optional rule files. */
export async function startPrometheus(targets: string[], opts: PrometheusOptions = {}): Promise<Proc & { query(expr: string): Promise<PromResult[]> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'dsx-prom-'));
  const interval = opts.scrapeInterval ?? '1s';
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(opts.globalExtra ?? []).map((l) => `  ${l}`),
    ...(opts.ruleFiles?.length ? ['rule_files:', ...opts.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    '  - job_name: ds-exporter',
    ...(opts.jobExtra ?? []).map((l) => `    ${l}`),
    '    static_configs:',
    `      - targets: [${targets.map((t) => JSON.stringify(t.replace(/^https?:\/\//, ''))).join(', ')}]`,
    ...(opts.configExtra ?? []),
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config + '\n');
  const agent = opts.args?.some((a) => a === '--agent' || a === '--enable-feature=agent');
  const storage = agent ? `--storage.agent.path=${join(dir, 'wal')}` : `--storage.tsdb.path=${join(dir, 'data')}`;
  const child = spawn(opts.binary ?? 'prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, storage, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = track(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => child.exitCode === null && (await fetch(`${url}/-/ready`)).ok, 30_000, `prometheus on ${url} (${output()})`);
  const stop = stopper(child);
  return {
    child,
    url,
    output,
    stop: async () => {
      const code = await stop();
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
    async query(expr: string) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
      if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
      return body.data!.result;
    },
  };
}

export interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

/** Where a server listens and keeps its data; a `dir` passed in is kept on stop, so a server can be started again on it. */
export interface ServerAt {
  readonly port: number;
  readonly dir: string;
}

/** Starts `binary` with `args(port, dir)`, waits for `readyPath` to answer 200; `dir` is removed on stop unless it came from `at`. */
export async function startServer(what: string, binary: string, args: (port: number, dir: string) => string[], readyPath: string, at?: ServerAt): Promise<Proc> {
  const port = at?.port ?? (await freePort());
  const dir = at?.dir ?? mkdtempSync(join(tmpdir(), `dsx-${what}-`));
  const child = spawn(binary, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = track(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => child.exitCode === null && (await fetch(`${url}${readyPath}`)).ok, 30_000, `${what} on ${url} (${output()})`);
  return {
    child,
    url,
    output,
    stop: async () => {
      const code = await stopper(child)();
      if (!at) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
