import type { GpuHealthReading, RecoveryAction } from './health.js';
import type { GpuReading } from './source.js';

/**
 * Pure parsing for the nvidia-smi GPU source: the `--help-query-gpu` field list, the
 * `--query-gpu ... --format=csv,noheader,nounits` lines, and their mapping to GpuReading.
 * No I/O here; smi.ts runs the process.
 */

/** Longest CSV line accepted; anything longer is garbage (a real line is well under 4 KiB). */
export const MAX_LINE_LENGTH = 16_384;

const MIB = 1024 * 1024;

/** Clock-event reasons in NVML's naming; nvidia-smi uses the same words after the prefix. */
export const THROTTLE_REASONS = [
  'gpu_idle',
  'applications_clocks_setting',
  'sw_power_cap',
  'hw_slowdown',
  'sync_boost',
  'sw_thermal_slowdown',
  'hw_thermal_slowdown',
  'hw_power_brake_slowdown',
] as const;

/**
 * Every field name `nvidia-smi --help-query-gpu` lists, aliases included: the lines that
 * start with a quoted name, e.g. `"clocks_event_reasons.gpu_idle" or "clocks_throttle_reasons.gpu_idle"`.
 */
export function parseHelpQueryGpu(text: string): Set<string> {
  const out = new Set<string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line.startsWith('"')) continue;
    for (const m of line.matchAll(/"([A-Za-z0-9_.\-]+)"/g)) out.add(m[1]);
  }
  return out;
}

/** A field we query and what it becomes. */
export interface FieldPlan {
  /** The field names, in query (and so column) order. */
  readonly fields: readonly string[];
  /** Prefix used for the clock-event flags (`clocks_event_reasons` or `clocks_throttle_reasons`), if any. */
  readonly reasonPrefix?: string;
}

/** Identity fields the source cannot work without. */
export const REQUIRED_FIELDS = ['index', 'uuid'] as const;

const WANTED: readonly (readonly string[])[] = [
  ['timestamp'],
  ['index'],
  ['uuid', 'gpu_uuid'],
  ['name', 'gpu_name'],
  ['pci.bus_id', 'gpu_bus_id'],
  ['driver_version'],
  ['mig.mode.current'],
  ['utilization.gpu'],
  ['utilization.memory'],
  ['memory.total'],
  ['memory.used'],
  ['memory.free'],
  ['power.draw', 'power.draw.instant'],
  ['enforced.power.limit', 'power.limit'],
  ['total_energy_consumption'],
  ['temperature.gpu'],
  ['temperature.memory'],
  ['clocks.current.sm', 'clocks.sm'],
  ['clocks.current.memory', 'clocks.mem'],
  ['ecc.errors.corrected.volatile.total'],
  ['ecc.errors.uncorrected.volatile.total'],
  // Health (docs/gpu-health.md): CSV fields only, so the one long-lived query stays the only call.
  ['gpu_recovery_action'],
  ['remapped_rows.correctable', 'remapped_rows.sbe'],
  ['remapped_rows.uncorrectable', 'remapped_rows.dbe'],
  ['remapped_rows.pending'],
  ['remapped_rows.failure'],
  ['retired_pages.single_bit_ecc.count', 'retired_pages.sbe'],
  ['retired_pages.double_bit.count', 'retired_pages.dbe'],
  ['retired_pages.pending'],
  ['temperature.gpu.tlimit'],
];

/**
 * Chooses the fields to query from what the driver offers: only those we map, the first
 * spelling the driver knows for each, the newer `clocks_event_reasons` over the older
 * `clocks_throttle_reasons`.
 */
export function planFields(supported: ReadonlySet<string>): FieldPlan {
  const fields: string[] = [];
  for (const alternatives of WANTED) {
    const f = alternatives.find((a) => supported.has(a));
    if (f) fields.push(f);
  }
  const reasonPrefix = ['clocks_event_reasons', 'clocks_throttle_reasons'].find((p) => THROTTLE_REASONS.some((r) => supported.has(`${p}.${r}`)));
  if (reasonPrefix) for (const r of THROTTLE_REASONS) if (supported.has(`${reasonPrefix}.${r}`)) fields.push(`${reasonPrefix}.${r}`);
  for (const r of THROTTLE_REASONS) if (supported.has(`clocks_event_reasons_counters.${r}`)) fields.push(`clocks_event_reasons_counters.${r}`);
  return { fields, reasonPrefix };
}

