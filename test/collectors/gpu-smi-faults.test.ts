import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testApp, valueOf } from '../helpers/app.js';
import { alive, FAKE_SMI, fakeStarts, setFakeSmiEnv, type FakeSmiEnv } from '../helpers/fake-smi.js';
import { waitFor } from '../helpers/procs.js';
import { snapshotOf } from '../../src/http/snapshot.js';

const SMI_FLAGS = ['--gpu.source=nvidia-smi', `--nvidia-smi.path=${FAKE_SMI}`, '--sample.interval=200ms', '--sample.stale-after=2s'];

function psOf(pid: number): string {
  try {
    return execFileSync('ps', ['-o', 'pid,ppid,stat,etimes,args', '-p', String(pid)], { encoding: 'utf8' });
  } catch {
    return '(no ps)';
  }
}

function pidfile(): string {
  return join(mkdtempSync(join(tmpdir(), 'smi-')), 'pids');
}

async function withApp(env: FakeSmiEnv, argv: string[], fn: (b: Awaited<ReturnType<typeof testApp>>, pids: string) => Promise<void>): Promise<void> {
  const pids = pidfile();
  const restore = setFakeSmiEnv({ ...env, PIDFILE: pids });
  const built = await testApp(argv);
  try {
    built.start();
    await fn(built, pids);
  } finally {
    await built.close();
    restore();
  }
  // No orphans: every fake started is gone (reaped) once the exporter closed.
  await sleep(100);
  for (const s of fakeStarts(pids)) {
    if (alive(s.pid)) await sleep(1000); // a loaded machine may take a moment to reap
    assert.equal(alive(s.pid), false, `nvidia-smi pid ${s.pid} left running after close: ${JSON.stringify(fakeStarts(pids))} ${psOf(s.pid)}`);
  }
}

/** Scrapes, checking each scrape answers fast whatever the child does. */
async function scrape(b: Awaited<ReturnType<typeof testApp>>): Promise<string> {
  const t0 = performance.now();
  const res = await b.app.inject({ method: 'GET', url: '/metrics' });
  const ms = performance.now() - t0;
  assert.equal(res.statusCode, 200);
  assert.ok(ms < 1000, `/metrics took ${ms.toFixed(0)} ms`);
  return res.body;
}

const success = (body: string) => valueOf(body, /^ds_exporter_collector_success\{collector="gpu"\}/);

/** Polls every 50 ms; an assertion failing inside `fn` (a slow scrape) fails at once. */
const until = (what: string, timeoutMs: number, fn: () => Promise<boolean> | boolean) => waitFor(fn, timeoutMs, what, { everyMs: 50, retryErrors: false });

test('one long-lived loop child serves the samples; it is killed and reaped on close', async () => {
  await withApp({ GPUS: '4' }, SMI_FLAGS, async (b, pids) => {
    await until('4 GPUs served', 10_000, async () => (await scrape(b)).match(/^ds_gpu_up\{/gm)?.length === 4);
    await sleep(1000); // five more sample intervals
    const starts = fakeStarts(pids);
    assert.equal(starts.filter((s) => s.loop).length, 1, `one loop child, got ${JSON.stringify(starts)}`);
    assert.equal(starts.filter((s) => !s.loop).length, 2, '--help-query-gpu and one first query');
    const body = await scrape(b);
    assert.equal(success(body), 1);
    assert.equal(valueOf(body, /^ds_gpu_utilization_method\{gpu="3",.*method="point"/), 1);
    // Busy time is integrated from the stream: the load capture says 100 % utilization.
    await until('busy seconds grow', 5000, async () => (valueOf(await scrape(b), /^ds_gpu_busy_seconds_total\{gpu="0"/) ?? 0) > 0.3);
    assert.ok(alive(starts.find((s) => s.loop)!.pid));
  });
});

test('a hung nvidia-smi is killed and restarted; the collector fails meanwhile and /metrics stays fast', async () => {
  await withApp({ HANG_AFTER_LINES: '1' }, SMI_FLAGS, async (b, pids) => {
    let sawFailure = false;
    let sawSuccess = false;
    await until('the hung child killed and a new one started', 20_000, async () => {
      const s = success(await scrape(b));
      if (s === 0) sawFailure = true;
      if (s === 1) sawSuccess = true;
      return fakeStarts(pids).filter((x) => x.loop).length >= 2;
    });
    const loops = fakeStarts(pids).filter((x) => x.loop);
    await until('the hung child is gone', 2000, () => !alive(loops[0].pid));
    assert.ok(sawSuccess, 'served before the hang');
    assert.ok(sawFailure, 'ds_exporter_collector_success{collector="gpu"} 0 while nvidia-smi hangs');
    await until('serving again from the restarted child', 5000, async () => success(await scrape(b)) === 1);
  });
});

test('a dying nvidia-smi is restarted with growing backoff', async () => {
  await withApp({ DIE_AFTER_LINES: '1' }, SMI_FLAGS, async (b, pids) => {
    await until('five loop children started', 25_000, async () => {
      await scrape(b);
      return fakeStarts(pids).filter((x) => x.loop).length >= 5;
    });
    const at = fakeStarts(pids).filter((x) => x.loop).map((x) => x.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    // Backoff 200, 400, 800, 1600 ms (plus the child's own start-up time each).
    assert.ok(gaps[3] > gaps[0] + 800, `gaps between restarts should grow: ${gaps.join(', ')} ms`);
    assert.ok(gaps[2] > gaps[0], `gaps between restarts should grow: ${gaps.join(', ')} ms`);
  });
});

test('garbage output fails the sample without a crash', async () => {
  await withApp({ GARBAGE_AFTER_LINES: '1' }, SMI_FLAGS, async (b) => {
    await until('the collector fails on garbage', 10_000, async () => success(await scrape(b)) === 0);
    const snap = snapshotOf(b.store);
    assert.ok(snap, 'store still answers');
    // Still answering, still failing visibly, process alive.
    await sleep(500);
    assert.equal(success(await scrape(b)), 0);
  });
  // Garbage from the very first call: the collector fails visibly, the exporter runs.
  await withApp({ GARBAGE: '1' }, SMI_FLAGS, async (b) => {
    await until('the collector reports failure', 10_000, async () => success(await scrape(b)) === 0);
    assert.doesNotMatch(await scrape(b), /^ds_gpu_up/m);
  });
});

test('a missing executable with --gpu.source=nvidia-smi fails the collector visibly', async () => {
  await withApp({}, ['--gpu.source=nvidia-smi', '--nvidia-smi.path=/nonexistent/nvidia-smi', '--sample.interval=200ms'], async (b) => {
    await until('the collector reports failure', 10_000, async () => success(await scrape(b)) === 0);
    const body = await scrape(b);
    assert.doesNotMatch(body, /^ds_gpu_/m, 'no GPU series, simulated or otherwise');
  });
});

test('auto without NVML picks the nvidia-smi found on the PATH', async () => {
  const path = process.env.PATH;
  process.env.PATH = `${dirname(FAKE_SMI)}:${path}`;
  try {
    await withApp({}, ['--gpu.source=auto', '--nvml.library=/nonexistent/libnvidia-ml.so.1', '--sample.interval=200ms'], async (b) => {
      await until('GPU served', 10_000, async () => /^ds_gpu_up\{/m.test(await scrape(b)));
      const body = await scrape(b);
      assert.match(body, /^ds_exporter_gpu_source_info\{source="nvidia-smi"\} 1/m);
      assert.match(body, /^ds_gpu_info\{.*name="NVIDIA H100 80GB HBM3"/m);
    });
  } finally {
    process.env.PATH = path;
  }
});
