import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { autoPanels } from '../generate/auto-panels.js';
import { dashboardQueries, ROOT, RULE_FILES, ruleEntries, substitute, variableQueries } from '../generate/queries.js';
import { PROMETHEUS_VERSIONS, type PrometheusVersion } from '../helpers/go-tools.js';
import { type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

// Real Prometheus servers (Debian's 2 and 3 from its Go module) scraping the same two
// simulated exporters, with the generated recording and alerting rules loaded; every dashboard
// query must run and return data on each.

const WARMUP_MS = 25_000;
const RUNNABLE = PROMETHEUS_VERSIONS.filter((v) => !v.skip);

const procs: Proc[] = [];
const promUrls = new Map<PrometheusVersion, string>();

before(async () => {
  if (RUNNABLE.length === 0) return;
  // The second host has GPU faults, so the health panels (GPUs needing action, error trends) have data.
  const faults = ['', '--simulate.fault=gpu0:reset,gpu1:nvlink_errors,gpu2:pcie_replays,gpu3:hot'];
  const exporters = await Promise.all([1, 2].map((seed) => startExporter(['--simulate', `--simulate.seed=${seed}`, '--simulate.gpus=4', '--simulate.peers=3', ...(faults[seed - 1] ? [faults[seed - 1]] : [])])));
  procs.push(...exporters);
  await Promise.all(
    RUNNABLE.map(async (v) => {
      const prom = await startPrometheus(exporters.map((e) => e.url), { binary: v.prometheus, ruleFiles: RULE_FILES.map((f) => join(ROOT, 'alerts', f)) });
      procs.push(prom);
      promUrls.set(v, prom.url);
      await waitFor(async () => Number((await prom.query('sum(up{job="ds-exporter"})'))[0]?.value[1]) === 2, 45_000, `both exporters scraped by Prometheus ${v.label}`);
    }),
  );
  // Enough samples for rate() over the substituted interval and for the recording rules.
  await new Promise((r) => setTimeout(r, WARMUP_MS));
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
});

for (const v of PROMETHEUS_VERSIONS) {
  describe(`Prometheus ${v.label}`, { skip: v.skip }, () => {
    async function getJson(path: string): Promise<{ status: string; data: any; error?: string }> {
      const res = await fetch(`${promUrls.get(v)}${path}`);
      return (await res.json()) as { status: string; data: any; error?: string };
    }

    test('every dashboard panel query runs against live data and returns series', { timeout: 180_000 }, async () => {
      const queries = dashboardQueries();
      assert.ok(queries.length > 50, `only ${queries.length} queries found`);
      const failures: string[] = [];
      const end = Date.now() / 1000;
      for (const q of queries) {
        const expr = substitute(q.expr);
        const r = q.instant
          ? await getJson(`/api/v1/query?query=${encodeURIComponent(expr)}&time=${end}`)
          : await getJson(`/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${end - 20}&end=${end}&step=1`);
        const where = `${q.dashboard} / ${q.panel} / ${q.refId}: ${expr}`;
        if (r.status !== 'success') failures.push(`ERROR ${where}\n    ${r.error}`);
        else if (!Array.isArray(r.data.result) || r.data.result.length === 0) failures.push(`NO DATA ${where}`);
      }
      assert.deepEqual(failures, [], `${failures.length} of ${queries.length} panel queries failed:\n${failures.join('\n')}`);
    });

    test('every template variable query finds values', { timeout: 60_000 }, async () => {
      const failures: string[] = [];
      // The cluster variable lists an external label, which a single Prometheus does not store;
      // test/e2e/remote-write.test.ts finds its values in the store the agents write into.
      for (const v of variableQueries().filter((x) => x.name !== 'cluster')) {
        const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(v.query);
        if (!m) {
          failures.push(`${v.dashboard} $${v.name}: not label_values(selector, label): ${v.query}`);
          continue;
        }
        const r = await getJson(`/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(substitute(m[1]))}`);
        if (r.status !== 'success' || r.data.length === 0) failures.push(`${v.dashboard} $${v.name}: no values for ${v.query} ${r.error ?? ''}`);
      }
      assert.deepEqual(failures, []);
    });

    test('every recording and alerting rule is loaded and evaluates without error', { timeout: 60_000 }, async () => {
      const entries = ruleEntries();
      const r = await getJson('/api/v1/rules');
      const loaded = r.data.groups.flatMap((g: { rules: Array<{ name: string; health: string; lastError?: string }> }) => g.rules);
      assert.equal(loaded.length, entries.length, 'Prometheus loaded a different number of rules than the files hold');
      const bad = loaded.filter((x: { health: string }) => x.health !== 'ok').map((x: { name: string; health: string; lastError?: string }) => `${x.name}: ${x.health} ${x.lastError ?? ''}`);
      assert.deepEqual(bad, []);
      const failures: string[] = [];
      for (const e of entries) {
        const q = await getJson(`/api/v1/query?query=${encodeURIComponent(e.expr)}`);
        if (q.status !== 'success') failures.push(`${e.alert ?? e.record}: ${q.error}`);
        // Recording rules feed the fleet dashboard: each must produce series from the simulated fleet.
        else if (e.record && q.data.result.length === 0) failures.push(`${e.record}: no data`);
      }
      assert.deepEqual(failures, []);
    });

    test('the generated panel of every catalog family (what a catalog addition gets) returns live data', { timeout: 60_000 }, async () => {
      const failures: string[] = [];
      for (const { def, panel } of autoPanels()) {
        for (const t of (panel.targets ?? []) as unknown as Array<{ expr: string }>) {
          const expr = substitute(t.expr);
          const r = await getJson(`/api/v1/query?query=${encodeURIComponent(expr)}`);
          if (r.status !== 'success') failures.push(`ERROR ${def.name}: ${expr}: ${r.error}`);
          else if (r.data.result.length === 0) failures.push(`NO DATA ${def.name}: ${expr}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  });
}