/** One parsed CSV value. */
export type SmiValue =
  | { readonly kind: 'number'; readonly value: number; readonly raw: string }
  | { readonly kind: 'text'; readonly value: string }
  /** `[N/A]`, `[Not Supported]`, `[Insufficient Permissions]`, `N/A`, empty, ...: not readable. */
  | { readonly kind: 'missing'; readonly value: string }
  /** `[GPU is lost]`, `[Unknown Error]`: the device is failing. */
  | { readonly kind: 'error'; readonly value: string };

const MISSING = /^(\[?N\/A\]?|\[Not Supported\]|\[Insufficient Permissions\]|\[Requested functionality has been deprecated\]|\[Not Found\]|)$/i;
const FAILING = /^\[(GPU is lost|Unknown Error|GPU requires reset|Driver\/library version mismatch)\]$/i;

/** Parses one CSV cell. Numbers may carry a unit suffix (when `nounits` was not honoured) or be hex. */
export function parseValue(raw: string): SmiValue {
  const s = raw.trim();
  if (MISSING.test(s)) return { kind: 'missing', value: s };
  if (FAILING.test(s)) return { kind: 'error', value: s };
  if (/^\[.*\]$/.test(s)) return { kind: 'missing', value: s };
  if (/^0x[0-9a-f]+$/i.test(s)) {
    const v = Number.parseInt(s.slice(2), 16);
    return Number.isFinite(v) ? { kind: 'number', value: v, raw: s } : { kind: 'text', value: s };
  }
  const m = /^(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?:\s*(?:%|MiB|MHz|W|J|mJ|C|us))?$/.exec(s);
  if (m) {
    const v = Number(m[1]);
    if (Number.isFinite(v)) return { kind: 'number', value: v, raw: s };
  }
  return { kind: 'text', value: s };
}

/** One GPU line of the query, by field name. */
export interface SmiRow {
  readonly values: ReadonlyMap<string, SmiValue>;
}

/** Result of parsing one line: a row, or why it is unusable. */
export type LineResult = { readonly ok: true; readonly row: SmiRow } | { readonly ok: false; readonly error: string };

/**
 * Parses one line of `--format=csv,noheader,nounits` output for the given fields. The
 * separator is `", "`; GPU names and UUIDs hold no commas, so a line whose cell count
 * differs from the field count is rejected rather than guessed at.
 */
export function parseCsvLine(line: string, fields: readonly string[]): LineResult {
  if (line.length > MAX_LINE_LENGTH) return { ok: false, error: `line of ${line.length} characters exceeds ${MAX_LINE_LENGTH}` };
  const text = line.replace(/\r$/, '');
  const cells = text.split(',');
  if (cells.length !== fields.length) return { ok: false, error: `CSV column count ${cells.length} != ${fields.length} requested` };
  const values = new Map<string, SmiValue>();
  fields.forEach((f, i) => values.set(f, parseValue(cells[i])));
  const index = values.get('index');
  if (index?.kind !== 'number' || !Number.isInteger(index.value) || index.value < 0) return { ok: false, error: `GPU index ${JSON.stringify(cells[fields.indexOf('index')]?.trim() ?? '')} is not a number` };
  const uuid = textOf(values.get('uuid') ?? values.get('gpu_uuid'));
  if (!uuid || !/^(GPU|MIG)-[0-9A-Za-z-]+$/.test(uuid)) return { ok: false, error: `GPU UUID ${JSON.stringify(uuid ?? '')} is not a UUID` };
  return { ok: true, row: { values } };
}

function textOf(v: SmiValue | undefined): string | undefined {
  if (!v) return undefined;
  return v.kind === 'number' ? v.raw : v.value;
}

function num(row: SmiRow, ...names: string[]): number | undefined {
  for (const n of names) {
    const v = row.values.get(n);
    if (v?.kind === 'number') return v.value;
  }
  return undefined;
}

function str(row: SmiRow, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = row.values.get(n);
    if (v && v.kind !== 'missing' && v.kind !== 'error') return textOf(v);
  }
  return undefined;
}

