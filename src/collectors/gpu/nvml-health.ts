/**
 * The NVML calls behind the GPU health signals: the driver's recovery action (field
 * value), row remapping, retired pages, NVLink error counters per link, the PCIe replay
 * counter and the thermal margin. Every enum value, field id and struct layout used here is
 * listed in `nvmlHealthAbi` and checked against NVIDIA's nvml.h (13.3).
 */
import type { AbiFacts } from './nvml-abi.js';
import { NVML } from './nvml-helpers.js';
import { recoveryActionOf, type GpuHealthReading, type NvlinkErrorCount, type NvlinkErrorType } from './health.js';

/** Prototypes of the health calls, merged into the NVML binding's table (newest symbol first). */
export const NVML_HEALTH_PROTOS: Record<string, string[]> = {
  remappedRows: ['int nvmlDeviceGetRemappedRows(void *device, void *corrRows, void *uncRows, void *isPending, void *failureOccurred)'],
  retiredPages: ['int nvmlDeviceGetRetiredPages(void *device, int cause, void *pageCount, void *addresses)'],
  retiredPending: ['int nvmlDeviceGetRetiredPagesPendingStatus(void *device, void *isPending)'],
  nvlinkErrorCounter: ['int nvmlDeviceGetNvLinkErrorCounter(void *device, uint32_t link, int counter, void *counterValue)'],
  pcieReplays: ['int nvmlDeviceGetPcieReplayCounter(void *device, void *value)'],
  marginTemperature: ['int nvmlDeviceGetMarginTemperature(void *device, void *marginTempInfo)'],
};

export const FI_DEV_NVLINK_LINK_COUNT = 91;
export const FI_DEV_NVLINK_ERROR_DL_REPLAY = 161;
export const FI_DEV_NVLINK_ERROR_DL_RECOVERY = 162;
export const FI_DEV_NVLINK_ERROR_DL_CRC = 163;
export const FI_DEV_GET_GPU_RECOVERY_ACTION = 230;
export const NVLINK_MAX_LINKS = 36;
const PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0;
const PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1;
const NVLINK_ERROR_DL_REPLAY = 0;
const NVLINK_ERROR_DL_RECOVERY = 1;
const NVLINK_ERROR_DL_CRC_FLIT = 2;
const FEATURE_ENABLED = 1;
/** sizeof(nvmlMarginTemperature_v1_t): unsigned int version; int marginTemperature. */
export const MARGIN_TEMPERATURE_V1_SIZE = 8;
/** nvmlMarginTemperature_v1 = NVML_STRUCT_VERSION(MarginTemperature, 1). */
export const MARGIN_TEMPERATURE_V1 = MARGIN_TEMPERATURE_V1_SIZE | (1 << 24);

/** The NVLink error fields (scope: the link) and the counters of nvmlDeviceGetNvLinkErrorCounter, by type. */
const NVLINK_FIELDS: ReadonlyArray<readonly [NvlinkErrorType, number, number]> = [
  ['replay', FI_DEV_NVLINK_ERROR_DL_REPLAY, NVLINK_ERROR_DL_REPLAY],
  ['recovery', FI_DEV_NVLINK_ERROR_DL_RECOVERY, NVLINK_ERROR_DL_RECOVERY],
  ['crc', FI_DEV_NVLINK_ERROR_DL_CRC, NVLINK_ERROR_DL_CRC_FLIT],
];

