import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dashboardQueries, ROOT, RULE_FILES, ruleEntries, substitute, variableQueries } from '../generate/queries.js';
import { goTool, PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';
import { getApi as get, startVictoriaMetrics, startVmalert } from '../helpers/victoria.js';

// Beyond one Prometheus: Prometheus (3, and 2 where its agent is a feature flag) in agent mode scrapes several simulated exporters and
// remote-writes everything, with an external `cluster` label, into VictoriaMetrics single-node;
// vmalert evaluates the generated recording and alerting rules there. A Prometheus server of the same version
// scrapes the same exporters with the same rules loaded. Every dashboard query must return the
// same series from the store as from Prometheus (values differ: the two scrape at different
// moments), and every rule must evaluate in the store.

const vm = goTool('victoriametrics', 'victoria-metrics');
const vmalert = goTool('victoriametrics', 'vmalert');
const CLUSTER = 'gpu-west';
const WARMUP_MS = 30_000;


for (const v of PROMETHEUS_VERSIONS) {
  describe(`Prometheus ${v.label} agent -> VictoriaMetrics, vmalert`, { skip: v.skip || vm.skip || vmalert.skip }, () => {
    const procs: Proc[] = [];
    let vmUrl = '';
    let promUrl = '';
    let vmalertUrl = '';
    let agent: Proc;

    /** The series of a result, by their labels without `cluster` (only the store has it) and `__name__`. */
    function seriesKeys(result: Array<{ metric: Record<string, string> }>): string[] {
      return result
        .map(({ metric }) => JSON.stringify(Object.entries(metric).filter(([k]) => k !== 'cluster' && k !== '__name__').sort(([a], [b]) => a.localeCompare(b))))
        .sort();
    }

    /** The expression without its filters against a number (`x < 0.05` becomes `x`; `x > bool 0` has no filter and stays). */
    function unfiltered(expr: string): string {
      return expr.replace(/\s*(==|!=|<=|>=|<|>)\s*-?[0-9][0-9.]*(e[+-]?[0-9]+)?(?=\s*(\)|$|or\b|and\b|unless\b))/g, '');
    }

    before(async () => {
      // The third host has GPU faults, so the health panels (GPUs needing action, error trends) have data.
      const faults = ['--simulate.fault=gpu0:reset,gpu1:nvlink_errors,gpu2:pcie_replays,gpu3:hot'];
      const exporters = await Promise.all([1, 2, 3].map((seed) => startExporter(['--simulate', `--simulate.seed=${seed}`, '--simulate.gpus=4', '--simulate.peers=2', ...(seed === 3 ? faults : [])])));
      procs.push(...exporters);
      const store = await startVictoriaMetrics(vm.path!);
      procs.push(store);
      vmUrl = store.url;
      const targets = exporters.map((e) => e.url);
      agent = await startPrometheus(targets, {
        binary: v.prometheus,
        args: v.major === 3 ? ['--agent'] : ['--enable-feature=agent'],
        globalExtra: ['external_labels:', `  cluster: ${CLUSTER}`],
        configExtra: ['remote_write:', `  - url: ${JSON.stringify(`${store.url}/api/v1/write`)}`, '    queue_config:', '      batch_send_deadline: 1s'],
      });
      procs.push(agent);
      const prom = await startPrometheus(targets, { binary: v.prometheus, ruleFiles: RULE_FILES.map((f) => join(ROOT, 'alerts', f)) });
      procs.push(prom);
      promUrl = prom.url;
      const rules = await startVmalert(vmalert.path!, store.url, RULE_FILES.map((f) => join(ROOT, 'alerts', f)));
      procs.push(rules);
      vmalertUrl = rules.url;
      await waitFor(async () => Number((await get(vmUrl, '/api/v1/query?query=' + encodeURIComponent('sum(up{job="ds-exporter"})'))).data?.result?.[0]?.value?.[1]) === 3, 60_000, 'the three exporters in the store');
      // Enough samples for rate() over the substituted interval and for the recording rules, in both.
      await new Promise((r) => setTimeout(r, WARMUP_MS));
    });

    after(async () => {
      await Promise.all(procs.map((p) => p.stop()));
    });

    test('the agent writes every exporter into the store under its cluster label', { timeout: 60_000 }, async () => {
      const up = await get(vmUrl, '/api/v1/query?query=' + encodeURIComponent('up{job="ds-exporter"}'));
      assert.equal(up.status, 'success', up.error);
      assert.equal(up.data.result.length, 3);
      for (const s of up.data.result) assert.equal(s.metric.cluster, CLUSTER);
      const clusters = await get(vmUrl, `/api/v1/label/cluster/values?match[]=${encodeURIComponent('ds_exporter_build_info')}`);
      assert.deepEqual(clusters.data, [CLUSTER], 'the dashboards\' cluster variable finds the cluster');
      // Nothing is queried from the agent: it has no query API, only the WAL it forwards.
      assert.notEqual((await fetch(`${agent.url}/api/v1/query?query=up`)).status, 200);
    });

    test('every dashboard query returns the same series from the store as from Prometheus', { timeout: 300_000 }, async () => {
      const queries = dashboardQueries();
      assert.ok(queries.length > 50, `only ${queries.length} queries found`);
      const failures: string[] = [];
      // A few seconds back, so that the last remote-write batch and rule evaluation have landed.
      const end = Math.floor(Date.now() / 1000) - 3;
      for (const q of queries) {
        const expr = substitute(q.expr);
        const path = q.instant ? `/api/v1/query?query=${encodeURIComponent(expr)}&time=${end}` : `/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${end - 20}&end=${end}&step=1`;
        const [fromProm, fromStore] = await Promise.all([get(promUrl, path), get(vmUrl, path)]);
        const where = `${q.dashboard} / ${q.panel} / ${q.refId}: ${expr}`;
        if (fromProm.status !== 'success') failures.push(`PROMETHEUS ERROR ${where}\n    ${fromProm.error}`);
        else if (fromStore.status !== 'success') failures.push(`STORE ERROR ${where}\n    ${fromStore.error}`);
        else if (fromStore.data.result.length === 0) failures.push(`STORE NO DATA ${where}`);
        else {
          const a = seriesKeys(fromProm.data.result);
          const b = seriesKeys(fromStore.data.result);
          // topk() picks by value, and the two scrape at different moments: the same number of series.
          const differ = (x: string[], y: string[]) => (/\b(topk|bottomk)\(/.test(expr) ? x.length !== y.length : JSON.stringify(x) !== JSON.stringify(y));
          if (differ(a, b)) {
            // A filter against a number (`< 0.05`) keeps what its value says at that moment: a series near the
            // threshold can be in one result and not in the other. Then the series before the filter must agree.
            const open = unfiltered(expr);
            let same = false;
            if (open !== expr) {
              const p2 = q.instant ? `/api/v1/query?query=${encodeURIComponent(open)}&time=${end}` : `/api/v1/query_range?query=${encodeURIComponent(open)}&start=${end - 20}&end=${end}&step=1`;
              const [p, s] = await Promise.all([get(promUrl, p2), get(vmUrl, p2)]);
              same = p.status === 'success' && s.status === 'success' && s.data.result.length > 0 && !differ(seriesKeys(p.data.result), seriesKeys(s.data.result));
            }
            if (!same) failures.push(`DIFFERENT SERIES ${where}\n    Prometheus: ${a.join(' ')}\n    store:      ${b.join(' ')}`);
          }
        }
      }
      assert.deepEqual(failures, [], `${failures.length} of ${queries.length} panel queries differ:\n${failures.join('\n')}`);
    });

    test('every template variable finds the same values in the store as in Prometheus', { timeout: 60_000 }, async () => {
      const failures: string[] = [];
      for (const v of variableQueries()) {
        const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(v.query)!;
        const path = `/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(substitute(m[1]))}`;
        const [a, b] = await Promise.all([get(promUrl, path), get(vmUrl, path)]);
        if (v.name === 'cluster') {
          if (JSON.stringify(b.data) !== JSON.stringify([CLUSTER])) failures.push(`${v.dashboard} $cluster: ${JSON.stringify(b.data)} from the store`);
          continue;
        }
        if (a.status !== 'success' || b.status !== 'success' || (b.data as string[]).length === 0 || JSON.stringify([...a.data].sort()) !== JSON.stringify([...b.data].sort())) {
          failures.push(`${v.dashboard} $${v.name}: Prometheus ${JSON.stringify(a.data ?? a.error)}, store ${JSON.stringify(b.data ?? b.error)}`);
        }
      }
      assert.deepEqual(failures, []);
    });

    test('vmalert loads every rule and evaluates it without error; recorded series keep the cluster label', { timeout: 60_000 }, async () => {
      const entries = ruleEntries();
      const r = await get(vmalertUrl, '/api/v1/rules?datasource_type=prometheus');
      assert.equal(r.status, 'success', r.error);
      const loaded = r.data.groups.flatMap((g: { rules: Array<{ name: string; health: string; lastError?: string }> }) => g.rules);
      assert.equal(loaded.length, entries.length, 'vmalert loaded a different number of rules than the files hold');
      const bad = loaded.filter((x: { health: string; lastError?: string }) => x.health !== 'ok' || x.lastError).map((x: { name: string; health: string; lastError?: string }) => `${x.name}: ${x.health} ${x.lastError ?? ''}`);
      assert.deepEqual(bad, []);
      const missing: string[] = [];
      for (const e of entries.filter((x) => x.record)) {
        const q = await get(vmUrl, `/api/v1/query?query=${encodeURIComponent(e.record!)}`);
        if (q.status !== 'success' || q.data.result.length === 0) missing.push(`${e.record}: ${q.error ?? 'no data'}`);
        else if (q.data.result.some((s: { metric: Record<string, string> }) => s.metric.cluster !== CLUSTER)) missing.push(`${e.record}: lost the cluster label`);
      }
      assert.deepEqual(missing, []);
    });
  });
}
