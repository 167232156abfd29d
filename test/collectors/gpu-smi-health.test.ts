import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCsvLine, planFields, rowToReading, smiRecoveryAction } from '../../src/collectors/gpu/smi-parse.js';
import { testApp, valueOf } from '../helpers/app.js';
import { FAKE_SMI, setFakeSmiEnv } from '../helpers/fake-smi.js';

const U = 'uuid="GPU-00000000-0000-0000-0000-000000000000"';

async function scrape(capture: string, state: 'idle' | 'load'): Promise<string> {
  const restore = setFakeSmiEnv({ CAPTURE: capture, STATE: state, TIMESTAMP: 'capture' });
  const built = await testApp(['--gpu.source=nvidia-smi', `--nvidia-smi.path=${FAKE_SMI}`, '--sample.interval=60s', '--sample.stale-after=600s'], { now: () => 1_700_000_000_000 });
  try {
    await built.scheduler.sampleAll();
    return (await built.app.inject({ url: '/metrics' })).body;
  } finally {
    await built.close();
    restore();
  }
}

test('nvidia-smi: recovery action, row remapping and thermal margin of a GPU in trouble, from the CSV query alone', async () => {
  const idle = await scrape('h100-health-faults.synthetic', 'idle');
  assert.equal(valueOf(idle, new RegExp(`^ds_gpu_recovery_action\\{gpu="0",${U},action="gpu_reset"\\} `)), 1);
  assert.equal(valueOf(idle, new RegExp(`^ds_gpu_row_remap_pending\\{gpu="0",${U}\\} `)), 1);
  assert.equal(valueOf(idle, new RegExp(`^ds_gpu_remapped_rows\\{gpu="0",${U},cause="uncorrectable"\\} `)), 1);
  // Both ask for a reset; the driver's own recommendation is the stronger reason.
  assert.equal(valueOf(idle, new RegExp(`^ds_gpu_health\\{gpu="0",${U},verdict="action_required",action="reset_gpu",reason="(recovery_action|row_remap_pending)"\\} `)), 1);
  const load = await scrape('h100-health-faults.synthetic', 'load');
  assert.equal(valueOf(load, new RegExp(`^ds_gpu_recovery_action\\{gpu="0",${U},action="drain_and_reset"\\} `)), 1);
  assert.equal(valueOf(load, new RegExp(`^ds_gpu_row_remap_failed\\{gpu="0",${U}\\} `)), 1);
  assert.equal(valueOf(load, new RegExp(`^ds_gpu_thermal_margin_celsius\\{gpu="0",${U}\\} `)), -2);
  // A failed remap is an RMA, whatever else is asked.
  assert.equal(valueOf(load, new RegExp(`^ds_gpu_health\\{gpu="0",${U},verdict="action_required",action="rma",reason="row_remap_failed"\\} `)), 1);
  // H100 retires no pages (row remapping instead): those series are absent, not 0.
  assert.doesNotMatch(load, /^ds_gpu_retired_pages/m);
});

test('nvidia-smi: samples read the one CSV loop; -q runs only once a query period (a minute by default), never per sample', async () => {
  const { readFileSync, mkdtempSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const pidfile = join(mkdtempSync(join(tmpdir(), 'smi-')), 'pids');
  const restore = setFakeSmiEnv({ CAPTURE: 'h100-health-faults.synthetic', PIDFILE: pidfile });
  const built = await testApp(['--gpu.source=nvidia-smi', `--nvidia-smi.path=${FAKE_SMI}`, '--sample.interval=100ms']);
  try {
    for (let i = 0; i < 3; i++) await built.scheduler.sampleAll();
  } finally {
    await built.close();
    restore();
  }
  const calls = readFileSync(pidfile, 'utf8').trim().split('\n').map((l) => l.split(' ').slice(2).join(' '));
  assert.ok(calls.every((c) => c.startsWith('--help-query-gpu') || c.startsWith('--query-gpu=')), calls.join('\n'));
  assert.ok(calls.some((c) => c.includes('gpu_recovery_action') && c.includes('remapped_rows.failure') && c.includes('temperature.gpu.tlimit')), calls.join('\n'));
});

test('smiRecoveryAction maps nvidia-smi wording; anything else is unknown', () => {
  const cases: Array<[string, string]> = [
    ['None', 'none'], ['Reset', 'gpu_reset'], ['GPU Reset', 'gpu_reset'], ['Reboot', 'node_reboot'], ['Node Reboot', 'node_reboot'],
    ['Drain P2P', 'drain_p2p'], ['Drain and Reset', 'drain_and_reset'], ['DRAIN_AND_RESET', 'drain_and_reset'], ['Recover IMEX Domain', 'recover_imex_domain'],
    ['Reticulate splines', 'unknown'], ['', 'unknown'],
  ];
  for (const [text, want] of cases) assert.equal(smiRecoveryAction(text), want, text);
});

test('nvidia-smi health cells: N/A and odd values leave the field absent, hostile text never throws', () => {
  const supported = new Set(['index', 'uuid', 'gpu_recovery_action', 'remapped_rows.pending', 'remapped_rows.failure', 'remapped_rows.correctable', 'retired_pages.pending', 'temperature.gpu.tlimit']);
  const plan = planFields(supported);
  const cols = (vals: Record<string, string>) => plan.fields.map((f) => vals[f] ?? '[N/A]').join(', ');
  const read = (vals: Record<string, string>) => {
    const p = parseCsvLine(cols({ index: '0', uuid: 'GPU-1234', ...vals }), plan.fields);
    assert.ok(p.ok);
    return rowToReading(p.row, plan).health;
  };
  assert.equal(read({}), undefined, 'all N/A: no health at all');
  assert.deepEqual(read({ 'remapped_rows.pending': 'Maybe', 'remapped_rows.failure': '2', 'temperature.gpu.tlimit': 'hot' }), undefined);
  const h = read({ gpu_recovery_action: '\u0000\u00ff<script>', 'remapped_rows.pending': 'No', 'remapped_rows.correctable': '7', 'retired_pages.pending': 'Yes', 'temperature.gpu.tlimit': '-5' });
  assert.equal(h?.recoveryAction, 'unknown');
  assert.equal(h?.rowRemapPending, false);
  assert.equal(h?.remappedRowsCorrectable, 7);
  assert.equal(h?.retiredPagesPending, true);
  assert.equal(h?.thermalMarginCelsius, -5);
  assert.equal(h?.rowRemapFailed, undefined);
  // Huge recovery-action text is cut before it reaches a log line.
  assert.ok(String(read({ gpu_recovery_action: 'x'.repeat(5000) })?.recoveryActionRaw).length <= 64);
});

/** A wrapper nvidia-smi: `-q` prints the capture's `-q` section with its replay counter rising 4 per call (or fails), everything else is the fake. */
async function queryWrapper(failQuery = false): Promise<{ path: string; dir: string }> {
  const { mkdtempSync, readFileSync, writeFileSync, chmodSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'smi-q-'));
  const capture = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'nvidia-smi', 'h100-80gb-hbm3__590.48.01.txt'), 'utf8');
  writeFileSync(join(dir, 'q.txt'), capture.slice(capture.indexOf('# idle :: query (-q)'), capture.indexOf('# idle :: query-gpu (csv')));
  const path = join(dir, 'nvidia-smi');
  writeFileSync(path, [
    '#!/bin/sh',
    `D='${dir}'`,
    'case " $* " in *" -q "*)',
    failQuery ? '  echo "Unable to determine the device handle" >&2; exit 15;;' : '  n=$(cat "$D/count" 2>/dev/null || echo 0); echo $((n + 1)) > "$D/count"; sed "s/Replays Since Reset *: .*/Replays Since Reset : $((9 + n * 4))/" "$D/q.txt"; exit 0;;',
    'esac',
    `exec '${FAKE_SMI}' "$@"`,
    '',
  ].join('\n'));
  chmodSync(path, 0o755);
  return { path, dir };
}

