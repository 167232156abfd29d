import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { goTool, PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { freePort, type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';
import { type ServerAt, getApi as get, startVictoriaMetrics } from '../helpers/victoria.js';

// A remote-write receiver that is down: Prometheus in agent mode scrapes two simulated exporters
// and remote-writes into VictoriaMetrics; the store is stopped while the agent keeps scraping, and
// started again on the same port and data directory. The exporters know nothing of the store: they
// keep answering /metrics as before, every collector succeeding. The agent keeps what it scraped in
// its WAL and retries (backoff kept short), so the samples scraped during the outage reach the store.

const vm = goTool('victoriametrics', 'victoria-metrics');
const CLUSTER = 'gpu-west';
const OUTAGE_MS = 12_000;
const COUNTER = 'ds_gpu_energy_joules_total';


/** One instant query against the store at `time` (unix seconds): the value of each series, by instance. */
async function instant(base: string, expr: string, time: number): Promise<Map<string, number>> {
  const r = await get(base, `/api/v1/query?query=${encodeURIComponent(expr)}&time=${time}`);
  if (r.status !== 'success') throw new Error(`${expr}: ${r.error}`);
  return new Map((r.data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => [s.metric.instance ?? '', Number(s.value[1])]));
}

/** Fetches an exporter's /metrics; its latency in ms and its collector success lines. */
async function scrape(url: string): Promise<{ ms: number; status: number; collectors: Map<string, number> }> {
  const t = performance.now();
  const res = await fetch(`${url}/metrics`);
  const body = await res.text();
  const ms = performance.now() - t;
  const collectors = new Map<string, number>();
  for (const m of body.matchAll(/^ds_exporter_collector_success\{collector="([^"]+)"\} (\S+)$/gm)) collectors.set(m[1], Number(m[2]));
  return { ms, status: res.status, collectors };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const v of PROMETHEUS_VERSIONS) {
  describe(`Prometheus ${v.label} agent while VictoriaMetrics is down`, { skip: v.skip || vm.skip }, () => {
    const procs: Proc[] = [];
    let exporters: Proc[] = [];
    let store: Proc | undefined;
    let at: ServerAt;
    let instances: string[] = [];

    before(async () => {
      exporters = await Promise.all([1, 2].map((seed) => startExporter(['--simulate', `--simulate.seed=${seed}`, '--simulate.gpus=2'])));
      procs.push(...exporters);
      instances = exporters.map((e) => e.url.replace(/^https?:\/\//, ''));
      at = { port: await freePort(), dir: mkdtempSync(join(tmpdir(), 'dsx-vm-outage-')) };
      store = await startVictoriaMetrics(vm.path!, [], at);
      const agent = await startPrometheus(
        exporters.map((e) => e.url),
        {
          binary: v.prometheus,
          args: v.major === 3 ? ['--agent'] : ['--enable-feature=agent'],
          globalExtra: ['external_labels:', `  cluster: ${CLUSTER}`],
          // Short backoff: the agent retries a refused connection every second at most, so the backlog lands soon after the store returns.
          configExtra: ['remote_write:', `  - url: ${JSON.stringify(`${store.url}/api/v1/write`)}`, '    queue_config:', '      batch_send_deadline: 1s', '      min_backoff: 100ms', '      max_backoff: 1s'],
        },
      );
      procs.push(agent);
      await waitFor(async () => (await instant(store!.url, `sum(up{job="ds-exporter"})`, Date.now() / 1000)).get('') === 2, 60_000, 'both exporters in the store');
    });

    after(async () => {
      await Promise.all([...procs, ...(store ? [store] : [])].map((p) => p.stop()));
      if (at) rmSync(at.dir, { recursive: true, force: true });
    });

    test('the exporters serve as before while the store is down, and what was scraped meanwhile arrives once it is back', { timeout: 180_000 }, async () => {
      // Before: each exporter's /metrics latency, with the store up.
      const baseline: number[] = [];
      for (let i = 0; i < 5; i++) for (const e of exporters) baseline.push((await scrape(e.url)).ms);
      const beforeSeconds = Date.now() / 1000;

      await store!.stop();
      store = undefined;
      const down = Date.now() / 1000;
      assert.ok(await fetch(`http://127.0.0.1:${at.port}/health`).then(() => false, () => true), 'the store still answers after stop');

      // During: the exporters answer every request, every collector succeeds, latency as before.
      const during: number[] = [];
      const failures: string[] = [];
      const until = Date.now() + OUTAGE_MS;
      while (Date.now() < until) {
        for (const e of exporters) {
          const s = await scrape(e.url);
          during.push(s.ms);
          if (s.status !== 200) failures.push(`${e.url}: HTTP ${s.status}`);
          if (s.collectors.size === 0) failures.push(`${e.url}: no ds_exporter_collector_success`);
          for (const [c, ok] of s.collectors) if (ok !== 1) failures.push(`${e.url}: collector ${c} failed`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      const up = Date.now() / 1000;
      assert.deepEqual([...new Set(failures)], []);
      assert.ok(during.length >= 10, `only ${during.length} scrapes during the outage`);
      // Nothing in the exporter waits on the store: the median stays where it was (slack for the shared machine).
      assert.ok(median(during) <= 3 * median(baseline) + 50, `/metrics median ${median(during).toFixed(1)} ms during the outage, ${median(baseline).toFixed(1)} ms before`);

      // Back on the same port and data directory: the agent's backlog arrives.
      store = await startVictoriaMetrics(vm.path!, [], at);
      const window = Math.floor(up - down);
      const expected = Math.floor(window * 0.8);
      const counted = await waitFor(
        async () => {
          const n = await instant(store!.url, `sum by (instance) (count_over_time(${COUNTER}{gpu="0",cluster="${CLUSTER}"}[${window}s]))`, Math.floor(up));
          if (instances.every((i) => (n.get(i) ?? 0) >= expected)) return n;
          const all = await instant(store!.url, `sum by (instance) (count_over_time(${COUNTER}{gpu="0"}[${Math.floor(Date.now() / 1000 - down) + 30}s]))`, Math.floor(Date.now() / 1000));
          throw new Error(`outage window: ${JSON.stringify([...n])}; since 30 s before it: ${JSON.stringify([...all])}`);
        },
        90_000,
        `${window} s of ${COUNTER} samples scraped during the outage (at least ${expected} per exporter) in the store`,
      );
      assert.equal(counted.size, 2);
      // The samples are those scraped then: the counter rose across the outage, scrape by scrape.
      const rose = await instant(store!.url, `increase(${COUNTER}{gpu="0"}[${window}s])`, Math.floor(up));
      for (const i of instances) assert.ok((rose.get(i) ?? 0) > 0, `${COUNTER} did not rise during the outage on ${i}`);

      // The agent's own view, forwarded with the backlog: every scrape during the outage succeeded and took no longer than before.
      const upMin = await instant(store!.url, `min_over_time(up{job="ds-exporter"}[${window}s])`, Math.floor(up));
      for (const i of instances) assert.equal(upMin.get(i), 1, `a scrape of ${i} failed during the outage`);
      const durBefore = await instant(store!.url, `avg_over_time(scrape_duration_seconds{job="ds-exporter"}[${Math.max(2, Math.floor(down - beforeSeconds) + 5)}s])`, Math.floor(down));
      const durDuring = await instant(store!.url, `avg_over_time(scrape_duration_seconds{job="ds-exporter"}[${window}s])`, Math.floor(up));
      for (const i of instances) {
        const a = durBefore.get(i);
        const b = durDuring.get(i);
        assert.ok(a !== undefined && b !== undefined, `no scrape_duration_seconds for ${i}`);
        assert.ok(b <= 3 * a + 0.05, `scrape of ${i} took ${b.toFixed(3)} s on average during the outage, ${a.toFixed(3)} s before`);
      }
    });
  });
}
