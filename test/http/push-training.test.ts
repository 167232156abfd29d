import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testApp, valueOf } from '../helpers/app.js';
import { postPush as post, sampledMetrics as metrics, settableClock } from '../helpers/push.js';

const T0 = 1_700_000_000_000;
const reporter = (rank = 0, pid = 4242) => ({ job: 'train', rank, pid, host: 'node-a' });
const UUID = 'GPU-6f5b0e8d-1c2a-4e3b-9a7c-000000000003';

const clock = () => settableClock(T0);

test('step durations become a per-rank histogram; FLOPs per sample a model FLOPs counter; devices with a UUID the rank-to-GPU info', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu'], { now: c.now });
  let res = await post(b, { version: 1, reporter: reporter(), devices: [{ index: 3, uuid: UUID, reserved_bytes: 10, allocated_bytes: 5 }, { index: 4, reserved_bytes: 10, allocated_bytes: 5 }], training: { samples: 100, steps: 2, step_durations_seconds: [0.8, 1.2], flops_per_sample: 1e12 } });
  assert.equal(res.statusCode, 202, res.body);
  let m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_step_seconds_count\{job="train",rank="0"\}/), 2);
  assert.equal(valueOf(m, /^ds_training_step_seconds_sum\{job="train",rank="0"\}/), 2);
  assert.equal(valueOf(m, /^ds_training_step_seconds_bucket\{le="1",job="train",rank="0"\}/), 1);
  assert.equal(valueOf(m, /^ds_training_model_flops_total\{job="train",rank="0",dtype="bf16"\}/), 100e12);
  assert.equal(valueOf(m, new RegExp(`^ds_training_device_info\\{job="train",rank="0",gpu="3",uuid="${UUID}"\\}`)), 1);
  // A device without a UUID cannot be matched to a GPU: no info series for it.
  assert.equal(valueOf(m, /^ds_training_device_info\{job="train",rank="0",gpu="4"/), undefined);

  // Next push: 50 more samples at a new FLOPs figure (fp8); no step durations: the histogram stays, unchanged.
  c.t += 1000;
  res = await post(b, { version: 1, reporter: reporter(), training: { samples: 150, steps: 3, flops_per_sample: 2e12, dtype: 'fp8' } });
  assert.equal(res.statusCode, 202, res.body);
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_step_seconds_count\{job="train",rank="0"\}/), 2);
  assert.equal(valueOf(m, /^ds_training_model_flops_total\{job="train",rank="0",dtype="fp8"\}/), 100e12);
  assert.equal(valueOf(m, /^ds_training_model_flops_total\{job="train",rank="0",dtype="bf16"\}/), 100e12);
  await b.close();
});

test('a rank that restarts: FLOPs and steps follow it, its step-time histogram keeps counting, no duration is invented', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu'], { now: c.now });
  await post(b, { version: 1, reporter: reporter(1, 100), training: { samples: 1000, steps: 10, step_durations_seconds: [2, 2], flops_per_sample: 1e9 } });
  await metrics(b);
  // The process restarts with a new pid and counts from zero.
  c.t += 1000;
  await post(b, { version: 1, reporter: reporter(1, 101), training: { samples: 200, steps: 2, step_durations_seconds: [2.5], flops_per_sample: 1e9 } });
  let m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_steps_total\{job="train",rank="1"\}/), 12);
  assert.equal(valueOf(m, /^ds_training_model_flops_total\{job="train",rank="1",dtype="bf16"\}/), 1200e9);
  assert.equal(valueOf(m, /^ds_training_step_seconds_count\{job="train",rank="1"\}/), 3);
  // The same pid restarting (pid 1 in a container): its counter drops, the series adds the new value whole.
  c.t += 1000;
  await post(b, { version: 1, reporter: reporter(1, 101), training: { samples: 50, steps: 1, flops_per_sample: 1e9 } });
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_model_flops_total\{job="train",rank="1",dtype="bf16"\}/), 1250e9);
  assert.equal(valueOf(m, /^ds_training_steps_total\{job="train",rank="1"\}/), 13);
  await b.close();
});

test('absurd FLOPs, negative, zero, NaN or huge step times and a dtype without FLOPs are refused with the field named; nothing is stored', async () => {
  const b = await testApp(['--no-collector.gpu']);
  const bad: Array<[unknown, RegExp]> = [
    [{ samples: 1, steps: 1, flops_per_sample: 1e21 }, /^\/training\/flops_per_sample: must be <= 100000000000000000000$/],
    [{ samples: 1, steps: 1, flops_per_sample: 0 }, /^\/training\/flops_per_sample: must be > 0$/],
    [{ samples: 1, steps: 1, flops_per_sample: -5 }, /^\/training\/flops_per_sample: must be > 0$/],
    [{ samples: 1, steps: 1, flops_per_sample: '1e12' }, /^\/training\/flops_per_sample: must be number$/],
    [{ samples: 1, steps: 1, step_durations_seconds: [1, -0.5] }, /^\/training\/step_durations_seconds\/1: must be > 0$/],
    [{ samples: 1, steps: 1, step_durations_seconds: [0] }, /^\/training\/step_durations_seconds\/0: must be > 0$/],
    [{ samples: 1, steps: 1, step_durations_seconds: [90_000] }, /^\/training\/step_durations_seconds\/0: must be <= 86400$/],
    [{ samples: 1, steps: 1, step_durations_seconds: [] }, /^\/training\/step_durations_seconds: must NOT have fewer than 1 items$/],
    [{ samples: 1, steps: 1, step_durations_seconds: new Array(1025).fill(1) }, /^\/training\/step_durations_seconds: must NOT have more than 1024 items$/],
    [{ samples: 1, steps: 1, flops_per_sample: 1, dtype: 'fp4' }, /^\/training\/dtype: must be one of "bf16", "fp8"$/],
    [{ samples: 1, steps: 1, dtype: 'fp8' }, /^\/training\/dtype: only meaningful with flops_per_sample$/],
  ];
  for (const [training, want] of bad) {
    const res = await post(b, { version: 1, reporter: reporter(), training });
    assert.equal(res.statusCode, 400, JSON.stringify(training));
    assert.match(JSON.parse(res.body).error, want, JSON.stringify(training));
  }
  // NaN is not JSON: the body does not parse.
  const nan = await post(b, '{"version":1,"reporter":{"job":"train","rank":0,"pid":1,"host":"a"},"training":{"samples":1,"steps":1,"step_durations_seconds":[NaN]}}');
  assert.equal(nan.statusCode, 400);
  const m = await metrics(b);
  assert.doesNotMatch(m, /^ds_training_/m);
  await b.close();
});

test('step durations count against the pending-observation cap', async () => {
  const b = await testApp(['--no-collector.gpu', '--push.max-pending-observations=1024']);
  const ok = await post(b, { version: 1, reporter: reporter(), training: { samples: 1, steps: 1, step_durations_seconds: new Array(1000).fill(1) } });
  assert.equal(ok.statusCode, 202);
  const over = await post(b, { version: 1, reporter: reporter(), training: { samples: 2, steps: 2, step_durations_seconds: new Array(100).fill(1) } });
  assert.equal(over.statusCode, 429, over.body);
  const m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_step_seconds_count\{job="train",rank="0"\}/), 1000);
  assert.equal(valueOf(m, /^ds_training_steps_total\{job="train",rank="0"\}/), 1);
  await b.close();
});