/** What this module assumes about nvml.h; checked by compiling against the header. */
export const nvmlHealthAbi: AbiFacts = [
  { kind: 'const', name: 'NVML_FI_DEV_NVLINK_LINK_COUNT', value: FI_DEV_NVLINK_LINK_COUNT },
  { kind: 'const', name: 'NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY', value: FI_DEV_NVLINK_ERROR_DL_REPLAY },
  { kind: 'const', name: 'NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY', value: FI_DEV_NVLINK_ERROR_DL_RECOVERY },
  { kind: 'const', name: 'NVML_FI_DEV_NVLINK_ERROR_DL_CRC', value: FI_DEV_NVLINK_ERROR_DL_CRC },
  { kind: 'const', name: 'NVML_FI_DEV_GET_GPU_RECOVERY_ACTION', value: FI_DEV_GET_GPU_RECOVERY_ACTION },
  { kind: 'const', name: 'NVML_NVLINK_MAX_LINKS', value: NVLINK_MAX_LINKS },
  { kind: 'const', name: 'NVML_GPU_RECOVERY_ACTION_NONE', value: 0 },
  { kind: 'const', name: 'NVML_GPU_RECOVERY_ACTION_GPU_RESET', value: 1 },
  { kind: 'const', name: 'NVML_GPU_RECOVERY_ACTION_NODE_REBOOT', value: 2 },
  { kind: 'const', name: 'NVML_GPU_RECOVERY_ACTION_DRAIN_P2P', value: 3 },
  { kind: 'const', name: 'NVML_GPU_RECOVERY_ACTION_DRAIN_AND_RESET', value: 4 },
  { kind: 'const', name: 'NVML_GPU_RECOVERY_ACTION_RECOVER_IMEX_DOMAIN', value: 5 },
  { kind: 'const', name: 'NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS', value: PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS },
  { kind: 'const', name: 'NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR', value: PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR },
  { kind: 'const', name: 'NVML_NVLINK_ERROR_DL_REPLAY', value: NVLINK_ERROR_DL_REPLAY },
  { kind: 'const', name: 'NVML_NVLINK_ERROR_DL_RECOVERY', value: NVLINK_ERROR_DL_RECOVERY },
  { kind: 'const', name: 'NVML_NVLINK_ERROR_DL_CRC_FLIT', value: NVLINK_ERROR_DL_CRC_FLIT },
  { kind: 'const', name: 'NVML_FEATURE_ENABLED', value: FEATURE_ENABLED },
  { kind: 'const', name: 'NVML_ERROR_INSUFFICIENT_SIZE', value: NVML.ERROR_INSUFFICIENT_SIZE },
  { kind: 'const', name: 'NVML_ERROR_ARGUMENT_VERSION_MISMATCH', value: 25 },
  { kind: 'sizeof', type: 'nvmlEnableState_t', value: 4 },
  { kind: 'sizeof', type: 'nvmlMarginTemperature_v1_t', value: MARGIN_TEMPERATURE_V1_SIZE },
  { kind: 'offsetof', type: 'nvmlMarginTemperature_v1_t', field: 'version', value: 0 },
  { kind: 'offsetof', type: 'nvmlMarginTemperature_v1_t', field: 'marginTemperature', value: 4 },
  { kind: 'const', name: 'nvmlMarginTemperature_v1', value: MARGIN_TEMPERATURE_V1 },
];

type HealthFn = (...args: unknown[]) => number;

/** What the health reads need from the NVML source, for one GPU. */
export interface NvmlHealthPort {
  /** A bound function by its key in NVML_HEALTH_PROTOS, or undefined when the library lacks it. */
  fn(key: keyof typeof NVML_HEALTH_PROTOS): HealthFn | undefined;
  readonly handle: bigint;
  /** True on success; false when the value is absent (and warns once for odd codes); throws when the GPU is lost. */
  check(rc: number, what: string): boolean;
  /** Field values (id, scope), each undefined where not answered; undefined when the call is not available. Throws when the GPU is lost. */
  fieldValues(ids: ReadonlyArray<readonly [number, number]>): Array<number | undefined> | undefined;
  /** Logs once per key (a value outside what nvml.h defines). */
  warnOnce?(key: string, msg: string, fields: Record<string, unknown>): void;
}

/** The fields read first: the recovery action, and how many NVLink links the GPU has. */
const HEAD_FIELDS: ReadonlyArray<readonly [number, number]> = [[FI_DEV_GET_GPU_RECOVERY_ACTION, 0], [FI_DEV_NVLINK_LINK_COUNT, 0]];
/**
 * Output buffers of the calls, shared by every GPU: the reads are synchronous and each value is
 * taken out of its buffer before the next call writes into it.
 */
const SCRATCH = [Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4)] as const;
const MARGIN = Buffer.alloc(MARGIN_TEMPERATURE_V1_SIZE);

/** How a GPU answers NVLink error counters, found on the first read. */
interface HealthState {
  nvlink?: NvlinkState;
}
const states = new WeakMap<object, HealthState>();

/**
 * Reads the health signals of one GPU. `slot` is any object that lives as long as the GPU
 * (state such as the NVLink counter method is kept per slot). A GPU lost during any of the
 * calls throws out of here like out of every other read (the source marks it lost).
 */
