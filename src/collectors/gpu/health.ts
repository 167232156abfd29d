/**
 * GPU health verdicts: the driver's health signals of one GPU (read by NVML, nvidia-smi or
 * the simulator into `GpuReading.health`), counters that follow the driver's across driver
 * reloads, and the documented rules (docs/gpu-health.md) that turn them into one verdict
 * per GPU. The rules are a pure function; `HealthTracker` keeps the little history they need.
 */
import type { Batch } from '../../core/store.js';
import type { Logger } from '../../core/logger.js';
import { xidAction, type XidAction } from '../../catalog/xid.js';
import type { GpuReading } from './source.js';

/** The driver's recommended recovery action (nvmlDeviceGpuRecoveryAction_t), by name. */
export type RecoveryAction = 'none' | 'gpu_reset' | 'node_reboot' | 'drain_p2p' | 'drain_and_reset' | 'recover_imex_domain' | 'unknown';

/** nvmlDeviceGpuRecoveryAction_t values of nvml.h (13.3), in order. */
export const RECOVERY_ACTIONS: readonly RecoveryAction[] = ['none', 'gpu_reset', 'node_reboot', 'drain_p2p', 'drain_and_reset', 'recover_imex_domain'];

/** The name of an nvmlDeviceGpuRecoveryAction_t value; `unknown` for a value nvml.h 13.3 does not define. */
export function recoveryActionOf(value: number): RecoveryAction {
  return Number.isInteger(value) && value >= 0 && value < RECOVERY_ACTIONS.length ? RECOVERY_ACTIONS[value] : 'unknown';
}

export type NvlinkErrorType = 'crc' | 'replay' | 'recovery';

/** One NVLink error counter of one link, as the driver counts it (since driver load). */
export interface NvlinkErrorCount {
  readonly link: number;
  readonly type: NvlinkErrorType;
  readonly value: number;
}

/**
 * Health signals of one GPU. Each field is undefined where the source cannot read it (not
 * supported, old driver, MIG mode): the metric is then absent, never zero.
 */
export interface GpuHealthReading {
  readonly recoveryAction?: RecoveryAction;
  /** The raw value behind an `unknown` recovery action, for the log. */
  readonly recoveryActionRaw?: number | string;
  readonly rowRemapPending?: boolean;
  readonly rowRemapFailed?: boolean;
  readonly remappedRowsCorrectable?: number;
  readonly remappedRowsUncorrectable?: number;
  readonly retiredPagesSingleBit?: number;
  readonly retiredPagesDoubleBit?: number;
  readonly retiredPagesPending?: boolean;
  readonly nvlinkErrors?: readonly NvlinkErrorCount[];
  /** PCIe replay counter (since driver load). */
  readonly pcieReplays?: number;
  readonly thermalMarginCelsius?: number;
}

export type Verdict = 'ok' | 'degraded' | 'action_required' | 'lost';
export type HealthAction = 'none' | 'investigate' | 'reset_gpu' | 'drain_p2p' | 'drain_and_reset' | 'reboot_node' | 'recover_imex_domain' | 'rma' | 'unknown';

/** The verdict of one GPU, the action it calls for and the signal that decided it. */
export interface HealthVerdict {
  readonly verdict: Verdict;
  readonly action: HealthAction;
  readonly reason: string;
}

/** What the rules look at: the latest reading and what rose within the hold window. */
export interface VerdictInput {
  readonly up: boolean;
  readonly health?: GpuHealthReading;
  readonly throttleReasons?: Readonly<Record<string, boolean>>;
  /** XIDs counted within the hold window. */
  readonly recentXids?: Iterable<number>;
  readonly nvlinkErrorsRose?: boolean;
  readonly pcieReplaysRose?: boolean;
  readonly eccUncorrectedRose?: boolean;
}

/** Retired pages at which NVIDIA's dynamic page retirement policy makes a GPU eligible for RMA. */
export const RETIRED_PAGES_RMA = 60;
/** How long a rise of an error counter or an XID keeps counting toward the verdict. */
export const HEALTH_HOLD_MS = 15 * 60_000;

const VERDICT_RANK: Record<Verdict, number> = { ok: 0, degraded: 1, action_required: 2, lost: 3 };
const ACTION_RANK: Record<HealthAction, number> = { none: 0, investigate: 1, unknown: 2, drain_p2p: 3, recover_imex_domain: 4, reset_gpu: 5, drain_and_reset: 6, reboot_node: 7, rma: 8 };

