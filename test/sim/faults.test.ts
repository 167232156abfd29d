import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { parseSimFaults } from '../../src/sim/faults.js';
import { testApp, valueOf } from '../helpers/app.js';

test('--simulate.fault syntax: gpu<N>:<fault>[@<delay>]', () => {
  assert.deepEqual(parseSimFaults(['gpu3:xid79', ' gpu1:reset@30s ', 'gpu0:lost@2m', ''], 8), [
    { gpu: 3, kind: 'xid', xid: 79, atSeconds: 0 },
    { gpu: 1, kind: 'reset', xid: undefined, atSeconds: 30 },
    { gpu: 0, kind: 'lost', xid: undefined, atSeconds: 120 },
  ]);
});

test('--simulate.fault: bad values fail at startup with a message naming the entry and what is allowed', () => {
  const cases: Array<[string, RegExp]> = [
    ['gpu9:lost', /"gpu9:lost": GPU 9 does not exist \(--simulate.gpus=8: GPUs 0-7\)/],
    ['gpu1:explode', /unknown fault "explode" \(known: lost, reset, .*xid<N>\)/],
    ['3:xid79', /expected gpu<N>:<fault>\[@<delay>\]/],
    ['gpu1:xid0', /XID 0 is out of range 1-65535/],
    ['gpu1:xid99999999', /out of range/],
    ['gpu1:reset@soon', /delay "soon" is not a duration/],
    ['gpu1:reset@30d', /delay "30d" is not a duration/],
    ['gpu1:reset@200h', /out of range 0s-7d/],
    ['GPU1:reset', /expected gpu<N>/],
    ['gpu1:reset;rm -rf /', /expected gpu<N>/],
    ['x'.repeat(100_000), /expected gpu<N>/],
  ];
  for (const [spec, re] of cases) {
    assert.throws(() => parseSimFaults([spec], 8), (e: Error) => e instanceof ConfigError && re.test(e.message) && e.message.length < 400, spec.slice(0, 40));
  }
  // Through the real flag parsing: the exporter refuses to start.
  assert.throws(() => loadConfig(['--simulate', '--simulate.gpus=2', '--simulate.fault=gpu2:reset'], {}), /GPU 2 does not exist/);
  assert.throws(() => loadConfig(['--simulate'], { DS_EXPORTER_SIMULATE_FAULT: 'gpu0:nope' }), /unknown fault "nope"/);
});

test('each injected fault reaches the metrics and the verdict of its GPU only', async () => {
  let now = 1_700_000_000_000;
  const faults = [
    'gpu0:reset', 'gpu1:reboot', 'gpu2:row_remap_failed', 'gpu3:row_remap_pending', 'gpu4:nvlink_errors', 'gpu5:pcie_replays',
    'gpu6:hot', 'gpu7:lost', 'gpu8:xid95', 'gpu9:drain_p2p', 'gpu10:xid4242', 'gpu11:lost@60s', 'gpu12:retired_pages_pending',
  ];
  const built = await testApp(['--simulate', '--simulate.gpus=14', `--simulate.fault=${faults.join(',')}`, '--sample.stale-after=1h'], { now: () => now });
  try {
    for (let i = 0; i < 20; i++) {
      now += 1000;
      await built.scheduler.sampleAll();
    }
    const t = (await built.app.inject({ url: '/metrics' })).body;
    const verdict = (gpu: number) => {
      const l = t.split('\n').filter((x) => x.startsWith('ds_gpu_health{') && x.includes(`gpu="${gpu}",`));
      assert.equal(l.length, 1, `one verdict for GPU ${gpu}: ${l}`);
      return /verdict="(\w+)",action="(\w+)",reason="(\w+)"/.exec(l[0])!.slice(1).join('/');
    };
    assert.equal(verdict(0), 'action_required/reset_gpu/recovery_action');
    assert.equal(verdict(1), 'action_required/reboot_node/recovery_action');
    assert.equal(verdict(2), 'action_required/rma/row_remap_failed');
    assert.equal(verdict(3), 'action_required/reset_gpu/row_remap_pending');
    assert.equal(verdict(4), 'degraded/investigate/nvlink_errors');
    assert.equal(verdict(5), 'degraded/investigate/pcie_replays');
    assert.match(verdict(6), /^degraded\/investigate\/(thermal_margin|hw_slowdown)$/);
    assert.equal(verdict(7), 'lost/reboot_node/not_answering');
    // The simulated driver reports a recovery action (none): an XID alone only degrades.
    assert.equal(verdict(8), 'degraded/investigate/xid_95');
    assert.equal(verdict(9), 'action_required/drain_p2p/recovery_action');
    assert.equal(verdict(10), 'degraded/investigate/xid_4242');
    assert.equal(verdict(11), 'ok/none/none', 'not yet: lost after 60 s');
    assert.equal(verdict(12), 'action_required/reboot_node/retired_pages_pending');
    assert.equal(verdict(13), 'ok/none/none');
    assert.equal(valueOf(t, /^ds_gpu_retired_pages\{gpu="12",[^}]*cause="double_bit_ecc"\} /), 1);
    assert.equal(valueOf(t, /^ds_gpu_up\{gpu="7",/), 0);
    assert.equal(valueOf(t, /^ds_gpu_xid_errors_total\{gpu="7",[^}]*xid="79",action="restart_bm"\} /), 1);
    assert.equal(valueOf(t, /^ds_gpu_xid_errors_total\{gpu="10",[^}]*xid="4242",action="unknown"\} /), 1);
    assert.ok(valueOf(t, /^ds_gpu_nvlink_errors_total\{gpu="4",[^}]*link="0",type="crc"\} /)! > 0);
    assert.equal(valueOf(t, /^ds_gpu_nvlink_errors_total\{gpu="4",[^}]*link="1",type="crc"\} /), 0);
    assert.ok(valueOf(t, /^ds_gpu_pcie_replays_total\{gpu="5",/)! > 0);
    assert.ok(valueOf(t, /^ds_gpu_thermal_margin_celsius\{gpu="6",/)! < 0);
    assert.equal(valueOf(t, /^ds_gpu_row_remap_failed\{gpu="2",/), 1);
    // Simulated: marked as such.
    assert.match(t, /ds_exporter_gpu_source_info\{source="simulated"\} 1/);
    for (let i = 0; i < 50; i++) {
      now += 1000;
      await built.scheduler.sampleAll();
    }
    const later = (await built.app.inject({ url: '/metrics' })).body;
    assert.match(later, /^ds_gpu_health\{gpu="11",[^}]*verdict="lost"/m);
  } finally {
    await built.close();
  }
});
