import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakeStarts } from '../helpers/fake-smi.js';
import { GPUS, smiCase } from '../helpers/faults-smi.js';

// Fault matrix, nvidia-smi side (2/2): a child that dies, a child that prints garbage.

test('nvidia-smi dies: collector_success{gpu} 0 between restarts, restarted with backoff, scrapes stay fast', { timeout: 60_000 }, async () => {
  await smiCase('nvidia-smi dies', { DIE_AFTER_LINES: String(GPUS * 4) }, (_during, log, pidfile) => {
    assert.match(log, /nvidia-smi exited; restarting with backoff.*exited with code 1.*dying as told/);
    assert.ok(fakeStarts(pidfile).filter((s) => s.loop).length >= 2, 'restarted at least once');
  });
});

test('nvidia-smi prints garbage: collector_success{gpu} 0 (no reading is fresh), scrapes stay fast', { timeout: 60_000 }, async () => {
  await smiCase('nvidia-smi prints garbage', { GARBAGE_AFTER_LINES: String(GPUS * 4) }, (during) => {
    assert.doesNotMatch(during, /garbage/, 'nothing of the garbage reaches the exposition');
  });
});

