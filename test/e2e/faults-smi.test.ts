import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { alive, type FakeSmiEnv, fakeStarts } from '../helpers/fake-smi.js';
import { stopClean, untilMetrics } from '../helpers/faults.js';
import { assertNoOrphans, GPUS, gpuSuccess, smiArgs, smiCase, smiEnv } from '../helpers/faults-smi.js';
import { startExporter } from '../helpers/procs.js';

// Fault matrix, nvidia-smi side (1/2): a hung child, and no orphan child after SIGTERM.

test('nvidia-smi hangs (alive, prints nothing): collector_success{gpu} 0, the child is killed and restarted, scrapes stay fast', { timeout: 60_000 }, async () => {
  await smiCase('nvidia-smi hangs', { HANG_AFTER_LINES: String(GPUS * 5) }, () => {});
  // The watchdog (5 intervals + 2 s) kills the hung child; checked on a second exporter so the first case stays short.
  const dir = mkdtempSync(join(tmpdir(), 'dsx-faults-smi-'));
  const pidfile = join(dir, 'pids');
  const ex = await startExporter(smiArgs, smiEnv(dir, { HANG_AFTER_LINES: String(GPUS * 2) }));
  try {
    await untilMetrics(ex.url, () => fakeStarts(pidfile).filter((s) => s.loop).length >= 2, 30_000, 'hung child killed and a new one started');
    const loops = fakeStarts(pidfile).filter((s) => s.loop);
    for (let i = 0; i < 20 && alive(loops[0].pid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(loops[0].pid), false, 'the hung child is gone (killed and reaped)');
    assert.match(ex.output(), /nvidia-smi stopped printing; killing it/);
    // The restarted child prints its good lines again before it hangs too: readings come back.
    await untilMetrics(ex.url, (b) => gpuSuccess(b) === 1, 15_000, 'the restarted child delivers readings');
  } finally {
    await stopClean(ex, 'nvidia-smi hangs (watchdog)');
    await assertNoOrphans(pidfile, 'nvidia-smi hangs (watchdog)');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM reaps the nvidia-smi child: no orphan after stop, also while the child hangs', { timeout: 60_000 }, async () => {
  for (const vars of [{}, { HANG_AFTER_LINES: String(GPUS) }] as FakeSmiEnv[]) {
    const dir = mkdtempSync(join(tmpdir(), 'dsx-faults-smi-'));
    const pidfile = join(dir, 'pids');
    const ex = await startExporter(smiArgs, smiEnv(dir, vars));
    try {
      await untilMetrics(ex.url, () => fakeStarts(pidfile).some((s) => s.loop && alive(s.pid)), 15_000, 'loop child running');
      if (vars.HANG_AFTER_LINES) await new Promise((r) => setTimeout(r, 1500)); // the child has gone quiet
    } finally {
      await stopClean(ex, `SIGTERM ${JSON.stringify(vars)}`);
    }
    await assertNoOrphans(pidfile, `SIGTERM ${JSON.stringify(vars)}`);
    rmSync(dir, { recursive: true, force: true });
  }
});
