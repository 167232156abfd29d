import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { testApp } from './helpers/app.js';
import { ROOT } from './helpers/procs.js';

// The series an exporter costs, per host, GPU, engine/model and peer, measured on the simulator
// (every source at once) and held to the budget committed in docs/cardinality.md.

const DOC = readFileSync(join(ROOT, 'docs/cardinality.md'), 'utf8');

function budget(): Map<string, number> {
  const table = DOC.slice(DOC.indexOf('<!-- series-budget'));
  const rows = [...table.matchAll(/^\| (per [a-zA-Z ]+?) \| (\d+) \|/gm)];
  return new Map(rows.map((m) => [m[1], Number(m[2])]));
}

/** The sample lines of /metrics after two samples (counters and histograms have values). */
async function sampleLines(argv: string[]): Promise<string[]> {
  const built = await testApp(['--simulate', ...argv]);
  try {
    await built.scheduler.sampleAll();
    await new Promise((r) => setTimeout(r, 1100));
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    return text.split('\n').filter((l) => l && !l.startsWith('#'));
  } finally {
    await built.close();
  }
}

test('the series of one host, GPU, engine/model and peer stay within the committed budget', { timeout: 120_000 }, async (t) => {
  const b = budget();
  assert.deepEqual([...b.keys()], ['per host', 'per GPU', 'per engine and model', 'per peer'], 'docs/cardinality.md has the budget table');
  const [one, twoGpus, twoPeers] = await Promise.all([
    sampleLines(['--simulate.gpus=1', '--simulate.peers=1']),
    sampleLines(['--simulate.gpus=2', '--simulate.peers=1']),
    sampleLines(['--simulate.gpus=1', '--simulate.peers=2']),
  ]);
  const perGpu = twoGpus.length - one.length;
  const perPeer = twoPeers.length - one.length;
  const models = new Set(one.map((l) => /[{,]engine="([^"]*)".*?[{,]?model="([^"]*)"/.exec(l)?.slice(1).join('/')).filter(Boolean));
  assert.equal(models.size, 1, 'the simulator serves one model on one engine');
  const perEngine = one.filter((l) => /[{,]engine="/.test(l)).length;
  const perHost = one.length - perGpu - perPeer - perEngine;
  const measured = new Map([['per host', perHost], ['per GPU', perGpu], ['per engine and model', perEngine], ['per peer', perPeer]]);
  const problems: string[] = [];
  for (const [unit, n] of measured) {
    const allowed = b.get(unit)!;
    if (n > allowed) problems.push(`${unit}: ${n} series, over the budget of ${allowed} (docs/cardinality.md)`);
    else if (n < allowed * 0.8) problems.push(`${unit}: ${n} series, far under the budget of ${allowed}: lower it in docs/cardinality.md`);
  }
  assert.deepEqual(problems, [], JSON.stringify(Object.fromEntries(measured)));
  t.diagnostic(`measured: ${JSON.stringify(Object.fromEntries(measured))}`);
  // The node the document prices: 8 GPUs, one model, 4 peers.
  const node = await sampleLines(['--simulate.gpus=8', '--simulate.peers=4']);
  const priced = b.get('per host')! + 8 * b.get('per GPU')! + b.get('per engine and model')! + 4 * b.get('per peer')!;
  assert.ok(node.length <= priced, `an 8-GPU node: ${node.length} series, priced at ${priced}`);
  assert.match(DOC, new RegExp(`simulator measures about ${Math.round(node.length / 50) * 50}\\)`), `docs/cardinality.md gives the measured 8-GPU node: about ${Math.round(node.length / 50) * 50}`);
});
