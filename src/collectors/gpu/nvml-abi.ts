/**
 * What the NVML code assumes about NVIDIA's C ABI: struct sizes, field offsets, enum values and
 * constants. Each NVML module exports its assumptions as a list of facts; the ABI test compiles a C
 * program against NVIDIA's own `nvml.h` that checks every fact, so a wrong number fails a test
 * instead of reading garbage on a real GPU.
 */
export type AbiFact =
  /** `sizeof(type) == value` */
  | { readonly kind: 'sizeof'; readonly type: string; readonly value: number }
  /** `offsetof(type, field) == value` (field may be a nested path such as `a.b`) */
  | { readonly kind: 'offsetof'; readonly type: string; readonly field: string; readonly value: number }
  /** an enum member, `#define` or version macro: `(long long)(name) == value` */
  | { readonly kind: 'const'; readonly name: string; readonly value: number | bigint };

export type AbiFacts = readonly AbiFact[];

/** One C struct as the TypeScript side lays it out: its C type name, size and the offsets it reads or writes. */
export interface StructAbi<F extends string = string> {
  readonly ctype: string;
  readonly size: number;
  readonly off: Readonly<Record<F, number>>;
}

/** Declares a struct layout (the C field names are the keys of `off`). */
export function struct<F extends string>(ctype: string, size: number, off: Record<F, number>): StructAbi<F> {
  return { ctype, size, off };
}

/** The facts of a table of structs and a table of constants keyed by their C names. */
export function abiFacts(structs: Readonly<Record<string, StructAbi>>, consts: Readonly<Record<string, number | bigint>>): AbiFact[] {
  const out: AbiFact[] = [];
  for (const s of Object.values(structs)) {
    out.push({ kind: 'sizeof', type: s.ctype, value: s.size });
    for (const [field, value] of Object.entries(s.off)) out.push({ kind: 'offsetof', type: s.ctype, field, value: value as number });
  }
  for (const [name, value] of Object.entries(consts)) out.push({ kind: 'const', name, value });
  return out;
}

/** Structs the NVML source passes to the library (GPM's are in nvml-gpm.ts). */
export const NVML_STRUCTS = {
  // Handles are passed and returned as 64-bit integers (pointers on the LP64 ABI).
  device: struct('nvmlDevice_t', 8, {}),
  eventSet: struct('nvmlEventSet_t', 8, {}),
  returnCode: struct('nvmlReturn_t', 4, {}),
  pciInfo: struct('nvmlPciInfo_t', 68, { busIdLegacy: 0, domain: 16, bus: 20, device: 24, pciDeviceId: 28, pciSubSystemId: 32, busId: 36 }),
  utilization: struct('nvmlUtilization_t', 8, { gpu: 0, memory: 4 }),
  memory: struct('nvmlMemory_t', 24, { total: 0, free: 8, used: 16 }),
  memoryV2: struct('nvmlMemory_v2_t', 40, { version: 0, total: 8, reserved: 16, free: 24, used: 32 }),
  violationTime: struct('nvmlViolationTime_t', 16, { referenceTime: 0, violationTime: 8 }),
  value: struct('nvmlValue_t', 8, {}),
  sample: struct('nvmlSample_t', 16, { timeStamp: 0, sampleValue: 8 }),
  fieldValue: struct('nvmlFieldValue_t', 40, { fieldId: 0, scopeId: 4, timestamp: 8, latencyUsec: 16, valueType: 24, nvmlReturn: 28, value: 32 }),
  processInfoV1: struct('nvmlProcessInfo_v1_t', 16, { pid: 0, usedGpuMemory: 8 }),
  processInfo: struct('nvmlProcessInfo_t', 24, { pid: 0, usedGpuMemory: 8, gpuInstanceId: 16, computeInstanceId: 20 }),
  eventData: struct('nvmlEventData_t', 32, { device: 0, eventType: 8, eventData: 16, gpuInstanceId: 24, computeInstanceId: 28 }),
} as const;

