import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type Proc, stopper, waitFor } from './procs.js';

// VictoriaMetrics single-node and vmalert (built by scripts/setup-go-tools.sh; found with
// goTool('victoriametrics', ...) from test/helpers/go-tools.ts), on loopback ports.

/** Where a server listens and keeps its data; a `dir` passed in is kept on stop, so a server can be started again on it. */
export interface ServerAt {
  readonly port: number;
  readonly dir: string;
}

/** Starts `binary` with `args(port, dir)`, waits for `readyPath` to answer 200; `dir` is removed on stop unless it came from `at`. */
async function startServer(what: string, binary: string, args: (port: number, dir: string) => string[], readyPath: string, at?: ServerAt): Promise<Proc> {
  const port = at?.port ?? (await freePort());
  const dir = at?.dir ?? mkdtempSync(join(tmpdir(), `dsx-${what}-`));
  const child = spawn(binary, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const add = (d: Buffer) => {
    out = (out + d.toString()).slice(-100_000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => child.exitCode === null && (await fetch(`${url}${readyPath}`)).ok, 30_000, `${what} on ${url} (${out})`);
  return {
    child,
    url,
    output: () => out,
    stop: async () => {
      const code = await stopper(child)();
      if (!at) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * VictoriaMetrics single-node: Prometheus remote write at `/api/v1/write`, the Prometheus query
 * API at `/api/v1/query*`. Recent samples are queryable at once (`-search.latencyOffset=0s`; the
 * default hides the last 30 s) and query results are not cached, so a test sees what was written.
 * With `at`, it listens on that port and stores into that directory, which survives `stop()`:
 * a second start on the same `at` is the same store restarted.
 */
export function startVictoriaMetrics(binary: string, extra: readonly string[] = [], at?: ServerAt): Promise<Proc> {
  return startServer(
    'victoria-metrics',
    binary,
    (port, dir) => [`-storageDataPath=${dir}`, `-httpListenAddr=127.0.0.1:${port}`, '-retentionPeriod=1d', '-search.latencyOffset=0s', '-search.disableCache', '-loggerLevel=WARN', ...extra],
    '/health',
    at,
  );
}

/**
 * vmalert evaluating `ruleFiles` every `interval` against `datasource` (a VictoriaMetrics URL),
 * writing recorded series back into it; alerts go nowhere (`-notifier.blackhole`).
 */
export function startVmalert(binary: string, datasource: string, ruleFiles: readonly string[], interval = '1s', extra: readonly string[] = []): Promise<Proc> {
  return startServer(
    'vmalert',
    binary,
    (port) => [
      ...ruleFiles.map((f) => `-rule=${f}`),
      `-datasource.url=${datasource}`,
      `-remoteWrite.url=${datasource}`,
      `-evaluationInterval=${interval}`,
      // Evaluate at "now": the default delay (for data still in flight) would leave a short test without results.
      '-rule.evalDelay=0s',
      '-remoteWrite.flushInterval=1s',
      '-notifier.blackhole',
      `-httpListenAddr=127.0.0.1:${port}`,
      '-loggerLevel=WARN',
      ...extra,
    ],
    '/health',
  );
}
