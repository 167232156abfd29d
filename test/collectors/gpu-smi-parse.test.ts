import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { LineSplitter, MAX_LINE_LENGTH, parseCsvLine, parseHelpQueryGpu, parseSmiTimestamp, parseValue, planFields, rowToReading } from '../../src/collectors/gpu/smi-parse.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'nvidia-smi');
const CAPTURES = ['h100-80gb-hbm3__590.48.01.txt', 'h100-mig__590.48.01.txt', 'l40s__595.80.txt'];

function helpSection(file: string): string {
  const text = readFileSync(join(FIX, file), 'utf8');
  const start = text.indexOf('# $ nvidia-smi --help-query-gpu');
  const body = text.slice(text.indexOf('\n', text.indexOf('\n', start) + 1) + 1);
  return body.slice(0, body.indexOf('\n####'));
}

test('parseHelpQueryGpu reads every field and alias of the real captures', () => {
  for (const c of CAPTURES) {
    const f = parseHelpQueryGpu(helpSection(c));
    assert.ok(f.size > 200, `${c}: ${f.size} fields`);
    for (const name of ['index', 'uuid', 'gpu_uuid', 'utilization.gpu', 'memory.used', 'clocks_event_reasons.sw_power_cap', 'clocks_throttle_reasons.sw_power_cap', 'clocks_event_reasons_counters.sw_thermal_slowdown', 'clocks.sm'])
      assert.ok(f.has(name), `${c}: ${name}`);
    assert.ok(!f.has('YYYY/MM/DD HH:MM:SS.msec'), 'quoted prose is not a field');
  }
});

test('planFields queries only mapped fields, preferring clocks_event_reasons', () => {
  const plan = planFields(parseHelpQueryGpu(helpSection(CAPTURES[0])));
  assert.equal(plan.reasonPrefix, 'clocks_event_reasons');
  assert.ok(plan.fields.includes('clocks_event_reasons.hw_power_brake_slowdown'));
  assert.ok(plan.fields.includes('clocks_event_reasons_counters.sw_power_cap'));
  assert.ok(!plan.fields.includes('total_energy_consumption'), 'not offered by this driver');
  assert.ok(!plan.fields.some((f) => f.startsWith('clocks_throttle_reasons')));
  assert.deepEqual(plan.fields.slice(0, 3), ['timestamp', 'index', 'uuid']);
  // An older driver knows only the throttle spelling and no counters.
  const old = planFields(new Set(['index', 'uuid', 'utilization.gpu', 'clocks_throttle_reasons.gpu_idle', 'clocks_throttle_reasons.hw_slowdown', 'power.draw', 'total_energy_consumption']));
  assert.equal(old.reasonPrefix, 'clocks_throttle_reasons');
  assert.deepEqual(old.fields, ['index', 'uuid', 'utilization.gpu', 'power.draw', 'total_energy_consumption', 'clocks_throttle_reasons.gpu_idle', 'clocks_throttle_reasons.hw_slowdown']);
});

test('parseValue: missing markers, errors, hex, units', () => {
  for (const s of ['[N/A]', 'N/A', '[Not Supported]', '[Insufficient Permissions]', '', ' ', '[Requested functionality has been deprecated]']) assert.equal(parseValue(s).kind, 'missing', s);
  for (const s of ['[Unknown Error]', '[GPU is lost]']) assert.equal(parseValue(s).kind, 'error', s);
  assert.deepEqual(parseValue('0x0000000000000001'), { kind: 'number', value: 1, raw: '0x0000000000000001' });
  assert.deepEqual(parseValue('0x00000000000001FF'), { kind: 'number', value: 511, raw: '0x00000000000001FF' });
  assert.deepEqual(parseValue(' 69.85'), { kind: 'number', value: 69.85, raw: '69.85' });
  assert.deepEqual(parseValue('69.85 W'), { kind: 'number', value: 69.85, raw: '69.85 W' });
  assert.deepEqual(parseValue('Not Active'), { kind: 'text', value: 'Not Active' });
  assert.deepEqual(parseValue('Enabled'), { kind: 'text', value: 'Enabled' });
  assert.equal(parseValue('12abc').kind, 'text');
});

test('parseSmiTimestamp', () => {
  assert.equal(parseSmiTimestamp('2026/07/14 08:12:53.353')! - parseSmiTimestamp('2026/07/14 08:12:38.696')!, 14_657);
  assert.equal(parseSmiTimestamp('garbage'), undefined);
});

const FIELDS = ['timestamp', 'index', 'uuid', 'name', 'pci.bus_id', 'mig.mode.current', 'utilization.gpu', 'memory.used', 'memory.total', 'power.draw', 'clocks.current.sm', 'clocks_event_reasons.sw_power_cap', 'clocks_event_reasons.gpu_idle', 'clocks_event_reasons_counters.sw_power_cap'];
const LINE = '2026/07/14 08:12:38.696, 3, GPU-00000000-0000-0000-0000-000000000003, NVIDIA H100 80GB HBM3, 00000000:00:09.0, Disabled, 37, 19818, 81559, 631.95, 1980, Active, Not Active, 200740215';