const FROM_RECOVERY: Record<Exclude<RecoveryAction, 'none'>, HealthAction> = {
  gpu_reset: 'reset_gpu', node_reboot: 'reboot_node', drain_p2p: 'drain_p2p', drain_and_reset: 'drain_and_reset', recover_imex_domain: 'recover_imex_domain', unknown: 'unknown',
};

/** What an XID of the catalog asks for when the driver does not report a recovery action itself. */
function xidFinding(action: XidAction): HealthVerdict['action'] | 'degraded' | undefined {
  switch (action) {
    case 'reset_gpu': case 'workflow_xid_48': return 'reset_gpu';
    case 'restart_bm': case 'restart_vm': return 'reboot_node';
    case 'contact_support': case 'check_mechanicals': case 'workflow_xid_45': case 'workflow_nvlink_err': case 'workflow_nvlink5_err': case 'unknown': return 'degraded';
    default: return undefined; // restart_app, ignore, xid_154: the GPU itself is fine
  }
}

/**
 * The verdict of one GPU by the rules of docs/gpu-health.md: every signal that applies
 * gives a finding, and the most severe finding wins (lost > action_required > degraded >
 * ok; within a verdict the more disruptive action, so an RMA is never hidden behind a reset).
 */
export function healthVerdict(i: VerdictInput): HealthVerdict {
  let best: HealthVerdict = { verdict: 'ok', action: 'none', reason: 'none' };
  const find = (verdict: Verdict, action: HealthAction, reason: string) => {
    const v = VERDICT_RANK[verdict] - VERDICT_RANK[best.verdict];
    if (v > 0 || (v === 0 && ACTION_RANK[action] > ACTION_RANK[best.action])) best = { verdict, action, reason };
  };
  if (!i.up) {
    find('lost', 'reboot_node', 'not_answering');
    return best;
  }
  const h = i.health ?? {};
  if (h.recoveryAction !== undefined && h.recoveryAction !== 'none') find('action_required', FROM_RECOVERY[h.recoveryAction], 'recovery_action');
  if (h.rowRemapFailed) find('action_required', 'rma', 'row_remap_failed');
  if (h.rowRemapPending) find('action_required', 'reset_gpu', 'row_remap_pending');
  if (h.retiredPagesPending) find('action_required', 'reboot_node', 'retired_pages_pending');
  if ((h.retiredPagesSingleBit ?? 0) + (h.retiredPagesDoubleBit ?? 0) >= RETIRED_PAGES_RMA) find('action_required', 'rma', 'retired_pages_limit');
  // Drivers that report a recovery action decide reset and reboot themselves; an XID then only marks the GPU degraded.
  const driverDecides = h.recoveryAction !== undefined;
  for (const xid of i.recentXids ?? []) {
    const f = xidFinding(xidAction(xid));
    if (f === undefined) continue;
    if (f === 'degraded' || driverDecides) find('degraded', 'investigate', `xid_${xid}`);
    else find('action_required', f, `xid_${xid}`);
  }
  if (i.nvlinkErrorsRose) find('degraded', 'investigate', 'nvlink_errors');
  if (i.pcieReplaysRose) find('degraded', 'investigate', 'pcie_replays');
  if (i.eccUncorrectedRose) find('degraded', 'investigate', 'ecc_uncorrected');
  if (h.thermalMarginCelsius !== undefined && h.thermalMarginCelsius <= 0) find('degraded', 'investigate', 'thermal_margin');
  const t = i.throttleReasons ?? {};
  if (t.hw_slowdown || t.hw_thermal_slowdown || t.hw_power_brake_slowdown) find('degraded', 'investigate', 'hw_slowdown');
  return best;
}

/**
 * Follows a device counter that counts since driver load: the exported total continues
 * across a driver reload (the counter starting again from a lower value) instead of
 * going backwards.
 */
export class CounterFollower {
  private last?: number;
  private offset = 0;
  /** Whether the last value fed rose above the one before, and whether it went backwards. */
  rose = false;
  reset = false;
  /** Feeds the driver's value; returns the continued total (`rose` and `reset` tell what happened). Allocates nothing. */
  feed(raw: number): number {
    const prev = this.last;
    this.last = raw;
    if (prev === undefined) {
      this.rose = this.reset = false;
      return raw;
    }
    if (raw < prev) {
      this.offset += prev;
      this.rose = raw > 0;
      this.reset = true;
    } else {
      this.rose = raw > prev;
      this.reset = false;
    }
    return this.offset + raw;
  }
}

