import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { buildApp } from '../../src/app.js';
import { ConfigError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { testApp, valueOf } from '../helpers/app.js';
import { postPush as post, sampledMetrics as metrics, settableClock } from '../helpers/push.js';

const T0 = 1_700_000_000_000;
const reporter = { job: 'train', rank: 0, pid: 4242, host: 'node-a' };
const device = (index: number, reserved: number, allocated: number, extra: object = {}) => ({ index, uuid: `GPU-${index}0000000-0000-0000-0000-000000000000`, reserved_bytes: reserved, allocated_bytes: allocated, ...extra });
const push = (extra: object = {}) => ({ version: 1, reporter, ...extra });

const clock = () => settableClock(T0);

test('an accepted push becomes allocator, fragmentation and training series', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu'], { now: c.now });
  const res = await post(b, push({
    devices: [device(0, 1000, 750, { inactive_split_bytes: 40, largest_free_block_bytes: 120, num_alloc_retries: 3, num_ooms: 1 }), device(1, 0, 0)],
    training: { samples: 640, steps: 10 },
  }));
  assert.equal(res.statusCode, 202, res.body);
  const m = await metrics(b);
  const l = `gpu="0",uuid="GPU-00000000-0000-0000-0000-000000000000",pid="4242",job="train"`;
  assert.equal(valueOf(m, new RegExp(`^ds_gpu_memory_fragmentation_ratio\\{${l}\\}`)), 0.25);
  assert.equal(valueOf(m, new RegExp(`^ds_allocator_reserved_bytes\\{${l}\\}`)), 1000);
  assert.equal(valueOf(m, new RegExp(`^ds_allocator_allocated_bytes\\{${l}\\}`)), 750);
  assert.equal(valueOf(m, new RegExp(`^ds_allocator_inactive_split_bytes\\{${l}\\}`)), 40);
  assert.equal(valueOf(m, new RegExp(`^ds_allocator_largest_free_block_bytes\\{${l}\\}`)), 120);
  assert.equal(valueOf(m, new RegExp(`^ds_allocator_alloc_retries_total\\{${l}\\}`)), 3);
  assert.equal(valueOf(m, new RegExp(`^ds_allocator_ooms_total\\{${l}\\}`)), 1);
  // reserved 0 -> fragmentation 0, not NaN
  assert.equal(valueOf(m, /^ds_gpu_memory_fragmentation_ratio\{gpu="1",/), 0);
  // optional fields that were not sent are not invented
  assert.equal(valueOf(m, /^ds_allocator_largest_free_block_bytes\{gpu="1",/), undefined);
  assert.equal(valueOf(m, /^ds_training_samples_total\{job="train",rank="0"\}/), 640);
  assert.equal(valueOf(m, /^ds_training_steps_total\{job="train",rank="0"\}/), 10);
  assert.equal(valueOf(m, /^ds_exporter_push_reporters /), 1);
  assert.equal(valueOf(m, /^ds_exporter_push_requests_total\{code="202"\}/), 1);
  await b.close();
});

test('training throughput comes from cumulative samples and timestamps over the window', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu', '--push.throughput-window=10s'], { now: c.now });
  const t0 = T0 / 1000;
  // 64 samples/s for 20 s, pushed every second with the reporter's timestamps.
  for (let i = 0; i <= 20; i++) {
    c.t = T0 + i * 1000 + (i % 3) * 200; // arrival jitter does not matter, timestamps do
    assert.equal((await post(b, push({ timestamp: t0 + i, training: { samples: 64 * i, steps: i } }))).statusCode, 202);
  }
  let m = await metrics(b);
  assert.ok(Math.abs(valueOf(m, /^ds_training_throughput_samples_per_second\{job="train",rank="0"\}/)! - 64) < 1e-9);
  // Then 16 samples/s: after a full window the rate is 16, not an average since the start.
  for (let i = 21; i <= 35; i++) {
    c.t = T0 + i * 1000;
    await post(b, push({ timestamp: t0 + i, training: { samples: 64 * 20 + 16 * (i - 20), steps: i } }));
  }
  m = await metrics(b);
  assert.ok(Math.abs(valueOf(m, /^ds_training_throughput_samples_per_second\{/)! - 16) < 1e-9, m);
  // Without timestamps the exporter's receive time is used.
  const r2 = { ...reporter, rank: 1 };
  for (let i = 0; i <= 5; i++) {
    c.t = T0 + 100_000 + i * 2000;
    await post(b, { version: 1, reporter: r2, training: { samples: 100 * i, steps: i } });
  }
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_throughput_samples_per_second\{job="train",rank="1"\}/), 50);
  await b.close();
});

