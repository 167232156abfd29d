import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EngineCollector } from '../../src/collectors/engine/collector.js';
import { enginePids, isLocalHost, listeningInodes, parentPid, resolveGpus, type GpuEvidence } from '../../src/collectors/engine/gpus.js';
import { parseTargets } from '../../src/collectors/engine/scrape.js';
import { ConfigError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/logger.js';
import { SampleStore } from '../../src/core/store.js';
import { freePort, waitFor } from '../helpers/procs.js';

const vllm = readFileSync(new URL('../fixtures/engines/vllm.txt', import.meta.url), 'utf8');
const HOST = [0, 1, 2, 3].map((index) => ({ index, uuid: `GPU-${index}aaaaaaa-0000-0000-0000-000000000000` }));

test('--engine.target: a URL fragment names the GPUs (indices, ranges, UUIDs joined by +) or a pod; it is never sent', () => {
  const [t] = parseTargets(['vllm=http://127.0.0.1:8000/metrics#gpus=0-2+3+GPU-3aaaaaaa-0000-0000-0000-000000000000']);
  assert.equal(t.url, 'http://127.0.0.1:8000/metrics');
  assert.equal(t.label, 'http://127.0.0.1:8000/metrics');
  assert.deepEqual(t.gpus, { gpus: [{ from: 0, to: 2 }, { index: 3 }, { uuid: 'GPU-3aaaaaaa-0000-0000-0000-000000000000' }], pod: undefined });
  const [p] = parseTargets(['http://10.0.0.7:8000/#pod=inference/vllm-deepseek-0']);
  assert.equal(p.url, 'http://10.0.0.7:8000/metrics');
  assert.deepEqual(p.gpus, { gpus: undefined, pod: { namespace: 'inference', pod: 'vllm-deepseek-0' } });
  assert.equal(parseTargets(['http://127.0.0.1:8000/metrics'])[0].gpus, undefined);
  for (const [bad, want] of [
    ['http://h:1/metrics#gpus=', /empty/],
    ['http://h:1/metrics#gpus=0++1', /empty item/],
    ['http://h:1/metrics#gpus=3-1', /range 3-1/],
    ['http://h:1/metrics#gpus=0-5000', /out of range/],
    ['http://h:1/metrics#gpus=1024', /out of range/],
    ['http://h:1/metrics#gpus=zero', /neither a GPU index/],
    ['http://h:1/metrics#gpus=0&gpus=1', /twice/],
    ['http://h:1/metrics#pod=justaname', /NAMESPACE\/NAME/],
    ['http://h:1/metrics#pod=Bad_NS/x', /NAMESPACE\/NAME/],
    ['http://h:1/metrics#cpus=0', /unknown option "cpus"/],
    [`http://h:1/metrics#gpus=${Array.from({ length: 65 }, (_, i) => i).join('+')}`, /more than 64/],
  ] as const) {
    assert.throws(() => parseTargets([bad]), (e: unknown) => e instanceof ConfigError && want.test(e.message), bad);
  }
});

test('resolution: the flag wins, then the engine processes NVML lists, then the pod allocation; otherwise nothing and why', () => {
  const processes = [{ gpu: '2', uuid: HOST[2].uuid, pids: [900, 901] }, { gpu: '3', uuid: HOST[3].uuid, pids: [777] }];
  const allocations = [{ gpu: '0', uuid: HOST[0].uuid, namespace: 'ns', pod: 'p' }, { gpu: '1', uuid: HOST[1].uuid, namespace: 'ns', pod: 'p' }, { gpu: '3', uuid: HOST[3].uuid, namespace: 'other', pod: 'q' }];
  const ev: GpuEvidence = { hostGpus: HOST, processes, enginePids: new Set([900, 1234]), allocations };
  assert.deepEqual(resolveGpus({ gpus: [{ from: 0, to: 1 }], pod: { namespace: 'ns', pod: 'p' } }, ev), { source: 'flag', gpus: [{ gpu: '0', uuid: HOST[0].uuid }, { gpu: '1', uuid: HOST[1].uuid }] });
  assert.deepEqual(resolveGpus({ gpus: [{ uuid: HOST[3].uuid.toLowerCase() }] }, ev), { source: 'flag', gpus: [{ gpu: '3', uuid: HOST[3].uuid }] });
  assert.deepEqual(resolveGpus({ pod: { namespace: 'ns', pod: 'p' } }, ev), { source: 'nvml_processes', gpus: [{ gpu: '2', uuid: HOST[2].uuid }] });
  assert.deepEqual(resolveGpus({ pod: { namespace: 'ns', pod: 'p' } }, { ...ev, enginePids: new Set([5]) }), { source: 'kubelet', gpus: [{ gpu: '0', uuid: HOST[0].uuid }, { gpu: '1', uuid: HOST[1].uuid }] });
  // A GPU the host does not have: no partial answer, the reason instead.
  const r = resolveGpus({ gpus: [{ index: 1 }, { index: 7 }] }, ev);
  assert.equal(r.source, undefined);
  assert.match((r as { why: string }).why, /GPU 7, which is not a GPU of this host \(0, 1, 2, 3\)/);
  assert.match((resolveGpus({ gpus: [{ index: 0 }] }, { ...ev, hostGpus: undefined }) as { why: string }).why, /has not listed the GPUs/);
  const none = resolveGpus({}, { hostGpus: HOST });
  assert.equal(none.source, undefined);
  assert.match((none as { why: string }).why, /no GPU process lists.*no #gpus= or #pod=/);
  assert.match((resolveGpus({ pod: { namespace: 'x', pod: 'y' } }, { ...ev, enginePids: new Set([5]) }) as { why: string }).why, /allocates no GPU to x\/y/);
  assert.match((resolveGpus({ pod: { namespace: 'ns', pod: 'p' } }, { hostGpus: HOST }) as { why: string }).why, /no kubelet allocations/);
});

test('/proc parsing: listening sockets by port and the parent of a process, on literal text', () => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55501 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:1F40 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0 55777 1 0000000000000000 20 4 30 10 -1',
    '   2: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 66601 1 0000000000000000 100 0 0 10 0',
    'garbage',
  ].join('\n');
  assert.deepEqual([...listeningInodes(tcp, 8000)], ['55501']);
  assert.deepEqual([...listeningInodes(tcp, 8001)], ['66601']);
  assert.deepEqual([...listeningInodes('', 8000)], []);
  assert.equal(parentPid('4242 (python3 -m vllm (worker)) S 4100 4242 4100 0 -1'), 4100);
  assert.equal(parentPid('broken'), undefined);
  assert.equal(isLocalHost('127.0.0.1'), true);
  assert.equal(isLocalHost('localhost'), true);
  assert.equal(isLocalHost('[::1]'), true);
  assert.equal(isLocalHost('192.0.2.77'), false);
});