/**
 * The `timestamp` column in milliseconds ("YYYY/MM/DD HH:MM:SS.mmm", local time of the
 * driver host); only differences between lines are used, so the zone does not matter.
 */
export function parseSmiTimestamp(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/.exec(s.trim());
  if (!m) return undefined;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], m[7] ? Number(m[7].padEnd(3, '0')) : 0);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Timestamp of a row (the driver's own clock), when it was queried. */
export function rowTimestamp(row: SmiRow): number | undefined {
  return parseSmiTimestamp(str(row, 'timestamp'));
}

/** Extra values the integration in smi.ts adds to a row's reading. */
export interface RowExtras {
  readonly busySecondsDelta?: number;
  readonly memoryBusySecondsDelta?: number;
}

/** Maps one parsed row to a GpuReading: MiB to bytes, % to ratio, MHz to Hz, us to s. */
export function rowToReading(row: SmiRow, plan: FieldPlan, extras: RowExtras = {}): GpuReading {
  const ratio = (v: number | undefined) => (v === undefined ? undefined : v / 100);
  const mib = (v: number | undefined) => (v === undefined ? undefined : v * MIB);
  const hz = (v: number | undefined) => (v === undefined ? undefined : v * 1e6);
  const failing = [...row.values.values()].some((v) => v.kind === 'error');
  const mig = str(row, 'mig.mode.current');
  const device = {
    index: num(row, 'index')!,
    uuid: str(row, 'uuid', 'gpu_uuid')!,
    name: str(row, 'name', 'gpu_name') ?? '',
    pciBusId: str(row, 'pci.bus_id', 'gpu_bus_id') ?? '',
    driverVersion: str(row, 'driver_version') ?? '',
    migMode: mig === 'Enabled' || mig === 'Disabled' ? mig : 'N/A',
  };
  if (failing) return { device, up: false };
  let throttleReasons: Record<string, boolean> | undefined;
  if (plan.reasonPrefix) {
    for (const r of THROTTLE_REASONS) {
      const v = str(row, `${plan.reasonPrefix}.${r}`);
      if (v === 'Active' || v === 'Not Active') (throttleReasons ??= {})[r] = v === 'Active';
    }
  }
  let throttleSeconds: Record<string, number> | undefined;
  for (const r of THROTTLE_REASONS) {
    const us = num(row, `clocks_event_reasons_counters.${r}`);
    if (us !== undefined) (throttleSeconds ??= {})[r] = us / 1e6;
  }
  const util = ratio(num(row, 'utilization.gpu'));
  const memUtil = ratio(num(row, 'utilization.memory'));
  return {
    device,
    up: true,
    utilization: util,
    memoryControllerUtilization: memUtil,
    busySecondsDelta: util === undefined ? undefined : extras.busySecondsDelta,
    memoryBusySecondsDelta: memUtil === undefined ? undefined : extras.memoryBusySecondsDelta,
    utilizationMethod: util === undefined ? undefined : 'point',
    memoryUsedBytes: mib(num(row, 'memory.used')),
    memoryFreeBytes: mib(num(row, 'memory.free')),
    memoryTotalBytes: mib(num(row, 'memory.total')),
    powerWatts: num(row, 'power.draw', 'power.draw.instant'),
    powerLimitWatts: num(row, 'enforced.power.limit', 'power.limit'),
    energyJoules: num(row, 'total_energy_consumption'),
    temperatureCelsius: num(row, 'temperature.gpu'),
    memoryTemperatureCelsius: num(row, 'temperature.memory'),
    smClockHz: hz(num(row, 'clocks.current.sm', 'clocks.sm')),
    memoryClockHz: hz(num(row, 'clocks.current.memory', 'clocks.mem')),
    throttleReasons,
    throttleSeconds,
    eccCorrected: num(row, 'ecc.errors.corrected.volatile.total'),
    eccUncorrected: num(row, 'ecc.errors.uncorrected.volatile.total'),
    health: rowHealth(row),
  };
}

/**
 * nvidia-smi's words for the recovery action (`gpu_recovery_action`, also "GPU Recovery
 * Action" in `-q`) to NVML's names; any other text is `unknown`.
 */
export function smiRecoveryAction(text: string): RecoveryAction {
  const t = text.trim().toLowerCase().replace(/[\s_-]+/g, ' ');
  if (t === 'none') return 'none';
  if (/drain.*reset/.test(t)) return 'drain_and_reset';
  if (/drain/.test(t)) return 'drain_p2p';
  if (/imex/.test(t)) return 'recover_imex_domain';
  if (/reboot/.test(t)) return 'node_reboot';
  if (/reset/.test(t)) return 'gpu_reset';
  return 'unknown';
}

/** "Yes"/"No" (also 1/0) of a CSV cell; undefined for anything else. */
function yesNo(row: SmiRow, name: string): boolean | undefined {
  const v = row.values.get(name);
  if (v?.kind === 'number') return v.value === 1 ? true : v.value === 0 ? false : undefined;
  if (v?.kind !== 'text') return undefined;
  const t = v.value.toLowerCase();
  return t === 'yes' ? true : t === 'no' ? false : undefined;
}

/** The health signals of a row; undefined when the driver offers none of them. */
function rowHealth(row: SmiRow): GpuHealthReading | undefined {
  const action = str(row, 'gpu_recovery_action');
  const h: { -readonly [K in keyof GpuHealthReading]: GpuHealthReading[K] } = {};
  if (action !== undefined) {
    h.recoveryAction = smiRecoveryAction(action);
    if (h.recoveryAction === 'unknown') h.recoveryActionRaw = action.slice(0, 64);
  }
  h.remappedRowsCorrectable = num(row, 'remapped_rows.correctable', 'remapped_rows.sbe');
  h.remappedRowsUncorrectable = num(row, 'remapped_rows.uncorrectable', 'remapped_rows.dbe');
  h.rowRemapPending = yesNo(row, 'remapped_rows.pending');
  h.rowRemapFailed = yesNo(row, 'remapped_rows.failure');
  h.retiredPagesSingleBit = num(row, 'retired_pages.single_bit_ecc.count', 'retired_pages.sbe');
  h.retiredPagesDoubleBit = num(row, 'retired_pages.double_bit.count', 'retired_pages.dbe');
  h.retiredPagesPending = yesNo(row, 'retired_pages.pending');
  h.thermalMarginCelsius = num(row, 'temperature.gpu.tlimit');
  return Object.values(h).some((v) => v !== undefined) ? h : undefined;
}

/**
 * Splits a byte stream into lines with bounded memory: a line longer than the limit is
 * dropped (reported once as `overlong`) and its remainder skipped up to the next newline.
 */
export class LineSplitter {
  private buf = '';
  private skipping = false;
  constructor(private readonly maxLength = MAX_LINE_LENGTH) {}

  /** Feeds a chunk; returns the complete lines in it and how many overlong lines were dropped. */
  push(chunk: string): { lines: string[]; overlong: number } {
    const lines: string[] = [];
    let overlong = 0;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        this.buf = '';
        continue;
      }
      const line = this.buf + piece;
      this.buf = '';
      if (line.length > this.maxLength) overlong++;
      else lines.push(line);
    }
    if (!this.skipping) {
      this.buf += chunk.slice(start);
      if (this.buf.length > this.maxLength) {
        this.buf = '';
        this.skipping = true;
        overlong++;
      }
    }
    return { lines, overlong };
  }

  /** The unfinished tail, if any (a partial line is never parsed as a row). */
  get pending(): number {
    return this.buf.length;
  }
}

/** Longest `nvidia-smi -q` output read (a real one is about 15 KiB per GPU). */
export const MAX_QUERY_BYTES = 4 * 1024 * 1024;

/**
 * PCIe replay counters from `nvidia-smi -q` (the CSV query has no field for them), by PCI
 * bus id in upper case: the "Replays Since Reset" line under each `GPU <bus id>` header.
 * Pure; lines it does not know are skipped, a value that is not a whole number leaves
 * that GPU out.
 */
export function parseQueryPcieReplays(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let gpu: string | undefined;
  for (const line of text.slice(0, MAX_QUERY_BYTES).split(/\r?\n/)) {
    const h = /^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*$/.exec(line);
    if (h) {
      gpu = h[1].toUpperCase();
      continue;
    }
    const m = /^\s+Replays Since Reset\s*:\s*(\S.*?)\s*$/.exec(line);
    if (m && gpu !== undefined && /^\d{1,15}$/.test(m[1])) out.set(gpu, Number(m[1]));
  }
  return out;
}
