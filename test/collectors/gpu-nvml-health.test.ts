import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import koffi from 'koffi';
import { valueOf } from '../helpers/app.js';
import { buildFakeNvml, fakeNvmlUnavailable } from '../helpers/fake-nvml.js';
import { fakeNvmlApp } from '../helpers/nvml-app.js';

const skip = fakeNvmlUnavailable();
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

/** An exporter on the fake NVML, with its log lines kept. */
async function healthApp(config: Record<string, string | number>, omit: string[] = []) {
  const app = await fakeNvmlApp(open, config, omit);
  const reload = koffi.load(app.lib).func('void fake_nvml_reload_counters(uint32_t gpu)') as (gpu: number) => void;
  return { ...app, reload };
}

const id = (gpu: number) => `gpu="${gpu}",uuid="GPU-fake0000-0000-0000-0000-00000000000${gpu}"`;
const re = (name: string, gpu: number, extra = '') => new RegExp(`^${name}\\{${id(gpu)}${extra}\\} `);
const lines = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`));

test('NVML health signals are exported exactly: recovery action, row remapping, retired pages, NVLink per link, PCIe replays, thermal margin', { skip }, async () => {
  const { metrics } = await healthApp({
    gpus: 2,
    'gpu.1.recovery_action': 1, 'gpu.1.remap_corr': 3, 'gpu.1.remap_unc': 2, 'gpu.1.remap_pending': 1,
    'gpu.1.retired_sbe': 4, 'gpu.1.retired_dbe': 1, 'gpu.1.retired_pending': 1,
    nvlink_links: 2, 'gpu.1.nvlink_crc': 7, 'gpu.1.nvlink_replay': 5, 'gpu.1.nvlink_recovery': 1,
    'gpu.1.pcie_replay': 9, 'gpu.1.margin_temp': -3,
  });
  const t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_recovery_action', 0, ',action="none"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_recovery_action', 1, ',action="gpu_reset"')), 1);
  assert.equal(lines(t, 'ds_gpu_recovery_action').length, 2, 'one series per GPU');
  assert.equal(valueOf(t, re('ds_gpu_row_remap_pending', 1)), 1);
  assert.equal(valueOf(t, re('ds_gpu_row_remap_pending', 0)), 0);
  assert.equal(valueOf(t, re('ds_gpu_row_remap_failed', 1)), 0);
  assert.equal(valueOf(t, re('ds_gpu_remapped_rows', 1, ',cause="correctable"')), 3);
  assert.equal(valueOf(t, re('ds_gpu_remapped_rows', 1, ',cause="uncorrectable"')), 2);
  assert.equal(valueOf(t, re('ds_gpu_retired_pages', 1, ',cause="single_bit_ecc"')), 4);
  assert.equal(valueOf(t, re('ds_gpu_retired_pages', 1, ',cause="double_bit_ecc"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_retired_pages_pending', 1)), 1);
  for (const link of [0, 1]) {
    assert.equal(valueOf(t, re('ds_gpu_nvlink_errors_total', 1, `,link="${link}",type="crc"`)), 7);
    assert.equal(valueOf(t, re('ds_gpu_nvlink_errors_total', 1, `,link="${link}",type="replay"`)), 5);
    assert.equal(valueOf(t, re('ds_gpu_nvlink_errors_total', 1, `,link="${link}",type="recovery"`)), 1);
  }
  assert.equal(lines(t, 'ds_gpu_nvlink_errors_total').length, 12, '2 GPUs x 2 links x 3 types');
  assert.equal(valueOf(t, re('ds_gpu_pcie_replays_total', 1)), 9);
  assert.equal(valueOf(t, re('ds_gpu_thermal_margin_celsius', 1)), -3);
  assert.equal(valueOf(t, re('ds_gpu_thermal_margin_celsius', 0)), 40);
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="ok",action="none",reason="none"')), 1);
  // The driver asks for a reset, rows wait for one, pages wait for a reboot: the most disruptive action wins.
  assert.equal(valueOf(t, re('ds_gpu_health', 1, ',verdict="action_required",action="reboot_node",reason="retired_pages_pending"')), 1);
  assert.equal(lines(t, 'ds_gpu_health').length, 2, 'one verdict per GPU');
});

test('NOT_SUPPORTED calls and fields leave their metrics absent, never zero, and the verdict still comes', { skip }, async () => {
  const { metrics, logs } = await healthApp({
    nvlink_links: 2,
    'error.nvmlDeviceGetRemappedRows': 3, 'error.nvmlDeviceGetRetiredPages': 3, 'error.nvmlDeviceGetRetiredPagesPendingStatus': 3,
    'error.nvmlDeviceGetPcieReplayCounter': 3, 'error.nvmlDeviceGetMarginTemperature': 3,
    'error.field.230': 3, 'error.field.161': 3, 'error.field.162': 3, 'error.field.163': 3,
    'error.nvmlDeviceGetNvLinkErrorCounter': 3,
  });
  const t = await metrics();
  for (const name of ['ds_gpu_recovery_action', 'ds_gpu_row_remap_pending', 'ds_gpu_row_remap_failed', 'ds_gpu_remapped_rows', 'ds_gpu_retired_pages', 'ds_gpu_retired_pages_pending', 'ds_gpu_nvlink_errors_total', 'ds_gpu_pcie_replays_total', 'ds_gpu_thermal_margin_celsius']) {
    assert.deepEqual(lines(t, name), [], `${name} should be absent`);
  }
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="ok",action="none",reason="none"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_up', 0)), 1);
  assert.deepEqual(logs.filter((l) => /level=(warn|error)/.test(l)), [], 'NOT_SUPPORTED is not worth a log line');
});

test('an old driver without the health symbols: those metrics are absent, the rest of the GPU is read', { skip }, async () => {
  const omit = ['nvmlDeviceGetRemappedRows', 'nvmlDeviceGetRetiredPages', 'nvmlDeviceGetRetiredPagesPendingStatus', 'nvmlDeviceGetNvLinkErrorCounter', 'nvmlDeviceGetPcieReplayCounter', 'nvmlDeviceGetMarginTemperature'];
  // The field ids exist since long, but an old driver does not know the recovery action field.
  const { metrics } = await healthApp({ nvlink_links: 4, 'error.field.230': 3, temp_gpu: 55 }, omit);
  const t = await metrics();
  for (const name of ['ds_gpu_recovery_action', 'ds_gpu_row_remap_pending', 'ds_gpu_retired_pages', 'ds_gpu_pcie_replays_total', 'ds_gpu_thermal_margin_celsius']) assert.deepEqual(lines(t, name), [], name);
  // NVLink error counters still come from the field values.
  assert.equal(lines(t, 'ds_gpu_nvlink_errors_total').length, 12);
  assert.equal(valueOf(t, re('ds_gpu_temperature_celsius', 0)), 55);
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="ok",action="none",reason="none"')), 1);
});

test('NVLink counters come from nvmlDeviceGetNvLinkErrorCounter when the driver does not answer the fields', { skip }, async () => {
  const { metrics } = await healthApp({ nvlink_links: 3, nvlink_crc: 2, nvlink_replay: 1, 'error.field.161': 3, 'error.field.162': 3, 'error.field.163': 3 });
  const t = await metrics();
  assert.equal(lines(t, 'ds_gpu_nvlink_errors_total').length, 9);
  assert.equal(valueOf(t, re('ds_gpu_nvlink_errors_total', 0, ',link="2",type="crc"')), 2);
  assert.equal(valueOf(t, re('ds_gpu_nvlink_errors_total', 0, ',link="2",type="replay"')), 1);
});

test('an unknown recovery action (a newer driver) is action "unknown", verdict action_required, logged once', { skip }, async () => {
  const { metrics, tick, logs } = await healthApp({ recovery_action: 7 });
  await tick();
  await tick();
  const t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_recovery_action', 0, ',action="unknown"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="action_required",action="unknown",reason="recovery_action"')), 1);
  const said = logs.filter((l) => l.includes('recovery action this exporter does not know'));
  assert.equal(said.length, 1, logs.join('\n'));
  assert.match(said[0], /value=7/);
});

test('values outside what nvml.h defines are not believed: a pending-retirement state of 7 is left out, logged once; odd link counts are bounded', { skip }, async () => {
  const { metrics, tick, logs } = await healthApp({ gpus: 2, 'gpu.0.retired_pending': 7, 'gpu.1.retired_pending': 1, 'gpu.1.nvlink_links': 4000 });
  await tick();
  await tick();
  const t = await metrics();
  assert.deepEqual(lines(t, 'ds_gpu_retired_pages_pending').filter((l) => l.includes('gpu="0"')), []);
  assert.equal(valueOf(t, re('ds_gpu_retired_pages_pending', 1)), 1);
  assert.equal(valueOf(t, re('ds_gpu_retired_pages', 0, ',cause="single_bit_ecc"')), 0, 'the rest of the GPU is read');
  assert.equal(logs.filter((l) => l.includes('value nvml.h does not define')).length, 1, logs.join('\n'));
  // NVML_NVLINK_MAX_LINKS is 36: a link count beyond it is cut there.
  assert.equal(lines(t, 'ds_gpu_nvlink_errors_total').filter((l) => l.includes('gpu="1"')).length, 36 * 3);
});

test('rising NVLink and PCIe counters make the GPU degraded; a driver reload (counters back to 0) keeps the totals going, logged once', { skip }, async () => {
  const { metrics, tick, logs, reload } = await healthApp({ gpus: 2, nvlink_links: 1, 'gpu.0.nvlink_crc': 100, 'gpu.0.nvlink_err_step': 1, 'gpu.1.pcie_replay': 50, 'gpu.1.pcie_replay_step': 2 });
  await tick();
  let t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="degraded",action="investigate",reason="nvlink_errors"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_health', 1, ',verdict="degraded",action="investigate",reason="pcie_replays"')), 1);
  const crcBefore = valueOf(t, re('ds_gpu_nvlink_errors_total', 0, ',link="0",type="crc"'))!;
  const pcieBefore = valueOf(t, re('ds_gpu_pcie_replays_total', 1))!;
  assert.ok(crcBefore > 100 && pcieBefore > 50, `${crcBefore} ${pcieBefore}`);
  reload(0);
  reload(1);
  for (let i = 0; i < 3; i++) await tick();
  t = await metrics();
  const crcAfter = valueOf(t, re('ds_gpu_nvlink_errors_total', 0, ',link="0",type="crc"'))!;
  const pcieAfter = valueOf(t, re('ds_gpu_pcie_replays_total', 1))!;
  assert.ok(crcAfter > crcBefore, `NVLink total went backwards: ${crcBefore} -> ${crcAfter}`);
  assert.ok(pcieAfter > pcieBefore, `PCIe total went backwards: ${pcieBefore} -> ${pcieAfter}`);
  assert.equal(logs.filter((l) => l.includes('NVLink error counter went backwards')).length, 1, logs.join('\n'));
  assert.equal(logs.filter((l) => l.includes('PCIe replay counter went backwards')).length, 1, logs.join('\n'));
});

test('a GPU that answers some calls and loses the bus in the middle of the health reads: verdict lost, one log line, the other GPU carries on', { skip }, async () => {
  // Count the driver calls of one sample of a GPU; the health reads are its last 8 calls.
  const probe = await healthApp({ gpus: 1, nvlink_links: 2 });
  const calls = koffi.load(buildFakeNvml()).func('long fake_nvml_calls(uint32_t gpu)') as (gpu: number) => number;
  const c0 = calls(0);
  await probe.tick();
  const perSample = calls(0) - c0;
  await probe.built.close();
  open.splice(0);
  assert.ok(perSample > 8, `${perSample} calls per sample`);
  // GPU 0 answers the first sample and most of the second, then fails 3 calls before the end of the second: inside the health reads.
  const { metrics, tick, logs } = await healthApp({ gpus: 2, nvlink_links: 2, 'gpu.0.lost_after': c0 + perSample - 3 });
  let t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="ok",action="none",reason="none"')), 1, 'first sample answered in full');
  await tick();
  t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="lost",action="reboot_node",reason="not_answering"')), 1, t);
  assert.equal(valueOf(t, re('ds_gpu_up', 0)), 0);
  // Nothing half-read of the lost GPU is served.
  for (const name of ['ds_gpu_nvlink_errors_total', 'ds_gpu_recovery_action', 'ds_gpu_thermal_margin_celsius', 'ds_gpu_temperature_celsius']) {
    assert.deepEqual(lines(t, name).filter((l) => l.includes('gpu="0"')), [], name);
  }
  for (let i = 0; i < 3; i++) await tick();
  t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_health', 1, ',verdict="ok",action="none",reason="none"')), 1, 'GPU 1 is unaffected');
  assert.equal(valueOf(t, re('ds_gpu_up', 1)), 1);
  assert.equal(lines(t, 'ds_gpu_nvlink_errors_total').filter((l) => l.includes('gpu="1"')).length, 6);
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="lost",action="reboot_node",reason="not_answering"')), 1);
  assert.equal(logs.filter((l) => l.includes('GPU does not answer')).length, 1, logs.join('\n'));
});

test('XID events keep their counter and carry the catalog action; an unknown XID is counted with action unknown', { skip }, async () => {
  const { metrics, tick, ctl, logs } = await healthApp({ gpus: 2 });
  ctl.injectXid(1, 79);
  ctl.injectXid(1, 13);
  ctl.injectXid(0, 999);
  ctl.injectXid(0, 999);
  let t = '';
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 20));
    await tick();
    t = await metrics();
    if (valueOf(t, re('ds_gpu_xid_errors_total', 0, ',xid="999",action="unknown"')) === 2 && valueOf(t, re('ds_gpu_xid_errors_total', 1, ',xid="13",action="restart_app"')) === 1) break;
  }
  assert.equal(valueOf(t, re('ds_gpu_xid_errors_total', 1, ',xid="79",action="restart_bm"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_xid_errors_total', 1, ',xid="13",action="restart_app"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_xid_errors_total', 0, ',xid="999",action="unknown"')), 2);
  // The driver reports a recovery action (none): an XID then only makes the GPU degraded.
  assert.equal(valueOf(t, re('ds_gpu_health', 1, ',verdict="degraded",action="investigate",reason="xid_79"')), 1);
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="degraded",action="investigate",reason="xid_999"')), 1);
  assert.equal(logs.filter((l) => l.includes('XID not in the catalog')).length, 1);
});

test('on a driver without the recovery action field, the XID catalog decides: XID 95 asks for a GPU reset', { skip }, async () => {
  const { metrics, tick, ctl } = await healthApp({ 'error.field.230': 3 });
  ctl.injectXid(0, 95);
  let t = '';
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 20));
    await tick();
    t = await metrics();
    if (valueOf(t, re('ds_gpu_xid_errors_total', 0, ',xid="95",action="reset_gpu"')) === 1) break;
  }
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="action_required",action="reset_gpu",reason="xid_95"')), 1);
  // After the hold time without another XID 95, the GPU is ok again.
  await tick(16 * 60_000);
  t = await metrics();
  assert.equal(valueOf(t, re('ds_gpu_health', 0, ',verdict="ok",action="none",reason="none"')), 1);
});