/** A real server process listening on a port, with a child process of its own (an engine and its worker). */
async function startFakeEngine(port: number) {
  const code = `
    const http = require('node:http');
    const { spawn } = require('node:child_process');
    const worker = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const body = ${JSON.stringify(vllm)};
    http.createServer((q, s) => { s.setHeader('content-type', 'text/plain'); s.end(body); }).listen(${port}, '127.0.0.1', () => console.log('worker ' + worker.pid));
    process.on('SIGTERM', () => { worker.kill(); process.exit(0); });
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const workerPid = await waitFor(() => Number(/worker (\d+)/.exec(out)?.[1]) || undefined, 15_000, 'fake engine');
  return { pid: child.pid!, workerPid, stop: () => new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); }) };
}

test('a real engine process and its worker are found by the port it listens on (/proc)', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const e = await startFakeEngine(port);
  try {
    const pids = await enginePids(port);
    assert.ok(pids.has(e.pid), `listener ${e.pid} in ${[...pids]}`);
    assert.ok(pids.has(e.workerPid), `worker ${e.workerPid} in ${[...pids]}`);
    assert.equal(pids.has(process.pid), false);
    assert.equal((await enginePids(await freePort())).size, 0);
  } finally {
    await e.stop();
  }
});

test('the engine collector: ds_engine_gpu_info per model from the flag, from the GPU process lists of a real engine process, and none (with a warning) when the GPUs cannot be told', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const e = await startFakeEngine(port);
  const logs: string[] = [];
  const logger = createLogger('info', (l) => logs.push(l));
  try {
    const store = new SampleStore({ now: () => 1000 });
    // The /proc scan runs beside the samples: a few samples, until its answer is in.
    const run = async (target: string, evidence: Omit<GpuEvidence, 'enginePids'>, samples = 1) => {
      let now = 1000;
      const c = new EngineCollector({ targets: parseTargets([target]), timeoutMs: 2000, maxBytes: 1e7, maxSeries: 100_000, logger, now: () => now, gpuEvidence: () => evidence });
      let labels: Array<Record<string, string>> = [];
      for (let i = 0; i < samples; i++) {
        const batch = store.batch('engine');
        await c.sample(batch, new AbortController().signal);
        labels = batch.entries.filter((x) => x.name === 'ds_engine_gpu_info').map((x) => x.labels);
        if (labels.length) break;
        await new Promise((r) => setTimeout(r, 200));
        now += 1000;
      }
      return labels;
    };
    const url = `http://127.0.0.1:${port}/metrics`;
    const flagged = await run(`vllm=${url}#gpus=1+3`, { hostGpus: HOST });
    assert.ok(flagged.length >= 2 && flagged.length % 2 === 0, JSON.stringify(flagged));
    assert.deepEqual(new Set(flagged.map((l) => `${l.gpu} ${l.uuid} ${l.source} ${l.engine} ${l.target}`)), new Set([`1 ${HOST[1].uuid} flag vllm ${url}`, `3 ${HOST[3].uuid} flag vllm ${url}`]));
    assert.ok(flagged.every((l) => l.model && l.model !== ''), 'one set per model the engine serves');
    // Its worker holds GPU 2 in NVML's process list: found through the port, without any flag.
    const seen = await run(`vllm=${url}`, { hostGpus: HOST, processes: [{ gpu: '2', uuid: HOST[2].uuid, pids: [e.workerPid] }, { gpu: '0', uuid: HOST[0].uuid, pids: [1] }] }, 50);
    assert.deepEqual(new Set(seen.map((l) => `${l.gpu} ${l.source}`)), new Set(['2 nvml_processes']));
    // Nothing tells: no series at all, and the log says why.
    assert.deepEqual(await run(`vllm=${url}`, { hostGpus: HOST }), []);
    assert.deepEqual(await run(`vllm=${url}#gpus=9`, { hostGpus: HOST }), []);
    assert.ok(logs.some((l) => /level=warn msg="engine GPUs cannot be told; no cost per token for it".*GPU 9, which is not a GPU of this host/.test(l)), logs.join('\n'));
  } finally {
    await e.stop();
  }
});