/** Slot of each NVLink error type within a link's three. */
const NVLINK_TYPE_INDEX: Readonly<Record<NvlinkErrorType, number>> = { crc: 0, replay: 1, recovery: 2 };
/** Links per GPU the tracker follows (NVML_NVLINK_MAX_LINKS is 36 in nvml.h 13.3; room for more). */
const NVLINK_SLOT_LINKS = 64;

type L = Readonly<Record<string, string>>;

/**
 * One GPU's history and its label objects, made once: per sample, an unchanged GPU costs
 * no allocation (the store recognises an unchanged series by its label object).
 */
class GpuHealthState {
  readonly plain: L;
  /** NVLink counters and labels by slot (link × 3 + type). */
  readonly nvlink: Array<CounterFollower | undefined> = [];
  readonly nvlinkLabels: Array<L | undefined> = [];
  readonly pcie = new CounterFollower();
  readonly ecc = new CounterFollower();
  nvlinkRoseAt?: number;
  pcieRoseAt?: number;
  eccRoseAt?: number;
  /** XID code -> last count seen, when it last rose, and its labels. */
  readonly xids = new Map<number, { count: number; roseAt?: number; readonly labels: L }>();
  readonly recovery = new Map<string, L>();
  readonly verdicts = new Map<string, L>();
  readonly rowsCorrectable: L;
  readonly rowsUncorrectable: L;
  readonly pagesSingle: L;
  readonly pagesDouble: L;
  constructor(readonly gpu: string, readonly uuid: string) {
    this.plain = { gpu, uuid };
    this.rowsCorrectable = { gpu, uuid, cause: 'correctable' };
    this.rowsUncorrectable = { gpu, uuid, cause: 'uncorrectable' };
    this.pagesSingle = { gpu, uuid, cause: 'single_bit_ecc' };
    this.pagesDouble = { gpu, uuid, cause: 'double_bit_ecc' };
  }
  /** `extra` added to the GPU's labels, cached in `m` by `key` (bounded). */
  labels(m: Map<string, L>, key: string, extra: () => Record<string, string>): L {
    let l = m.get(key);
    if (!l) {
      if (m.size >= 256) m.clear();
      m.set(key, (l = { gpu: this.gpu, uuid: this.uuid, ...extra() }));
    }
    return l;
  }
}

/**
 * Writes the health series of each GPU and keeps the history the verdict needs: counter
 * followers, when each error class last rose, the XID counts. Logs once per GPU and kind
 * of trouble, never per sample.
 */
export class HealthTracker {
  private readonly gpus = new Map<string, GpuHealthState>();
  private readonly logged = new Set<string>();

  constructor(private readonly now: () => number, private readonly logger?: Logger, private readonly holdMs = HEALTH_HOLD_MS) {}

  /** Writes the XID counters, the verdict and (for a GPU that answered) every health signal. */
  write(batch: Batch, id: { gpu: string; uuid: string }, r: GpuReading): void {
    let st = this.gpus.get(id.uuid);
    if (!st || st.gpu !== id.gpu) {
      if (this.gpus.size >= 1024) this.gpus.clear();
      this.gpus.set(id.uuid, (st = new GpuHealthState(id.gpu, id.uuid)));
    }
    const now = this.now();
    let recentXids: number[] | undefined;
    if (r.xidCounts) {
      for (const [xid, n] of r.xidCounts) {
        let seen = st.xids.get(xid);
        if (!seen) {
          if (st.xids.size >= 4096) st.xids.clear();
          const action = xidAction(xid);
          st.xids.set(xid, (seen = { count: n, roseAt: n > 0 ? now : undefined, labels: { gpu: id.gpu, uuid: id.uuid, xid: String(xid), action } }));
        } else {
          if (n > seen.count) seen.roseAt = now;
          seen.count = n;
        }
        if (seen.labels.action === 'unknown' && n > 0) this.once(`${id.uuid}:xid:${xid}`, 'XID not in the catalog; counted with action "unknown"', { gpu: id.gpu, uuid: id.uuid, xid });
        batch.counter('ds_gpu_xid_errors_total', seen.labels, n);
      }
    }
    for (const [xid, x] of st.xids) if (x.roseAt !== undefined && now - x.roseAt <= this.holdMs) (recentXids ??= []).push(xid);
    const recent = (at: number | undefined) => at !== undefined && now - at <= this.holdMs;
    const h = r.up ? r.health : undefined;
    if (h) this.writeSignals(batch, h, st, now);
    if (r.up && r.eccUncorrected !== undefined) {
      st.ecc.feed(r.eccUncorrected);
      if (st.ecc.rose) st.eccRoseAt = now;
    }
    if (h?.recoveryAction === 'unknown') this.once(`${id.uuid}:recovery`, 'the driver reports a recovery action this exporter does not know; treating it as action required', { gpu: id.gpu, uuid: id.uuid, value: String(h.recoveryActionRaw ?? '') });
    const v = healthVerdict({
      up: r.up,
      health: h,
      throttleReasons: r.throttleReasons,
      recentXids,
      nvlinkErrorsRose: recent(st.nvlinkRoseAt),
      pcieReplaysRose: recent(st.pcieRoseAt),
      eccUncorrectedRose: recent(st.eccRoseAt),
    });
    batch.gauge('ds_gpu_health', st.labels(st.verdicts, `${v.verdict}\u0000${v.action}\u0000${v.reason}`, () => ({ verdict: v.verdict, action: v.action, reason: v.reason })), 1);
  }