/** Enum members, macros and version constants the NVML source uses, keyed by their C names. */
export const NVML_CONSTS = {
  NVML_GPU_UTILIZATION_SAMPLES: 1,
  NVML_MEMORY_UTILIZATION_SAMPLES: 2,
  NVML_VALUE_TYPE_DOUBLE: 0,
  NVML_VALUE_TYPE_UNSIGNED_INT: 1,
  NVML_VALUE_TYPE_UNSIGNED_LONG: 2,
  NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: 3,
  NVML_VALUE_TYPE_SIGNED_LONG_LONG: 4,
  NVML_VALUE_TYPE_SIGNED_INT: 5,
  NVML_VALUE_TYPE_UNSIGNED_SHORT: 6,
  NVML_TEMPERATURE_GPU: 0,
  NVML_CLOCK_SM: 1,
  NVML_CLOCK_MEM: 2,
  NVML_PCIE_UTIL_TX_BYTES: 0,
  NVML_PCIE_UTIL_RX_BYTES: 1,
  NVML_MEMORY_ERROR_TYPE_CORRECTED: 0,
  NVML_MEMORY_ERROR_TYPE_UNCORRECTED: 1,
  NVML_VOLATILE_ECC: 0,
  NVML_PERF_POLICY_POWER: 0,
  NVML_PERF_POLICY_THERMAL: 1,
  NVML_DEVICE_MIG_ENABLE: 1,
  NVML_FI_DEV_MEMORY_TEMP: 82,
  NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX: 138,
  NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX: 139,
  /** scopeId of an NVLink field meaning "all links". */
  UINT_MAX: 0xffffffff,
  nvmlEventTypeXidCriticalError: 0x8n,
  /** usedGpuMemory when the driver cannot say (as the unsigned 64-bit field reads it). */
  '(unsigned long long)NVML_VALUE_NOT_AVAILABLE': 0xffffffffffffffffn,
  nvmlMemory_v2: 40 | (2 << 24),
  NVML_DEVICE_UUID_V2_BUFFER_SIZE: 96,
  NVML_DEVICE_NAME_V2_BUFFER_SIZE: 96,
  NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE: 80,
  NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE: 32,
  NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE: 16,
  nvmlClocksEventReasonGpuIdle: 0x1n,
  nvmlClocksEventReasonApplicationsClocksSetting: 0x2n,
  nvmlClocksEventReasonSwPowerCap: 0x4n,
  nvmlClocksThrottleReasonHwSlowdown: 0x8n,
  nvmlClocksEventReasonSyncBoost: 0x10n,
  nvmlClocksEventReasonSwThermalSlowdown: 0x20n,
  nvmlClocksThrottleReasonHwThermalSlowdown: 0x40n,
  nvmlClocksThrottleReasonHwPowerBrakeSlowdown: 0x80n,
  nvmlClocksEventReasonDisplayClockSetting: 0x100n,
} as const;

/** nvmlReturn_t codes the NVML code acts on. */
export const NVML_RETURN = {
  NVML_SUCCESS: 0,
  NVML_ERROR_UNINITIALIZED: 1,
  NVML_ERROR_INVALID_ARGUMENT: 2,
  NVML_ERROR_NOT_SUPPORTED: 3,
  NVML_ERROR_NO_PERMISSION: 4,
  NVML_ERROR_NOT_FOUND: 6,
  NVML_ERROR_INSUFFICIENT_SIZE: 7,
  NVML_ERROR_TIMEOUT: 10,
  NVML_ERROR_FUNCTION_NOT_FOUND: 13,
  NVML_ERROR_GPU_IS_LOST: 15,
  NVML_ERROR_RESET_REQUIRED: 16,
  NVML_ERROR_IN_USE: 19,
  NVML_ERROR_NO_DATA: 21,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH: 25,
  NVML_ERROR_UNKNOWN: 999,
} as const;

/** Every fact of the core NVML source. */
export const nvmlAbiFacts: AbiFacts = abiFacts(NVML_STRUCTS, { ...NVML_CONSTS, ...NVML_RETURN });
