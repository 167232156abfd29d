import { type Proc, type ServerAt, startServer } from './procs.js';

export type { ServerAt };

// VictoriaMetrics single-node and vmalert (built by scripts/setup-go-tools.sh; found with
// goTool('victoriametrics', ...) from test/helpers/go-tools.ts), on loopback ports.

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

/** A Prometheus-API answer (Prometheus or VictoriaMetrics). */
export type ApiJson = { status: string; data: any; error?: string };

/** GETs `base + path` and parses the answer; a body that is not JSON becomes an error answer naming the status. */
export async function getApi(base: string, path: string): Promise<ApiJson> {
  const res = await fetch(`${base}${path}`);
  const text = await res.text();
  try {
    return JSON.parse(text) as ApiJson;
  } catch {
    return { status: 'error', data: undefined, error: `HTTP ${res.status}: ${text.slice(0, 300)}` };
  }
}
