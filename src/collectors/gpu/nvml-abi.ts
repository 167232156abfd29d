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