export function readNvmlHealth(port: NvmlHealthPort, slot: object): GpuHealthReading {
  let st = states.get(slot);
  if (!st) states.set(slot, (st = {}));
  const h = port.handle;
  const out: { -readonly [K in keyof GpuHealthReading]: GpuHealthReading[K] } = {};
  const [b0, b1, b2, b3] = SCRATCH;

  const head = port.fieldValues(HEAD_FIELDS);
  const raw = head?.[0];
  if (raw !== undefined) {
    out.recoveryAction = recoveryActionOf(raw);
    if (out.recoveryAction === 'unknown') out.recoveryActionRaw = raw;
  }

  const remapped = port.fn('remappedRows');
  if (remapped) {
    const [c, u, p, f] = [b0.fill(0), b1.fill(0), b2.fill(0), b3.fill(0)];
    if (port.check(remapped(h, c, u, p, f), 'nvmlDeviceGetRemappedRows')) {
      out.remappedRowsCorrectable = c.readUInt32LE(0);
      out.remappedRowsUncorrectable = u.readUInt32LE(0);
      out.rowRemapPending = p.readUInt32LE(0) !== 0;
      out.rowRemapFailed = f.readUInt32LE(0) !== 0;
    }
  }

  const retired = port.fn('retiredPages');
  if (retired) {
    const count = (cause: number): number | undefined => {
      const n = b0.fill(0); // 0: ask for the count only
      const rc = retired(h, cause, n, null);
      if (rc === NVML.SUCCESS || rc === NVML.ERROR_INSUFFICIENT_SIZE) return n.readUInt32LE(0);
      port.check(rc, 'nvmlDeviceGetRetiredPages');
      return undefined;
    };
    out.retiredPagesSingleBit = count(PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS);
    if (out.retiredPagesSingleBit !== undefined) out.retiredPagesDoubleBit = count(PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR);
  }
  const pending = port.fn('retiredPending');
  if (pending) {
    const b = b0.fill(0);
    if (port.check(pending(h, b), 'nvmlDeviceGetRetiredPagesPendingStatus')) {
      // nvmlEnableState_t is DISABLED (0) or ENABLED (1); anything else is not believed.
      const v = b.readUInt32LE(0);
      if (v === 0 || v === FEATURE_ENABLED) out.retiredPagesPending = v === FEATURE_ENABLED;
      else port.warnOnce?.('retiredPending:enum', 'nvmlDeviceGetRetiredPagesPendingStatus returned a value nvml.h does not define; pending retirement left out', { value: v });
    }
  }

  const replays = port.fn('pcieReplays');
  if (replays) {
    const b = b0.fill(0);
    if (port.check(replays(h, b), 'nvmlDeviceGetPcieReplayCounter')) out.pcieReplays = b.readUInt32LE(0);
  }

  const margin = port.fn('marginTemperature');
  if (margin) {
    const b = MARGIN.fill(0);
    b.writeUInt32LE(MARGIN_TEMPERATURE_V1, 0);
    if (port.check(margin(h, b), 'nvmlDeviceGetMarginTemperature')) out.thermalMarginCelsius = b.readInt32LE(4);
  }

  if (!st.nvlink) {
    const links = Math.min(NVLINK_MAX_LINKS, head?.[1] ?? 0);
    st.nvlink = { mode: links > 0 ? 'fields' : 'none', links };
  }
  if (st.nvlink.mode !== 'none') out.nvlinkErrors = nvlinkErrors(port, st.nvlink);
  return out;
}

/** How NVLink errors are read on one GPU, and (fields) the request and the last answer, kept between samples. */
interface NvlinkState {
  mode: 'fields' | 'function' | 'none';
  links: number;
  ids?: Array<[number, number]>;
  /** The last list returned, and for each entry its index in the field request. */
  last?: NvlinkErrorCount[];
  lastAt?: number[];
}

function nvlinkErrors(port: NvmlHealthPort, nv: NvlinkState): NvlinkErrorCount[] | undefined {
  const out: NvlinkErrorCount[] = [];
  if (nv.mode === 'fields') {
    if (!nv.ids) {
      nv.ids = [];
      for (let link = 0; link < nv.links; link++) for (const [, id] of NVLINK_FIELDS) nv.ids.push([id, link]);
    }
    const ids = nv.ids;
    const vals = port.fieldValues(ids);
    // Unchanged counters (the usual case): the last list again, nothing made per counter.
    if (vals && nv.last && nv.lastAt && sameAnswers(vals, nv.last, nv.lastAt)) return nv.last;
    const at: number[] = [];
    vals?.forEach((v, i) => {
      if (v === undefined) return;
      out.push({ link: ids[i][1], type: NVLINK_FIELDS[i % NVLINK_FIELDS.length][0], value: v });
      at.push(i);
    });
    if (out.length > 0) {
      nv.last = out;
      nv.lastAt = at;
      return out;
    }
    nv.last = nv.lastAt = undefined;
    // The fields are not answered (newer or older driver): try the per-counter call once.
    nv.mode = port.fn('nvlinkErrorCounter') ? 'function' : 'none';
    if (nv.mode === 'none') return undefined;
  }
  const fn = port.fn('nvlinkErrorCounter')!;
  const b = Buffer.alloc(8);
  for (let link = 0; link < nv.links; link++) {
    for (const [type, , counter] of NVLINK_FIELDS) {
      if (port.check(fn(port.handle, link, counter, b), 'nvmlDeviceGetNvLinkErrorCounter')) out.push({ link, type, value: Number(b.readBigUInt64LE(0)) });
    }
  }
  if (out.length === 0) nv.mode = 'none';
  return out.length ? out : undefined;
}

/** True when the field answers hold exactly the values of `last` (at `at`), and nothing else. */
function sameAnswers(vals: ReadonlyArray<number | undefined>, last: readonly NvlinkErrorCount[], at: readonly number[]): boolean {
  let defined = 0;
  for (let i = 0; i < vals.length; i++) if (vals[i] !== undefined) defined++;
  if (defined !== last.length) return false;
  for (let k = 0; k < last.length; k++) if (vals[at[k]] !== last[k].value) return false;
  return true;
}