test('counters follow cumulative values across process restarts', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu'], { now: c.now });
  await post(b, push({ training: { samples: 1000, steps: 100 }, devices: [device(0, 10, 5, { num_alloc_retries: 7, num_ooms: 2 })] }));
  let m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_samples_total\{/), 1000);
  // The job restarts: a new pid starts counting from zero; the {job,rank} series keeps growing.
  await post(b, { version: 1, reporter: { ...reporter, pid: 5151 }, training: { samples: 30, steps: 3 } });
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_samples_total\{/), 1030);
  assert.equal(valueOf(m, /^ds_training_steps_total\{/), 103);
  await post(b, { version: 1, reporter: { ...reporter, pid: 5151 }, training: { samples: 50, steps: 5 } });
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_samples_total\{/), 1050);
  // The same pid restarts (pid 1 in a container): the drop is a reset, the series adds the new value.
  await post(b, push({ training: { samples: 1010, steps: 101 }, devices: [device(0, 10, 5, { num_alloc_retries: 9, num_ooms: 2 })] }));
  await post(b, push({ training: { samples: 4, steps: 1 }, devices: [device(0, 10, 5, { num_alloc_retries: 1, num_ooms: 0 })] }));
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_training_samples_total\{/), 1050 + 10 + 4);
  assert.equal(valueOf(m, /^ds_allocator_alloc_retries_total\{gpu="0"/), 9 + 1);
  assert.equal(valueOf(m, /^ds_allocator_ooms_total\{gpu="0"/), 2);
  await b.close();
});

test('collective durations become a histogram per op and job; bytes a counter', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu'], { now: c.now });
  const res = await post(b, push({ collectives: [{ op: 'all_reduce', durations_seconds: [0.001, 0.002, 0.004], bytes: 3 * 2 ** 20 }, { op: 'all_gather', durations_seconds: [0.5] }] }));
  assert.equal(res.statusCode, 202, res.body);
  await post(b, { version: 1, reporter: { ...reporter, rank: 1 }, collectives: [{ op: 'all_reduce', durations_seconds: [0.003], bytes: 2 ** 20 }] });
  let m = await metrics(b);
  assert.equal(valueOf(m, /^ds_comm_collective_latency_seconds_count\{op="all_reduce",job="train"\}/), 4);
  assert.ok(Math.abs(valueOf(m, /^ds_comm_collective_latency_seconds_sum\{op="all_reduce",job="train"\}/)! - 0.01) < 1e-12);
  assert.equal(valueOf(m, /^ds_comm_collective_latency_seconds_bucket\{le="0.00128",op="all_reduce",job="train"\}/), 1);
  assert.equal(valueOf(m, /^ds_comm_collective_latency_seconds_count\{op="all_gather",job="train"\}/), 1);
  assert.equal(valueOf(m, /^ds_comm_collective_bytes_total\{op="all_reduce",job="train"\}/), 4 * 2 ** 20);
  // Observations are taken once: the next sample keeps the series without counting them again.
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_comm_collective_latency_seconds_count\{op="all_reduce",job="train"\}/), 4);
  await b.close();
});

