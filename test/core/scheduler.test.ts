import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Collector } from '../../src/core/collector.js';
import { silentLogger } from '../../src/core/logger.js';
import { Scheduler } from '../../src/core/scheduler.js';
import { SampleStore } from '../../src/core/store.js';

function setup(timeoutMs = 50) {
  const store = new SampleStore();
  const scheduler = new Scheduler({ store, logger: silentLogger, intervalMs: 1000, timeoutMs, staleAfterMs: 10_000 });
  return { store, scheduler };
}

const ok: Collector = { async sample(b) { b.gauge('ds_gpu_up', { gpu: '0', uuid: 'U' }, 1); } };
const failing: Collector = { async sample() { throw new Error('nvidia-smi exited 9'); } };
const hanging: Collector = { sample: () => new Promise(() => {}) };

test('a failing and a hanging collector do not stop the others, and say so in self-metrics', async () => {
  const { store, scheduler } = setup();
  scheduler.add('gpu', ok);
  scheduler.add('engine', failing);
  scheduler.add('peers', hanging);
  const t0 = Date.now();
  await scheduler.sampleAll();
  assert.ok(Date.now() - t0 < 1000, 'the hanging collector was cut off by its timeout');
  const text = (await store.render()).body.toString();
  assert.match(text, /ds_exporter_collector_success\{collector="gpu"\} 1/);
  assert.match(text, /ds_exporter_collector_success\{collector="engine"\} 0/);
  assert.match(text, /ds_exporter_collector_success\{collector="peers"\} 0/);
  assert.match(text, /ds_exporter_collector_last_success_timestamp_seconds\{collector="gpu"\}/);
  assert.doesNotMatch(text, /ds_exporter_collector_last_success_timestamp_seconds\{collector="engine"\}/);
  assert.match(text, /ds_gpu_up\{gpu="0",uuid="U"\} 1/);
  assert.ok(scheduler.ready);
  await scheduler.stop();
});

test('the sample signal is aborted on timeout', async () => {
  const { scheduler } = setup(30);
  let aborted = false;
  scheduler.add('slow', { sample: (_b, signal) => new Promise((resolve) => signal.addEventListener('abort', () => { aborted = true; resolve(); })) });
  await scheduler.sampleAll();
  assert.ok(aborted);
  await scheduler.stop();
});

test('a sample that throws after writing commits nothing of it', async () => {
  const { store, scheduler } = setup();
  scheduler.add('half', { async sample(b) { b.gauge('ds_gpu_up', { gpu: '9', uuid: 'HALF' }, 1); throw new Error('midway'); } });
  await scheduler.sampleAll();
  assert.doesNotMatch((await store.render()).body.toString(), /HALF/);
  await scheduler.stop();
});

test('ready only after every collector finished its first sample; stop closes collectors', async () => {
  const { scheduler } = setup();
  let closed = 0;
  scheduler.add('a', { ...ok, close: async () => { closed++; } });
  scheduler.add('b', { ...failing, close: async () => { closed++; } });
  assert.equal(scheduler.ready, false);
  scheduler.start();
  await scheduler.firstRound;
  assert.equal(scheduler.ready, true);
  await scheduler.stop();
  assert.equal(closed, 2);
});
