import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildFakeSmiReplay, callsFromPidfile, fakeSmiReplayUnavailable, recordSmiReplay, replayKey, TIMESTAMP_PLACEHOLDER } from '../helpers/fake-smi-replay.js';
import { FAKE_SMI, setFakeSmiEnv } from '../helpers/fake-smi.js';
import { testApp } from '../helpers/app.js';

/**
 * The compiled nvidia-smi replay the benchmarks fork instead of the Node fake: it must print
 * exactly what the Node fake prints for the same call (current timestamps aside), loop like
 * nvidia-smi, refuse what it has no recording for, and cost a small fraction of the Node fake.
 */

const skip = fakeSmiReplayUnavailable();
const TS = /^\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/;
const FIELDS = 'timestamp,index,uuid,name,utilization.gpu,memory.used,power.draw';
const ONE_SHOTS: string[][] = [
  ['--help-query-gpu'],
  ['--version'],
  [`--query-gpu=${FIELDS}`, '--format=csv'],
  [`--query-gpu=${FIELDS}`, '--format=csv,noheader,nounits'],
  ['--query-gpu=index,no.such.field', '--format=csv'],
];

let bin = '';
let dir = '';
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, FAKE_NVIDIA_SMI_GPUS: '8', FAKE_NVIDIA_SMI_STATE: 'load', FAKE_NVIDIA_SMI_REPLAY_DIR: dir, ...extra });

function run(file: string, args: string[], e: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string; status: number }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: e, maxBuffer: 256 << 20, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ stdout, stderr, status: err ? (err.code as number) : 0 });
    });
  });
}

/** Cells that are driver timestamps become one token, so outputs compare whatever the clock said. */
const untimed = (s: string) => s.replace(/\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{3}/g, '<ts>');