test('series expire after --push.ttl without pushes (injected clock)', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu', '--push.ttl=30s'], { now: c.now });
  await post(b, push({ devices: [device(0, 10, 5, { num_ooms: 1 })], training: { samples: 1, steps: 1 }, collectives: [{ op: 'all_reduce', durations_seconds: [0.001] }] }));
  const other = { version: 1, reporter: { ...reporter, rank: 1 }, training: { samples: 1, steps: 1 } };
  await post(b, other);
  c.t += 29_000;
  await post(b, other); // rank 1 keeps pushing
  let m = await metrics(b);
  assert.match(m, /ds_gpu_memory_fragmentation_ratio\{/);
  c.t += 2_000; // rank 0 is now 31 s silent
  m = await metrics(b);
  for (const name of ['ds_gpu_memory_fragmentation_ratio', 'ds_allocator_reserved_bytes', 'ds_allocator_ooms_total', 'ds_comm_collective_latency_seconds_count', 'ds_comm_collective_bytes_total']) {
    assert.doesNotMatch(m, new RegExp(`^${name}\\{`, 'm'), `${name} survived its reporter`);
  }
  assert.doesNotMatch(m, /^ds_training_samples_total\{job="train",rank="0"\}/m);
  assert.match(m, /^ds_training_samples_total\{job="train",rank="1"\} 1/m);
  assert.equal(valueOf(m, /^ds_exporter_push_reporters /), 1);
  c.t += 31_000;
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_exporter_push_reporters /), 0);
  assert.doesNotMatch(m, /^ds_training_/m);
  await b.close();
});

test('gauges of two reporters with the same labels: the last push wins', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu'], { now: c.now });
  await post(b, { version: 1, reporter: { ...reporter, host: 'container-a', pid: 1 }, devices: [{ index: 0, reserved_bytes: 100, allocated_bytes: 10 }] });
  c.t += 1000;
  await post(b, { version: 1, reporter: { ...reporter, host: 'container-b', pid: 1 }, devices: [{ index: 0, reserved_bytes: 100, allocated_bytes: 90 }] });
  const m = await metrics(b);
  assert.equal(valueOf(m, /^ds_allocator_allocated_bytes\{gpu="0",uuid="",pid="1",job="train"\}/), 90);
  await b.close();
});

