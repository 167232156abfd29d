/** A cumulative histogram: ascending upper bounds ending at +Inf, cumulative counts per bound. */
export interface Hist {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  /** Sum of the observations, where the source gives it. */
  readonly sum?: number;
}

/**
 * Increase of a counter between two readings; a drop means the engine restarted and
 * counts from zero. Never negative, never NaN (a broken engine value counts as no increase).
 */
export function counterIncrease(prev: number, cur: number): number {
  const inc = cur >= prev ? cur - prev : cur;
  return Number.isFinite(inc) && inc > 0 ? inc : 0;
}

function sameBounds(a: Hist, b: Hist): boolean {
  if (a.bounds.length !== b.bounds.length) return false;
  for (let i = 0; i < a.bounds.length; i++) if (a.bounds[i] !== b.bounds[i]) return false;
  return true;
}

/**
 * Observations between two readings of the same histogram. A total or bucket that went
 * down, or a changed bucket layout, means a restart: everything in `cur` is new.
 */
export function histogramDelta(prev: Hist, cur: Hist): Hist {
  if (!sameBounds(prev, cur)) return cur;
  const counts: number[] = new Array(cur.counts.length);
  for (let i = 0; i < cur.counts.length; i++) {
    const d = cur.counts[i] - prev.counts[i];
    if (d < 0) return cur;
    counts[i] = d;
  }
  return { bounds: cur.bounds, counts };
}

/** Adds two histograms with the same layout; undefined when the layouts differ. */
export function mergeHist(a: Hist, b: Hist): Hist | undefined {
  if (!sameBounds(a, b)) return undefined;
  return { bounds: a.bounds, counts: a.counts.map((c, i) => c + b.counts[i]) };
}

/** Multiplies the bounds (unit conversion, e.g. ms to seconds). */
export function scaleHist(h: Hist, factor: number): Hist {
  return factor === 1 ? h : { bounds: h.bounds.map((b) => b * factor), counts: h.counts, sum: h.sum === undefined ? undefined : h.sum * factor };
}

/**
 * The q-quantile (0..1) of a cumulative histogram, as PromQL's histogram_quantile
 * computes it: linear interpolation inside the bucket that holds the rank, the first
 * bucket starting at 0, and the highest finite bound when the rank falls in +Inf.
 * Undefined when the histogram holds no observations.
 */
export function histogramQuantile(q: number, h: Hist): number | undefined {
  const n = h.counts.length;
  if (n === 0 || !(q >= 0 && q <= 1)) return undefined;
  // Counts must be monotonic; repair float noise the way Prometheus does.
  const counts = h.counts.slice();
  for (let i = 1; i < n; i++) if (counts[i] < counts[i - 1]) counts[i] = counts[i - 1];
  const total = counts[n - 1];
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let i = 0;
  while (i < n - 1 && counts[i] < rank) i++;
  const upper = h.bounds[i];
  if (upper === Infinity) {
    const finite = n >= 2 ? h.bounds[n - 2] : undefined;
    return finite !== undefined && Number.isFinite(finite) ? finite : undefined;
  }
  const lower = i === 0 ? 0 : h.bounds[i - 1];
  if (i === 0 && upper <= 0) return upper;
  const below = i === 0 ? 0 : counts[i - 1];
  const inBucket = counts[i] - below;
  if (inBucket <= 0) return upper;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}

/** True when the cumulative counts never go down and are finite and non-negative. */
export function isMonotonic(h: Hist): boolean {
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i];
    if (!Number.isFinite(c) || c < 0 || (i > 0 && c < h.counts[i - 1])) return false;
  }
  return h.counts.length === h.bounds.length;
}

/**
 * Cumulative counts of `h` at each of `bounds` (finite, ascending), +Inf last. Inside a
 * source bucket the observations are taken as spread evenly, the assumption PromQL's
 * histogram_quantile makes, so quantiles of the result agree with quantiles of the source
 * (exactly where the bounds coincide). Above the highest finite source bound nothing is
 * known: those observations stay in +Inf. Undefined for a broken histogram (counts that
 * go down, NaN, no +Inf).
 */
export function rebucket(h: Hist, bounds: readonly number[]): number[] | undefined {
  if (!isMonotonic(h) || h.bounds[h.bounds.length - 1] !== Infinity) return undefined;
  const out = new Array<number>(bounds.length + 1);
  let j = 0;
  for (let i = 0; i < bounds.length; i++) {
    const b = bounds[i];
    // The source bucket (lo, hi] holding b; a bound equal to b (within float noise) is exact.
    while (j < h.bounds.length - 1 && h.bounds[j] < b * (1 - 1e-9)) j++;
    const hi = h.bounds[j];
    const below = j === 0 ? 0 : h.counts[j - 1];
    if (hi === Infinity) out[i] = below;
    else if (hi <= b * (1 + 1e-9)) out[i] = h.counts[j];
    else {
      const lo = j === 0 ? Math.min(0, hi) : h.bounds[j - 1];
      out[i] = below + (h.counts[j] - below) * ((b - lo) / (hi - lo));
    }
  }
  out[bounds.length] = h.counts[h.counts.length - 1];
  return out;
}