test('nvidia-smi: PCIe replays from a slow `-q` poll (no CSV field has them), matched by bus id; a failing -q is logged once and leaves them out', async () => {
  const { openSmiSource } = await import('../../src/collectors/gpu/smi.js');
  const { createLogger } = await import('../../src/core/logger.js');
  const restore = setFakeSmiEnv({ CAPTURE: 'h100-80gb-hbm3__590.48.01', STATE: 'idle' });
  try {
    const { path } = await queryWrapper();
    const logs: string[] = [];
    const src = await openSmiSource({ path, intervalMs: 1000, logger: createLogger('info', (l) => logs.push(l)), queryIntervalMs: 3_600_000 });
    try {
      assert.equal((await src.read())[0].health?.pcieReplays, undefined, 'nothing before the first -q');
      await src.pollQuery();
      assert.equal((await src.read())[0].health?.pcieReplays, 9);
      await src.pollQuery();
      const r = (await src.read())[0];
      assert.equal(r.health?.pcieReplays, 13);
      assert.equal(r.health?.recoveryAction, 'none', 'the CSV health fields stay');
    } finally {
      await src.close();
    }
    const failing = await queryWrapper(true);
    const src2 = await openSmiSource({ path: failing.path, intervalMs: 1000, logger: createLogger('info', (l) => logs.push(l)), queryIntervalMs: 3_600_000 });
    try {
      for (let i = 0; i < 3; i++) await src2.pollQuery();
      const r = (await src2.read())[0];
      assert.equal(r.up, true);
      assert.equal(r.health?.pcieReplays, undefined);
      assert.equal(logs.filter((l) => l.includes('nvidia-smi -q failed')).length, 1, logs.join('\n'));
    } finally {
      await src2.close();
    }
  } finally {
    restore();
  }
});

test('parseQueryPcieReplays: every real capture, by bus id; hostile text never throws', async () => {
  const { parseQueryPcieReplays } = await import('../../src/collectors/gpu/smi-parse.js');
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const want: Record<string, [string, number]> = { 'h100-80gb-hbm3__590.48.01': ['00000000:00:09.0', 9], 'h100-mig__590.48.01': ['00000000:00:09.0', 9], 'l40s__595.80': ['00000000:01:00.0', 0] };
  for (const [capture, [bus, n]] of Object.entries(want)) {
    const t = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'nvidia-smi', `${capture}.txt`), 'utf8');
    const q = t.slice(t.indexOf('# idle :: query (-q)'), t.indexOf('# idle :: query-gpu (csv'));
    assert.deepEqual([...parseQueryPcieReplays(q)], [[bus, n]], capture);
  }
  const two = 'GPU 00000000:18:00.0\n    PCI\n        Replays Since Reset : 3\nGPU 00000000:2a:00.0\n        Replays Since Reset : N/A\nGPU 00000000:3A:00.0\n        Replays Since Reset : 12\n';
  assert.deepEqual([...parseQueryPcieReplays(two)], [['00000000:18:00.0', 3], ['00000000:3A:00.0', 12]]);
  assert.deepEqual([...parseQueryPcieReplays('        Replays Since Reset : 5\n')], [], 'no GPU header: nothing');
  assert.deepEqual([...parseQueryPcieReplays('GPU 00000000:18:00.0\n Replays Since Reset : 99999999999999999999\n')], []);
  parseQueryPcieReplays('\u0000'.repeat(100_000) + 'GPU x'.repeat(10_000));
});