test('every rejection path answers its status and a message naming the field', async () => {
  const b = await testApp(['--no-collector.gpu', '--push.max-body-bytes=4096']);
  const cases: Array<[string, unknown, number, RegExp, Record<string, string>?]> = [
    ['malformed JSON', '{"version":1,', 400, /not valid JSON/],
    ['empty body', '', 400, /empty|not valid JSON/],
    ['not an object', '[1,2]', 400, /^\/: must be object/],
    ['no version', { reporter }, 400, /^\/: must have property "version"/],
    ['wrong version', { version: 2, reporter }, 400, /^\/version: must be 1/],
    ['unknown top-level field', push({ extra: 1 }), 400, /^\/: must not have property "extra"/],
    ['negative bytes', push({ devices: [device(0, -1, 0)] }), 400, /^\/devices\/0\/reserved_bytes: must be >= 0/],
    ['fractional bytes', push({ devices: [device(0, 1.5, 0)] }), 400, /^\/devices\/0\/reserved_bytes: must be integer/],
    ['bytes beyond 2^53', push({ devices: [device(0, 2 ** 60, 0)] }), 400, /^\/devices\/0\/reserved_bytes: must be <= 9007199254740991/],
    ['1e400', `{"version":1,"reporter":{"job":"a","rank":0,"pid":1,"host":"h"},"timestamp":1e400}`, 400, /^\/timestamp: must be number/],
    ['allocated above reserved', push({ devices: [device(0, 10, 11)] }), 400, /^\/devices\/0\/allocated_bytes: must be <= reserved_bytes/],
    ['duplicate device', push({ devices: [device(3, 10, 1), device(3, 10, 1)] }), 400, /^\/devices\/1\/index: duplicate/],
    ['unknown device field', push({ devices: [{ ...device(0, 1, 1), temp: 3 }] }), 400, /^\/devices\/0: must not have property "temp"/],
    ['missing reporter field', { version: 1, reporter: { job: 'a', rank: 0, pid: 1 } }, 400, /^\/reporter: must have property "host"/],
    ['pid 0', { version: 1, reporter: { ...reporter, pid: 0 } }, 400, /^\/reporter\/pid: must be >= 1/],
    ['rank as a string', { version: 1, reporter: { ...reporter, rank: '0' } }, 400, /^\/reporter\/rank: must be integer/],
    ['control characters in job', { version: 1, reporter: { ...reporter, job: 'a\u0000b' } }, 400, /^\/reporter\/job: must be printable/],
    ['lone surrogate in host', '{"version":1,"reporter":{"job":"a","rank":0,"pid":1,"host":"h\\ud800"}}', 400, /^\/reporter\/host: must be printable/],
    ['emoji job is fine, but too long', { version: 1, reporter: { ...reporter, job: '\u{1F680}'.repeat(129) } }, 400, /^\/reporter\/job: must NOT have more than 128 characters/],
    ['empty job', { version: 1, reporter: { ...reporter, job: '' } }, 400, /^\/reporter\/job: must NOT have fewer than 1 characters/],
    ['job too long', { version: 1, reporter: { ...reporter, job: 'j'.repeat(129) } }, 400, /^\/reporter\/job: must NOT have more than 128 characters/],
    ['too many devices', push({ devices: Array.from({ length: 65 }, (_, i) => ({ index: i, reserved_bytes: 0, allocated_bytes: 0 })) }), 400, /^\/devices: must NOT have more than 64 items/],
    ['negative duration', push({ collectives: [{ op: 'all_reduce', durations_seconds: [-0.1] }] }), 400, /^\/collectives\/0\/durations_seconds\/0: must be >= 0/],
    ['no durations', push({ collectives: [{ op: 'all_reduce', durations_seconds: [] }] }), 400, /^\/collectives\/0\/durations_seconds: must NOT have fewer than 1 items/],
    ['odd op name', push({ collectives: [{ op: 'all reduce"}', durations_seconds: [1] }] }), 400, /^\/collectives\/0\/op: must be printable/],
    ['training without steps', push({ training: { samples: 1 } }), 400, /^\/training: must have property "steps"/],
    ['__proto__ key', '{"version":1,"reporter":{"job":"a","rank":0,"pid":1,"host":"h"},"__proto__":{"polluted":1}}', 400, /^\/: must not have property "__proto__"/],
    ['deep nesting', '['.repeat(2000) + ']'.repeat(2000), 400, /^\/: must be object/],
    ['text/plain', JSON.stringify(push()), 415, /content type must be application\/json/, { 'content-type': 'text/plain' }],
    ['form', 'a=1', 415, /content type/, { 'content-type': 'application/x-www-form-urlencoded' }],
    ['json-ish type', JSON.stringify(push()), 415, /content type/, { 'content-type': 'application/jsonp' }],
    ['over the body limit', push({ devices: [device(0, 1, 1)], pad: 'x'.repeat(5000) }), 413, /body larger than 4096 bytes/],
  ];
  for (const [name, body, status, re, headers] of cases) {
    const res = await post(b, body, headers);
    assert.equal(res.statusCode, status, `${name}: ${res.body}`);
    assert.match(res.json().error, re, name);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // Missing content type.
  const res = await b.app.inject({ method: 'POST', url: '/api/v1/push', payload: Buffer.from(JSON.stringify(push())) });
  assert.equal(res.statusCode, 415);
  // A declared Content-Length over the limit is refused before reading the body.
  const big = await b.app.inject({ method: 'POST', url: '/api/v1/push', payload: 'x'.repeat(10_000), headers: { 'content-type': 'application/json' } });
  assert.equal(big.statusCode, 413);
  const m = await metrics(b);
  assert.equal(valueOf(m, /^ds_exporter_push_reporters /), 0, 'nothing of a rejected body is stored');
  assert.doesNotMatch(m, /^ds_(gpu_memory_fragmentation|allocator|training|comm_collective)/m);
  assert.equal(valueOf(m, /^ds_exporter_push_requests_total\{code="400"\}/), cases.filter((x) => x[2] === 400).length);
  assert.equal(valueOf(m, /^ds_exporter_push_requests_total\{code="415"\}/), 4);
  await b.close();
});

test('huge bodies: a 64 MiB body is refused with 413 at the default limit, and the exporter still answers', async () => {
  const b = await testApp(['--no-collector.gpu']);
  const huge = '{"version":1,"pad":"' + 'x'.repeat(64 * 1024 * 1024) + '"}';
  const res = await post(b, huge);
  assert.equal(res.statusCode, 413);
  // Just under the 1 MiB default, but 1024 collective ops: schema bound, not body limit.
  const many = push({ collectives: Array.from({ length: 1024 }, (_, i) => ({ op: `op${i}`, durations_seconds: [0.001] })) });
  const r2 = await post(b, many);
  assert.equal(r2.statusCode, 400);
  assert.match(r2.json().error, /^\/collectives: must NOT have more than 32 items/);
  assert.equal((await post(b, push({ training: { samples: 1, steps: 1 } }))).statusCode, 202);
  await b.close();
});

test('caps: reporters beyond --push.max-reporters and series beyond the per-reporter cap get 429', async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu', '--push.max-reporters=3', '--push.max-series-per-reporter=100', '--push.ttl=10s'], { now: c.now });
  for (let rank = 0; rank < 3; rank++) assert.equal((await post(b, { version: 1, reporter: { ...reporter, rank } })).statusCode, 202);
  const r = await post(b, { version: 1, reporter: { ...reporter, rank: 3 }, training: { samples: 1, steps: 1 } });
  assert.equal(r.statusCode, 429);
  assert.match(r.json().error, /too many reporters \(3/);
  assert.equal(r.headers['retry-after'], '10');
  // A known reporter still gets in.
  assert.equal((await post(b, { version: 1, reporter: { ...reporter, rank: 2 }, training: { samples: 1, steps: 1 } })).statusCode, 202);
  // 15 devices x 8 series > 100.
  const wide = await post(b, { version: 1, reporter: { ...reporter, rank: 0 }, devices: Array.from({ length: 15 }, (_, i) => ({ index: i, reserved_bytes: 1, allocated_bytes: 1 })) });
  assert.equal(wide.statusCode, 429);
  assert.match(wide.json().error, /would own 120 series, more than 100/);
  // Ops accumulate: each op is a histogram (its buckets) plus a counter.
  assert.equal((await post(b, { version: 1, reporter: { ...reporter, rank: 1 }, collectives: ['a', 'b', 'c'].map((op) => ({ op, durations_seconds: [1] })) })).statusCode, 202);
  const more = await post(b, { version: 1, reporter: { ...reporter, rank: 1 }, collectives: ['d', 'e'].map((op) => ({ op, durations_seconds: [1] })) });
  assert.equal(more.statusCode, 429);
  let m = await metrics(b);
  assert.doesNotMatch(m, /op="[de]"/);
  assert.match(m, /op="c"/);
  assert.doesNotMatch(m, /rank="3"/);
  assert.equal(valueOf(m, /^ds_exporter_push_requests_total\{code="429"\}/), 3);
  // Once idle reporters expire, a new one gets in.
  c.t += 11_000;
  assert.equal((await post(b, { version: 1, reporter: { ...reporter, rank: 3 } })).statusCode, 202);
  m = await metrics(b);
  assert.equal(valueOf(m, /^ds_exporter_push_reporters /), 1);
  await b.close();
});

test('pending collective observations are bounded between samples', async () => {
  const b = await testApp(['--no-collector.gpu', '--push.max-pending-observations=2048']);
  const body = push({ collectives: [{ op: 'all_reduce', durations_seconds: new Array(1024).fill(0.001) }] });
  assert.equal((await post(b, body)).statusCode, 202);
  assert.equal((await post(b, body)).statusCode, 202);
  const third = await post(b, body);
  assert.equal(third.statusCode, 429);
  assert.match(third.json().error, /waiting for the next sample/);
  const m = await metrics(b); // the sample drains them
  assert.equal(valueOf(m, /^ds_comm_collective_latency_seconds_count\{/), 2048);
  assert.equal((await post(b, body)).statusCode, 202);
  await b.close();
});

test('bearer token auth: 401 without or with a wrong token, constant-time check, file re-read on change', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-push-'));
  const file = join(dir, 'tokens');
  writeFileSync(file, '# reporters\ns3cret-one\n\n');
  const c = clock();
  const b = await testApp(['--no-collector.gpu', `--push.token-file=${file}`], { now: c.now });
  const body = push({ training: { samples: 1, steps: 1 } });
  let r = await post(b, body);
  assert.equal(r.statusCode, 401);
  assert.match(String(r.headers['www-authenticate']), /^Bearer/);
  assert.match(r.json().error, /bearer token required/);
  for (const h of ['Bearer wrong', 'Bearer s3cret-on', 'Bearer s3cret-one2', 'Basic czNjcmV0LW9uZQ==', 's3cret-one', 'Bearer ', 'Bearer # reporters']) {
    r = await post(b, body, { authorization: h });
    assert.equal(r.statusCode, 401, h);
  }
  // A rejected request's body is never read: an oversized one still gets 401, not 413.
  r = await post(b, 'x'.repeat(2 * 1024 * 1024), { authorization: 'Bearer wrong' });
  assert.equal(r.statusCode, 401);
  r = await post(b, body, { authorization: 'Bearer s3cret-one' });
  assert.equal(r.statusCode, 202);
  r = await post(b, body, { authorization: 'bearer   s3cret-one' });
  assert.equal(r.statusCode, 202);
  // Rotation: the file changes, the old token stops working, the new one works.
  writeFileSync(file, 's3cret-two-longer\n');
  c.t += 2000;
  assert.equal((await post(b, body, { authorization: 'Bearer s3cret-one' })).statusCode, 401);
  assert.equal((await post(b, body, { authorization: 'Bearer s3cret-two-longer' })).statusCode, 202);
  // The file becomes unusable: the last good tokens stay in force.
  writeFileSync(file, '\n');
  c.t += 2000;
  assert.equal((await post(b, body, { authorization: 'Bearer s3cret-two-longer' })).statusCode, 202);
  const m = await metrics(b);
  assert.equal(valueOf(m, /^ds_exporter_push_requests_total\{code="401"\}/), 10);
  // Other endpoints do not need the token.
  assert.equal((await b.app.inject({ url: '/metrics' })).statusCode, 200);
  await b.close();
  rmSync(dir, { recursive: true, force: true });
});

test('an unreadable or empty token file is a clear error at start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-push-'));
  const build = (path: string) => buildApp(loadConfig(['--no-collector.gpu', `--push.token-file=${path}`], {}), { logger: silentLogger, processMetrics: false });
  await assert.rejects(build(join(dir, 'missing')), (e: Error) => e instanceof ConfigError && /--push.token-file: cannot read .*missing.*ENOENT/.test(e.message));
  writeFileSync(join(dir, 'empty'), '# nothing\n\n');
  await assert.rejects(build(join(dir, 'empty')), (e: Error) => e instanceof ConfigError && /holds no token/.test(e.message));
  if (process.getuid?.() !== 0) {
    writeFileSync(join(dir, 'locked'), 'tok\n');
    chmodSync(join(dir, 'locked'), 0o000);
    await assert.rejects(build(join(dir, 'locked')), (e: Error) => e instanceof ConfigError && /EACCES/.test(e.message));
  }
  rmSync(dir, { recursive: true, force: true });
});

test('with --no-collector.push there is no push endpoint', async () => {
  const b = await testApp(['--no-collector.gpu', '--no-collector.push']);
  assert.equal((await post(b, push())).statusCode, 404);
  await b.close();
});

test('over a real socket: a chunked body over the limit gets 413 and the server keeps serving', async () => {
  const { request } = await import('node:http');
  const b = await testApp(['--no-collector.gpu', '--push.max-body-bytes=65536']);
  await b.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (b.app.server.address() as { port: number }).port;
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/push', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e) => (/EPIPE|ECONNRESET/.test(String(e)) ? undefined : reject(e)));
    req.write('{"version":1,"pad":"');
    const chunk = 'x'.repeat(16 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < 64 && req.write(chunk)) sent++;
      if (sent < 64) req.once('drain', () => { sent++; pump(); });
      else req.end('"}');
    };
    pump();
  });
  assert.equal(status, 413);
  const ok = await fetch(`http://127.0.0.1:${port}/api/v1/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(push({ training: { samples: 1, steps: 1 } })) });
  assert.equal(ok.status, 202);
  await b.close();
});
