/**
 * A value one part of the exporter hands another through a port says when it was read and
 * how long it may be used: a collector that stopped succeeding leaves an old value behind,
 * and an old value is never used past its bound.
 */
export interface Dated {
  /** When it was read (ms, the exporter's clock). */
  readonly readAtMs: number;
  /** Older than this, it is not used. */
  readonly maxAgeMs: number;
}

/** The value when it is present and younger than its bound, else undefined. Pure. */
export function fresh<T extends Dated>(v: T | undefined, nowMs: number): T | undefined {
  return v !== undefined && nowMs - v.readAtMs <= v.maxAgeMs ? v : undefined;
}