describe('nvidia-smi replay', { skip }, () => {
  before(async () => {
    bin = buildFakeSmiReplay();
    dir = mkdtempSync(join(tmpdir(), 'smi-replay-'));
    assert.equal(await recordSmiReplay(dir, [...ONE_SHOTS, [`--query-gpu=${FIELDS}`, '--format=csv', '--loop-ms=100']], env()), ONE_SHOTS.length);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('prints what the Node fake prints for the same call, with its exit status', async () => {
    for (const args of ONE_SHOTS) {
      const want = await run(FAKE_SMI, args, env());
      const got = await run(bin, args, env());
      assert.equal(got.status, want.status, args.join(' '));
      assert.equal(untimed(got.stdout), untimed(want.stdout), args.join(' '));
      assert.ok(got.stdout.length > 0, args.join(' '));
    }
  });

  test('writes the current time where the capture had a timestamp', async () => {
    const before = Date.now();
    const { stdout } = await run(bin, [`--query-gpu=${FIELDS}`, '--format=csv,noheader,nounits'], env());
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 8);
    for (const l of lines) {
      const ts = l.split(', ')[0];
      assert.match(ts, TS);
      const [d, t] = ts.split(' ');
      const at = new Date(`${d.replaceAll('/', '-')}T${t}`).getTime(); // local time, as nvidia-smi prints it
      assert.ok(Math.abs(at - before) < 5000, `${ts} is now`);
    }
    assert.ok(!stdout.includes('\x01'));
  });

  test('loops like nvidia-smi: the header once, a block per interval, until stdout closes', async () => {
    const child = spawn(bin, [`--query-gpu=${FIELDS}`, '--format=csv', '--loop-ms=100'], { env: env() });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    await new Promise((r) => setTimeout(r, 450));
    child.stdout.destroy();
    const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? s)));
    child.kill('SIGKILL');
    assert.equal(code, 0, 'exits quietly once nobody reads');
    const lines = out.trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('timestamp')).length, 1, 'header once');
    assert.ok(lines[0].startsWith('timestamp'));
    const blocks = (lines.length - 1) / 8;
    assert.ok(Number.isInteger(blocks) && blocks >= 3 && blocks <= 6, `${lines.length - 1} data lines in 450 ms at 100 ms`);
    const stamps = [...new Set(lines.slice(1).map((l) => l.split(', ')[0]))];
    assert.equal(stamps.length, blocks, 'each block has its own time');
  });

  test('the same recording serves -lms N and --loop-ms=N, and noheader loops never print a header', async () => {
    await recordSmiReplay(dir, [[`--query-gpu=${FIELDS}`, '--format=csv,noheader']], env());
    const child = spawn(bin, [`--query-gpu=${FIELDS}`, '--format=csv,noheader', '-lms', '50'], { env: env() });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    await new Promise((r) => setTimeout(r, 250));
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
    const lines = out.trim().split('\n');
    assert.ok(lines.length >= 16 && lines.length % 8 === 0, `${lines.length} lines`);
    assert.ok(lines.every((l) => TS.test(l.split(', ')[0])));
    assert.equal(replayKey(['-lms', '50', '--help-query-gpu']).file, replayKey(['--help-query-gpu', '--loop-ms=7']).file);
  });

  test('an exporter reading nvidia-smi through the replay exports what it exports through the Node fake', async () => {
    const pidfile = join(dir, 'calls.log');
    const scrape = async (path: string) => {
      const restore = setFakeSmiEnv({ GPUS: '8', STATE: 'load', PIDFILE: pidfile });
      process.env.FAKE_NVIDIA_SMI_REPLAY_DIR = dir;
      const now = 1_700_000_000_000;
      const built = await testApp(['--gpu.source=nvidia-smi', `--nvidia-smi.path=${path}`, '--sample.interval=60s', '--sample.stale-after=600s'], { now: () => now });
      try {
        let body = '';
        for (let i = 0; i < 100 && !/^ds_gpu_info\{/m.test(body); i++) {
          await new Promise((r) => setTimeout(r, 100));
          await built.scheduler.sampleAll();
          body = (await built.app.inject({ method: 'GET', url: '/metrics' })).body;
        }
        // Counters integrate over the time between rows, which differs from run to run: their series must match, not their values.
        return body
          .split('\n')
          .filter((l) => l.startsWith('ds_gpu_'))
          .map((l) => l.replace(/^(ds_gpu_\w+_total(?:\{.*\})?) \S+$/, '$1 <counter>'))
          .sort()
          .join('\n');
      } finally {
        await built.close();
        restore();
        delete process.env.FAKE_NVIDIA_SMI_REPLAY_DIR;
      }
    };
    const viaNode = await scrape(FAKE_SMI);
    const calls = callsFromPidfile(pidfile);
    assert.ok(calls.some((c) => c.some((a) => a.startsWith('--loop-ms'))), `the exporter's loop call was logged: ${JSON.stringify(calls)}`);
    await recordSmiReplay(dir, calls, env());
    const viaReplay = await scrape(bin);
    assert.ok(viaNode.split('\n').filter((l) => l.startsWith('ds_gpu_info{')).length === 8, viaNode.slice(0, 500));
    assert.equal(viaReplay, viaNode);
  });

  test('costs a small fraction of the Node fake per call', async () => {
    const args = [`--query-gpu=${FIELDS}`, '--format=csv'];
    const children = () => {
      const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
      return (Number(f[13]) + Number(f[14])) * 10; // cutime + cstime, ms
    };
    let t0 = children();
    for (let i = 0; i < 200; i++) await run(bin, args, env());
    const replayMs = (children() - t0) / 200;
    t0 = children();
    for (let i = 0; i < 5; i++) await run(FAKE_SMI, args, env());
    const nodeMs = (children() - t0) / 5;
    assert.ok(replayMs < 5, `replay: ${replayMs} ms of CPU per call`);
    assert.ok(replayMs * 10 < nodeMs, `replay ${replayMs} ms vs Node fake ${nodeMs} ms per call`);
  });

  describe('broken and hostile input: exit 2 and say why, never print half an answer', () => {
    const refuses = async (args: string[], e: NodeJS.ProcessEnv, why: RegExp) => {
      const r = await run(bin, args, e);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, why);
    };
    const broken = (name: string, content: string | Buffer, args = ['--help-query-gpu']) => {
      const d = mkdtempSync(join(tmpdir(), 'smi-replay-bad-'));
      writeFileSync(join(d, replayKey(args).file), content);
      return { d, file: join(d, replayKey(args).file), name };
    };

    test('no recording for the call, no directory, an unset directory', async () => {
      await refuses(['--query-gpu=index', '--format=csv'], env(), /nothing recorded for these arguments: --query-gpu=index --format=csv/);
      await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: join(dir, 'missing') }), /nothing recorded/);
      await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: '' }), /FAKE_NVIDIA_SMI_REPLAY_DIR is not set/);
      await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: 'x'.repeat(5000) }), /too long/);
    });

    test('a recording made for other arguments (a stale file or a hash collision)', async () => {
      const { d } = broken('other', `--help-query-compute-apps\n0\nhello\n`);
      await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: d }), /recording is for other arguments/);
    });

    test('truncated recordings, bad exit statuses, broken timestamp placeholders', async () => {
      for (const [content, why] of [
        ['', /other arguments/],
        ['--help-query-gpu', /other arguments/],
        ['--help-query-gpu\n0', /no exit status line/],
        ['--help-query-gpu\n-1\nx', /bad exit status/],
        ['--help-query-gpu\n256\nx', /bad exit status/],
        ['--help-query-gpu\nzero\nx', /bad exit status/],
        [`--help-query-gpu\n0\n${TIMESTAMP_PLACEHOLDER.slice(1)}, 0\n`, /broken timestamp placeholder/],
        [`--help-query-gpu\n0\n${TIMESTAMP_PLACEHOLDER}\x01, 0\n`, /broken timestamp placeholder/],
      ] as const) {
        const { d } = broken('x', content);
        await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: d }), why);
      }
    });

    test('a directory where the recording should be, a recording over 64 MiB', async () => {
      const d = mkdtempSync(join(tmpdir(), 'smi-replay-bad-'));
      mkdirSync(join(d, replayKey(['--help-query-gpu']).file));
      await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: d }), /not a regular file/);
      const { d: d2, file } = broken('huge', '--help-query-gpu\n0\n');
      truncateSync(file, 65 * 1024 * 1024); // sparse
      await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_REPLAY_DIR: d2 }), /larger than 64 MiB/);
    });

    test('bad loop intervals and delays', async () => {
      for (const args of [['-lms', '0'], ['--loop-ms=abc'], ['--loop-ms=-5'], ['-l'], ['--loop=99999999999999999999'], ['--loop=86401']]) await refuses(['--help-query-gpu', ...args], env(), /bad loop interval/);
      for (const d of ['x', '5-1', '-3', '1-2-3', '9'.repeat(100)]) await refuses(['--help-query-gpu'], env({ FAKE_NVIDIA_SMI_DELAY_MS: d }), /FAKE_NVIDIA_SMI_DELAY_MS/);
    });

    test('a large answer (256 GPUs, every field) replays whole, and a closed reader ends it quietly', async () => {
      const help = (await run(FAKE_SMI, ['--help-query-gpu'], env())).stdout;
      const fields = [...help.matchAll(/^"([A-Za-z0-9_.\-]+)"/gm)].map((m) => m[1]);
      const args = [`--query-gpu=${fields.join(',')}`, '--format=csv'];
      const big = env({ FAKE_NVIDIA_SMI_GPUS: '256' });
      await recordSmiReplay(dir, [args], big);
      const want = await run(FAKE_SMI, args, big);
      const got = await run(bin, args, big);
      assert.equal(got.status, want.status);
      assert.equal(untimed(got.stdout), untimed(want.stdout));
      assert.ok(got.stdout.length > 256 * 1000, `${got.stdout.length} bytes`);
      const child = spawn(bin, [...args, '-lms', '1'], { env: big, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.once('data', () => child.stdout.destroy());
      const code = await new Promise((r) => child.on('exit', (c) => r(c)));
      assert.equal(code, 0);
    });

    test('recording refuses what the replay could not tell apart', async () => {
      await assert.rejects(recordSmiReplay(dir, [['--query-gpu=a\nb']], env()), /newline/);
      assert.ok(readdirSync(dir).length > 0);
    });
  });
});