test('through the whole app: #gpus= maps to the GPU inventory, and simulated GPUs\' made-up process lists never claim a real engine', { timeout: 60_000 }, async () => {
  const { testApp } = await import('../helpers/app.js');
  const port = await freePort();
  const e = await startFakeEngine(port);
  const url = `http://127.0.0.1:${port}/metrics`;
  try {
    const flagged = await testApp(['--simulate', '--simulate.gpus=2', `--engine.target=vllm=${url}#gpus=1`]);
    await flagged.scheduler.sampleAll();
    await flagged.scheduler.sampleAll();
    const text = (await flagged.app.inject({ url: '/metrics' })).body;
    const info = text.split('\n').filter((l) => l.startsWith('ds_engine_gpu_info{'));
    assert.ok(info.length > 0, text.slice(0, 2000));
    assert.ok(info.every((l) => /gpu="1",uuid="GPU-[0-9a-f-]+",source="flag"\} 1$/.test(l) && l.includes(`target="${url}"`)), info.join('\n'));
    await flagged.close();
    const unflagged = await testApp(['--simulate', '--simulate.gpus=2', `--engine.target=vllm=${url}`]);
    for (let i = 0; i < 5; i++) {
      await unflagged.scheduler.sampleAll();
      await new Promise((r) => setTimeout(r, 200));
    }
    const text2 = (await unflagged.app.inject({ url: '/metrics' })).body;
    assert.doesNotMatch(text2, /^ds_engine_gpu_info\{/m);
    assert.match(text2, /^ds_serving_tokens_total\{engine="vllm"/m, 'the engine itself is scraped');
    await unflagged.close();
  } finally {
    await e.stop();
  }
});
