/**
 * Exponential ("native") histogram buckets for the histograms whose observations the
 * exporter sees one by one (peer round trips, collective timings). Bucket `i` of schema `s`
 * holds the observations in (2^((i-1)·2^-s), 2^(i·2^-s)]; observations of magnitude up to
 * the zero threshold go to the zero bucket, negative ones mirror the positive side. The
 * buckets are exact counts of the observations, so the native histogram carries the same
 * information as the classic buckets beside it, at a resolution set by the schema.
 */

/** Schema of a new histogram: each power of two split into 8 buckets, bounds about 9 % apart. */
export const INITIAL_SCHEMA = 3;
/** Lowest schema the exposition format defines. */
export const MIN_SCHEMA = -4;
/** Above this many populated buckets the resolution is halved (two neighbours merge exactly into one). */
export const MAX_BUCKETS = 160;
/** Width of the zero bucket: 2^-128, far below any duration the exporter measures. */
export const ZERO_THRESHOLD = 2 ** -128;

const view = new DataView(new ArrayBuffer(8));

/** `v` = frac · 2^exp with frac in [0.5, 1), for a finite positive `v` (what C's frexp returns). */
function frexp(v: number): { frac: number; exp: number } {
  view.setFloat64(0, v);
  const hi = view.getUint32(0);
  const bits = (hi >>> 20) & 0x7ff;
  if (bits === 0) {
    // Subnormal: scale into the normal range first.
    const r = frexp(v * 2 ** 64);
    return { frac: r.frac, exp: r.exp - 64 };
  }
  view.setUint32(0, (hi & 0x800fffff) | (1022 << 20));
  return { frac: view.getFloat64(0), exp: bits - 1022 };
}

/** For schema s > 0: the lower bounds 2^(j·2^-s − 1), j = 0 … 2^s − 1, of the buckets within [0.5, 1). */
const FRACTION_BOUNDS: Float64Array[] = [];
function fractionBounds(schema: number): Float64Array {
  let b = FRACTION_BOUNDS[schema];
  if (!b) {
    const n = 2 ** schema;
    b = new Float64Array(n);
    for (let j = 0; j < n; j++) b[j] = 2 ** (j / n - 1);
    FRACTION_BOUNDS[schema] = b;
  }
  return b;
}

/** Index of the bucket of schema `schema` that holds the positive value `v`. */
export function bucketIndex(v: number, schema: number): number {
  const { frac, exp } = frexp(v);
  if (schema > 0) {
    const bounds = fractionBounds(schema);
    // First j with bounds[j] >= frac: the upper bound of the bucket is inclusive.
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (bounds[mid] < frac) lo = mid + 1;
      else hi = mid;
    }
    return (exp - 1) * bounds.length + lo;
  }
  // An exact power of two is the upper bound of the bucket below.
  const key = frac === 0.5 ? exp - 1 : exp;
  const shift = -schema;
  return (key + (1 << shift) - 1) >> shift;
}

/** The upper bound of bucket `index` in schema `schema`. */
export function bucketUpperBound(index: number, schema: number): number {
  return 2 ** (index * 2 ** -schema);
}

/** One run of consecutive buckets: `offset` is the gap to the previous run (the first index for the first run). */
export interface Span {
  readonly offset: number;
  readonly length: number;
}

/** One side of the histogram as the exposition format writes it: spans, and each bucket's count as a delta to the previous one. */
export interface EncodedSide {
  readonly spans: Span[];
  readonly deltas: number[];
}

/** Exponential bucket counts of one series. */
export class ExponentialBuckets {
  schema = INITIAL_SCHEMA;
  zeroCount = 0;
  readonly positive = new Map<number, number>();
  readonly negative = new Map<number, number>();

  /** Counts one finite observation. */
  observe(v: number): void {
    if (Math.abs(v) <= ZERO_THRESHOLD) {
      this.zeroCount++;
      return;
    }
    const side = v > 0 ? this.positive : this.negative;
    const i = bucketIndex(Math.abs(v), this.schema);
    side.set(i, (side.get(i) ?? 0) + 1);
    while (this.positive.size + this.negative.size > MAX_BUCKETS && this.schema > MIN_SCHEMA) this.halveResolution();
  }

  /** Number of observations held. */
  get count(): number {
    let n = this.zeroCount;
    for (const c of this.positive.values()) n += c;
    for (const c of this.negative.values()) n += c;
    return n;
  }

  /** One schema lower: bucket i of the finer schema lies in bucket ceil(i/2) of the coarser one. */
  private halveResolution(): void {
    this.schema--;
    for (const side of [this.positive, this.negative]) {
      const merged = new Map<number, number>();
      for (const [i, c] of side) {
        const j = (i + 1) >> 1;
        merged.set(j, (merged.get(j) ?? 0) + c);
      }
      side.clear();
      for (const [j, c] of merged) side.set(j, c);
    }
  }
}

/**
 * Spans and deltas of one side. Gaps of one or two empty buckets are filled with zero
 * counts instead of starting a new span (a span costs more bytes than two zero deltas).
 */
export function encodeSide(side: ReadonlyMap<number, number>): EncodedSide {
  const spans: Span[] = [];
  const deltas: number[] = [];
  if (side.size === 0) return { spans, deltas };
  const keys = [...side.keys()].sort((a, b) => a - b);
  let prevCount = 0;
  let spanStart = keys[0];
  let spanLength = 0;
  let prevEnd = 0; // one past the last index of the previous span
  let next = keys[0]; // the index after the last bucket written
  for (let k = 0; k < keys.length; k++) {
    const i = keys[k];
    const gap = i - next;
    if (k > 0 && gap > 2) {
      spans.push({ offset: spans.length === 0 ? spanStart : spanStart - prevEnd, length: spanLength });
      prevEnd = spanStart + spanLength;
      spanStart = i;
      spanLength = 0;
    } else if (k > 0) {
      for (let g = 0; g < gap; g++) {
        deltas.push(-prevCount);
        prevCount = 0;
        spanLength++;
      }
    }
    const c = side.get(i)!;
    deltas.push(c - prevCount);
    prevCount = c;
    spanLength++;
    next = i + 1;
  }
  spans.push({ offset: spans.length === 0 ? spanStart : spanStart - prevEnd, length: spanLength });
  return { spans, deltas };
}
