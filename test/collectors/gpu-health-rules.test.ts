import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CounterFollower, healthVerdict, recoveryActionOf, RETIRED_PAGES_RMA } from '../../src/collectors/gpu/health.js';
import { XID_CATALOG, xidAction } from '../../src/catalog/xid.js';

const v = (i: Parameters<typeof healthVerdict>[0]) => { const r = healthVerdict(i); return `${r.verdict}/${r.action}/${r.reason}`; };

test('the verdict rules of docs/gpu-health.md, one signal at a time', () => {
  assert.equal(v({ up: true }), 'ok/none/none');
  assert.equal(v({ up: false, health: { rowRemapFailed: true } }), 'lost/reboot_node/not_answering');
  assert.equal(v({ up: true, health: { recoveryAction: 'none' } }), 'ok/none/none');
  assert.equal(v({ up: true, health: { recoveryAction: 'gpu_reset' } }), 'action_required/reset_gpu/recovery_action');
  assert.equal(v({ up: true, health: { recoveryAction: 'node_reboot' } }), 'action_required/reboot_node/recovery_action');
  assert.equal(v({ up: true, health: { recoveryAction: 'drain_p2p' } }), 'action_required/drain_p2p/recovery_action');
  assert.equal(v({ up: true, health: { recoveryAction: 'drain_and_reset' } }), 'action_required/drain_and_reset/recovery_action');
  assert.equal(v({ up: true, health: { recoveryAction: 'recover_imex_domain' } }), 'action_required/recover_imex_domain/recovery_action');
  assert.equal(v({ up: true, health: { recoveryAction: 'unknown' } }), 'action_required/unknown/recovery_action');
  assert.equal(v({ up: true, health: { rowRemapFailed: true } }), 'action_required/rma/row_remap_failed');
  assert.equal(v({ up: true, health: { rowRemapPending: true } }), 'action_required/reset_gpu/row_remap_pending');
  assert.equal(v({ up: true, health: { retiredPagesPending: true } }), 'action_required/reboot_node/retired_pages_pending');
  assert.equal(v({ up: true, health: { retiredPagesSingleBit: RETIRED_PAGES_RMA - 1, retiredPagesDoubleBit: 0 } }), 'ok/none/none');
  assert.equal(v({ up: true, health: { retiredPagesSingleBit: RETIRED_PAGES_RMA - 10, retiredPagesDoubleBit: 10 } }), 'action_required/rma/retired_pages_limit');
  assert.equal(v({ up: true, nvlinkErrorsRose: true }), 'degraded/investigate/nvlink_errors');
  assert.equal(v({ up: true, pcieReplaysRose: true }), 'degraded/investigate/pcie_replays');
  assert.equal(v({ up: true, eccUncorrectedRose: true }), 'degraded/investigate/ecc_uncorrected');
  assert.equal(v({ up: true, health: { thermalMarginCelsius: 0 } }), 'degraded/investigate/thermal_margin');
  assert.equal(v({ up: true, health: { thermalMarginCelsius: 1 } }), 'ok/none/none');
  assert.equal(v({ up: true, throttleReasons: { hw_thermal_slowdown: true } }), 'degraded/investigate/hw_slowdown');
  assert.equal(v({ up: true, throttleReasons: { sw_power_cap: true, gpu_idle: true } }), 'ok/none/none');
});

test('XIDs: the catalog decides without a driver recovery action; with one, an XID only degrades', () => {
  assert.equal(v({ up: true, recentXids: [13, 31, 43, 94] }), 'ok/none/none');
  assert.equal(v({ up: true, recentXids: [95] }), 'action_required/reset_gpu/xid_95');
  assert.equal(v({ up: true, recentXids: [48] }), 'action_required/reset_gpu/xid_48');
  assert.equal(v({ up: true, recentXids: [79] }), 'action_required/reboot_node/xid_79');
  assert.equal(v({ up: true, recentXids: [74] }), 'degraded/investigate/xid_74');
  assert.equal(v({ up: true, recentXids: [4242] }), 'degraded/investigate/xid_4242');
  assert.equal(v({ up: true, recentXids: [95], health: { recoveryAction: 'none' } }), 'degraded/investigate/xid_95');
  assert.equal(v({ up: true, recentXids: [95], health: { recoveryAction: 'gpu_reset' } }), 'action_required/reset_gpu/recovery_action');
});

test('the most severe finding wins: lost > action_required > degraded, and an RMA is never hidden behind a reset', () => {
  assert.equal(v({ up: true, health: { recoveryAction: 'gpu_reset', rowRemapFailed: true, rowRemapPending: true }, nvlinkErrorsRose: true }), 'action_required/rma/row_remap_failed');
  assert.equal(v({ up: true, health: { recoveryAction: 'gpu_reset', thermalMarginCelsius: -4 } }), 'action_required/reset_gpu/recovery_action');
  assert.equal(v({ up: true, health: { rowRemapPending: true, recoveryAction: 'node_reboot' } }), 'action_required/reboot_node/recovery_action');
});

test('recovery action values: nvml.h 13.3 defines 0-5; anything else (negative, huge, fractional) is unknown', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(recoveryActionOf), ['none', 'gpu_reset', 'node_reboot', 'drain_p2p', 'drain_and_reset', 'recover_imex_domain']);
  for (const x of [6, 7, -1, 2 ** 32 - 1, 1.5, Number.NaN]) assert.equal(recoveryActionOf(x), 'unknown', String(x));
});

test('CounterFollower: totals never go backwards across driver reloads; the first read sets the baseline', () => {
  const f = new CounterFollower();
  const seq = [10, 10, 12, 3, 3, 0, 5].map((raw) => ({ total: f.feed(raw), rose: f.rose, reset: f.reset }));
  assert.deepEqual(seq.map((s) => s.total), [10, 10, 12, 15, 15, 15, 20]);
  assert.deepEqual(seq.map((s) => s.rose), [false, false, true, true, false, false, true]);
  assert.deepEqual(seq.map((s) => s.reset), [false, false, false, true, false, true, false]);
});

test('XID catalog: covers the XIDs NVIDIA lists for data-center GPUs, one row each; unknown XIDs are unknown', () => {
  const required = [13, 31, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 109, 119, 120, 121, 140, 143, 144, 145, 146, 147, 148, 149, 150, 154];
  for (const x of required) assert.notEqual(xidAction(x), 'unknown', `XID ${x}`);
  assert.equal(new Set(XID_CATALOG.map((e) => e.xid)).size, XID_CATALOG.length, 'duplicate rows');
  for (const x of [0, 1, 999, -3, 2 ** 40]) assert.equal(xidAction(x), 'unknown');
  assert.equal(xidAction(79), 'restart_bm');
  assert.equal(xidAction(95), 'reset_gpu');
  assert.equal(xidAction(154), 'xid_154');
});
