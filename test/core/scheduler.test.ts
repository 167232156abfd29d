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

test('a sample that timed out and still writes into its batch never reaches the next sample', async () => {
  const { store, scheduler } = setup(30);
  let round = 0;
  let late: (() => void) | undefined;
  scheduler.add('gpu', {
    async sample(b) {
      round++;
      if (round === 1) return void b.gauge('ds_gpu_up', { gpu: '0', uuid: 'U' }, 1);
      if (round === 2) {
        // Times out, then writes after the scheduler gave up on it.
        await new Promise<void>((resolve) => (late = resolve));
        b.gauge('ds_gpu_up', { gpu: '9', uuid: 'LATE' }, 1);
        return;
      }
      // Round 3: the timed-out sample writes while this one runs.
      late!();
      await new Promise((r) => setImmediate(r));
      b.gauge('ds_gpu_up', { gpu: '1', uuid: 'V' }, 1);
    },
  });
  await scheduler.sampleAll(); // committed: its batch is kept for the next sample
  await scheduler.sampleAll(); // times out
  await scheduler.sampleAll(); // round 3: a batch of its own
  const text = (await store.render()).body.toString();
  assert.match(text, /ds_gpu_up\{gpu="1",uuid="V"\} 1/);
  assert.doesNotMatch(text, /LATE/);
  assert.doesNotMatch(text, /uuid="U"/, 'the first sample\'s series went with its next commit');
  await scheduler.stop();
});