  private writeSignals(batch: Batch, h: GpuHealthReading, st: GpuHealthState, now: number): void {
    const plain = st.plain;
    const ra = h.recoveryAction;
    if (ra !== undefined) batch.gauge('ds_gpu_recovery_action', st.labels(st.recovery, ra, () => ({ action: ra })), 1);
    if (h.rowRemapPending !== undefined) batch.gauge('ds_gpu_row_remap_pending', plain, h.rowRemapPending ? 1 : 0);
    if (h.rowRemapFailed !== undefined) batch.gauge('ds_gpu_row_remap_failed', plain, h.rowRemapFailed ? 1 : 0);
    if (h.remappedRowsCorrectable !== undefined) batch.gauge('ds_gpu_remapped_rows', st.rowsCorrectable, h.remappedRowsCorrectable);
    if (h.remappedRowsUncorrectable !== undefined) batch.gauge('ds_gpu_remapped_rows', st.rowsUncorrectable, h.remappedRowsUncorrectable);
    if (h.retiredPagesSingleBit !== undefined) batch.gauge('ds_gpu_retired_pages', st.pagesSingle, h.retiredPagesSingleBit);
    if (h.retiredPagesDoubleBit !== undefined) batch.gauge('ds_gpu_retired_pages', st.pagesDouble, h.retiredPagesDoubleBit);
    if (h.retiredPagesPending !== undefined) batch.gauge('ds_gpu_retired_pages_pending', plain, h.retiredPagesPending ? 1 : 0);
    if (h.thermalMarginCelsius !== undefined) batch.gauge('ds_gpu_thermal_margin_celsius', plain, h.thermalMarginCelsius);
    const nv = h.nvlinkErrors;
    if (nv) {
      for (let i = 0; i < nv.length; i++) {
        const e = nv[i];
        const t = NVLINK_TYPE_INDEX[e.type];
        if (t === undefined || !(e.link >= 0 && e.link < NVLINK_SLOT_LINKS && Number.isInteger(e.link))) continue;
        const slot = e.link * 3 + t;
        let f = st.nvlink[slot];
        if (!f) {
          st.nvlink[slot] = f = new CounterFollower();
          st.nvlinkLabels[slot] = { gpu: st.gpu, uuid: st.uuid, link: String(e.link), type: e.type };
        }
        const total = f.feed(e.value);
        if (f.reset) this.once(`${st.uuid}:nvlink`, 'an NVLink error counter went backwards (driver reloaded?); its total continues from the new value', { gpu: st.gpu, uuid: st.uuid, link: e.link, type: e.type });
        if (f.rose) st.nvlinkRoseAt = now;
        batch.counter('ds_gpu_nvlink_errors_total', st.nvlinkLabels[slot]!, total);
      }
    }
    if (h.pcieReplays !== undefined) {
      const total = st.pcie.feed(h.pcieReplays);
      if (st.pcie.reset) this.once(`${st.uuid}:pcie`, 'the PCIe replay counter went backwards (driver reloaded?); its total continues from the new value', { gpu: st.gpu, uuid: st.uuid });
      if (st.pcie.rose) st.pcieRoseAt = now;
      batch.counter('ds_gpu_pcie_replays_total', plain, total);
    }
  }

  private once(key: string, msg: string, ctx: Record<string, unknown>): void {
    if (this.logged.has(key)) return;
    if (this.logged.size >= 4096) this.logged.clear();
    this.logged.add(key);
    this.logger?.warn(msg, ctx);
  }
}
