import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultRulesConfig, type RulesConfig } from '../../src/generate/rules/config.js';
import { alertRuleFile, recordingRuleFile } from '../../src/generate/rules/index.js';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

// A simulated host with a slow rank, a job that hangs, an idle allocation, a slow link and a
// lossy link, scraped by a real Prometheus with the generated rules. Only the `for:` durations
// and windows are shortened (through the rules config, as a deployment would tune them); the
// expressions are the shipped ones.
const cfg: RulesConfig = {
  ...defaultRulesConfig,
  idleWindow: '20s',
  idleFor: '10s',
  stragglerFor: '10s',
  trainingHungWindow: '15s',
  trainingHungFor: '5s',
  peerOutlierFor: '10s',
};
const SCENARIO = ['--simulate', '--simulate.gpus=4', '--simulate.peers=4', '--simulate.ranks=4', '--simulate.slow-rank=2', '--simulate.slow-factor=2', '--simulate.hang-after=25s', '--simulate.idle-gpus=1', '--simulate.slow-peer=0', '--simulate.lossy-peer=1'];

interface Alert {
  metric: Record<string, string>;
}

for (const v of PROMETHEUS_VERSIONS) {
  describe(`Prometheus ${v.label}`, { skip: v.skip }, () => {
    let exporter: Proc;
    let prom: Awaited<ReturnType<typeof startPrometheus>>;
    let dir = '';

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'dsx-eff-rules-'));
      writeFileSync(join(dir, 'rules.yaml'), recordingRuleFile(cfg));
      writeFileSync(join(dir, 'alerts.yaml'), alertRuleFile(cfg));
      exporter = await startExporter(SCENARIO);
      prom = await startPrometheus([exporter.url], { binary: v.prometheus, ruleFiles: [join(dir, 'rules.yaml'), join(dir, 'alerts.yaml')] });
    });
    after(async () => {
      await prom?.stop();
      await exporter?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('each efficiency alert fires against the simulated situation, naming the right rank, job, pod and links', { timeout: 240_000 }, async () => {
      const firing = async (name: string) => (await prom.query(`ALERTS{alertname="${name}",alertstate="firing"}`)) as unknown as Alert[];
      const all = ['DsTrainingStraggler', 'DsTrainingHung', 'DsGpuAllocatedIdle', 'DsCommPeerRttOutlier', 'DsCommPeerLossOutlier'];
      const seen = new Map<string, Alert[]>();
      await waitFor(async () => {
        for (const a of all) if (!seen.has(a)) {
          const r = await firing(a);
          if (r.length) seen.set(a, r);
        }
        return seen.size === all.length;
      }, 200_000, `all of ${all.join(', ')} firing (so far: ${[...seen.keys()].join(', ')})`, { everyMs: 1000 });
      const labels = (a: string) => seen.get(a)!.map((x) => x.metric);
      assert.deepEqual(labels('DsTrainingStraggler').map((l) => [l.exported_job, l.rank]), [['sim-train', '2']]);
      assert.deepEqual(labels('DsTrainingHung').map((l) => l.exported_job), ['sim-train']);
      assert.ok(labels('DsGpuAllocatedIdle').some((l) => `${l.namespace}/${l.pod}` === 'inference/notebook-7f9c'), JSON.stringify(labels('DsGpuAllocatedIdle')));
      assert.deepEqual(labels('DsCommPeerRttOutlier').map((l) => l.peer), ['10.0.0.2:9842']);
      assert.deepEqual(labels('DsCommPeerLossOutlier').map((l) => l.peer), ['10.0.0.3:9842']);
      // The serving pod is busy. Its counters are young: for their first 5 minutes the 5-minute rates
      // divide by the whole window and under-count, which the shortened 20 s window of this test
      // can catch (the shipped 30 m window and 1 h hold absorb it). Once its busy share over the
      // window is real, only the notebook is left.
      const idle = await waitFor(async () => {
        const r = (await firing('DsGpuAllocatedIdle')).map((x) => `${x.metric.namespace}/${x.metric.pod}`);
        return r.length === 1 ? r : undefined;
      }, 90_000, 'DsGpuAllocatedIdle settled on the idle pod alone', { everyMs: 1000 });
      assert.deepEqual(idle, ['inference/notebook-7f9c']);
      assert.equal((await prom.query('ALERTS{alertname="DsGpuAllocatedIdle",pod="vllm-deepseek-0",alertstate="firing"}')).length, 0);
    });

    test('cost per token and model FLOPs utilization are recorded from the simulated counters', { timeout: 60_000 }, async () => {
      const j = await waitFor(async () => (await prom.query('engine_model:ds_serving_energy_joules_per_token:ratio_rate5m{phase="generation"}'))[0], 30_000, 'joules per token');
      const joules = Number(j.value[1]);
      // Three serving H100s at up to 700 W against about 2,600 generated tokens/s at full load.
      assert.ok(joules > 0.01 && joules < 100, `joules per generated token ${joules}`);
      assert.equal(j.metric.engine, 'vllm');
      const gpus = await prom.query('engine_model:ds_serving_gpus:count');
      assert.equal(Number(gpus[0].value[1]), 3);
      const mfu = await prom.query('rank:ds_training_mfu:ratio_rate5m');
      assert.ok(mfu.length >= 1, 'MFU of the ranks on known GPUs');
      for (const r of mfu) assert.ok(Number(r.value[1]) >= 0 && Number(r.value[1]) <= 1, `MFU ${r.value[1]}`);
      // Rank 3 has no GPU of its own in this simulated host: no figure.
      assert.equal(mfu.some((r) => r.metric.rank === '3'), false);
    });
  });
}