test('parseCsvLine + rowToReading convert units and map reasons', () => {
  const r = parseCsvLine(LINE, FIELDS);
  assert.ok(r.ok);
  const plan = { fields: FIELDS, reasonPrefix: 'clocks_event_reasons' };
  const g = rowToReading(r.row, plan, { busySecondsDelta: 0.5 });
  assert.equal(g.device.index, 3);
  assert.equal(g.device.migMode, 'Disabled');
  const dv = parseCsvLine('595.80, 0, GPU-1', ['driver_version', 'index', 'uuid']);
  assert.ok(dv.ok);
  assert.equal(rowToReading(dv.row, { fields: [] }).device.driverVersion, '595.80', 'text fields keep their spelling');
  assert.equal(g.utilization, 0.37);
  assert.equal(g.memoryUsedBytes, 19818 * 1024 * 1024);
  assert.equal(g.powerWatts, 631.95);
  assert.equal(g.smClockHz, 1980e6);
  assert.deepEqual(g.throttleReasons, { sw_power_cap: true, gpu_idle: false });
  assert.deepEqual(g.throttleSeconds, { sw_power_cap: 200.740215 });
  assert.equal(g.busySecondsDelta, 0.5);
  assert.equal(g.utilizationMethod, 'point');
  // Failing device: up=0, nothing else.
  const lost = parseCsvLine(LINE.replace('19818', '[GPU is lost]'), FIELDS);
  assert.ok(lost.ok);
  assert.equal(rowToReading(lost.row, plan).up, false);
  // Unreadable values are absent, never zero.
  const na = parseCsvLine(LINE.replace(', 37,', ', [N/A],').replace('631.95', '[Not Supported]'), FIELDS);
  assert.ok(na.ok);
  const n = rowToReading(na.row, plan, { busySecondsDelta: 1 });
  assert.equal(n.utilization, undefined);
  assert.equal(n.busySecondsDelta, undefined);
  assert.equal(n.powerWatts, undefined);
});

test('parseCsvLine rejects ragged, partial, garbage and huge lines', () => {
  assert.equal(parseCsvLine(LINE + ', 1', FIELDS).ok, false);
  assert.equal(parseCsvLine(LINE.slice(0, 40), FIELDS).ok, false);
  assert.equal(parseCsvLine('\u0000garbage, ,,, [x', FIELDS).ok, false);
  assert.equal(parseCsvLine(LINE.replace(', 3,', ', x,'), FIELDS).ok, false);
  assert.equal(parseCsvLine(LINE.replace('GPU-0000', 'nope'), FIELDS).ok, false);
  assert.equal(parseCsvLine('x'.repeat(MAX_LINE_LENGTH + 1), FIELDS).ok, false);
});

test('fuzz: parseCsvLine never throws and only accepts well-formed rows (10,000 runs)', () => {
  const cell = fc.oneof(fc.constantFrom('[N/A]', '[Not Supported]', '[Insufficient Permissions]', '[Unknown Error]', 'N/A', '0x0000000000000001', 'Active', 'Not Active', 'Enabled', 'Disabled', '', '12', '3.5', '-1', '1e400'), fc.string({ maxLength: 12 }));
  fc.assert(
    fc.property(fc.array(cell, { maxLength: 20 }), fc.boolean(), (cells, realIndex) => {
      if (realIndex && cells.length > 2) {
        cells[1] = '7';
        cells[2] = 'GPU-1234';
      }
      const line = cells.join(', ');
      const r = parseCsvLine(line, FIELDS);
      if (r.ok) {
        assert.equal(line.split(',').length, FIELDS.length);
        const g = rowToReading(r.row, { fields: FIELDS, reasonPrefix: 'clocks_event_reasons' });
        for (const v of [g.utilization, g.memoryUsedBytes, g.powerWatts, g.smClockHz]) if (v !== undefined) assert.ok(Number.isFinite(v));
      } else assert.equal(typeof r.error, 'string');
    }),
    { numRuns: 10_000 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), (s) => {
      const r = parseCsvLine(s, FIELDS);
      assert.ok(typeof r.ok === 'boolean');
    }),
    { numRuns: 10_000 },
  );
});

test('fuzz: LineSplitter yields the same lines as split, bounded, in any chunking (10,000 runs)', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 30 }), { maxLength: 10 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }), (lines, cuts) => {
      const text = lines.map((l) => l.replace(/\n/g, '') + '\n').join('');
      const sp = new LineSplitter(25);
      const got: string[] = [];
      let dropped = 0;
      let pos = 0;
      let i = 0;
      while (pos < text.length) {
        const n = cuts[i++ % cuts.length];
        const r = sp.push(text.slice(pos, pos + n));
        got.push(...r.lines);
        dropped += r.overlong;
        pos += n;
        assert.ok(sp.pending <= 25);
      }
      const want = text.split('\n').slice(0, -1);
      assert.deepEqual(got, want.filter((l) => l.length <= 25));
      assert.equal(dropped, want.filter((l) => l.length > 25).length);
    }),
    { numRuns: 10_000 },
  );
});
