// Bounded chart history, independent of the DOM (unit-tested under Node).

/** Natural order, so "GPU 2" comes before "GPU 10". */
export const natural = (a, b) => a.localeCompare(b, 'en', { numeric: true });

/**
 * The last `windowS` seconds of one chart: x = snapshot time in seconds, one array per
 * series key, all the same length as the time axis (null where a series had no value).
 * Series appear with nulls before their first value and are dropped once every value
 * they had has left the window.
 */
export class History {
  constructor(windowS = 300) {
    this.windowS = windowS;
    this.times = [];
    this.series = new Map();
  }

  /**
   * Adds the values of one snapshot (`values`: Map key → number|null). A snapshot not
   * newer than the last one is ignored. Returns true when the set of series changed.
   */
  push(t, values) {
    const n = this.times.length;
    if (n > 0 && !(t > this.times[n - 1])) return false;
    const before = this.signature();
    this.times.push(t);
    for (const [key, arr] of this.series) arr.push(values.has(key) ? values.get(key) : null);
    for (const [key, v] of values) {
      if (this.series.has(key)) continue;
      const arr = new Array(n).fill(null);
      arr.push(v);
      this.series.set(key, arr);
    }
    const cutoff = t - this.windowS;
    let drop = 0;
    while (drop < this.times.length && this.times[drop] < cutoff) drop++;
    if (drop > 0) {
      this.times.splice(0, drop);
      for (const arr of this.series.values()) arr.splice(0, drop);
    }
    for (const [key, arr] of this.series) if (arr.every((v) => v == null)) this.series.delete(key);
    return this.signature() !== before;
  }

  /** Series keys in display order. */
  keys() {
    return [...this.series.keys()].sort(natural);
  }

  /** uPlot's data layout: [times, ...series in key order]. */
  data() {
    return [this.times.slice(), ...this.keys().map((k) => this.series.get(k).slice())];
  }

  /** Whether any series has a value in the window. */
  hasData() {
    return this.series.size > 0;
  }

  signature() {
    return this.keys().join('\u0000');
  }
}

/**
 * Mean of a histogram over each interval between snapshots, from its cumulative
 * count and sum: Δsum / Δcount. No new observations, a first sight or a reset
 * (count going down) gives null rather than a made-up value.
 */
export class HistogramMean {
  constructor() {
    this.prev = new Map();
  }

  /** `samples`: iterable of [key, { count, sum }] → Map key → mean|null. */
  next(samples) {
    const out = new Map();
    const seen = new Map();
    for (const [key, { count, sum }] of samples) {
      const p = this.prev.get(key);
      let mean = null;
      if (p && count > p.count && sum >= p.sum) mean = (sum - p.sum) / (count - p.count);
      out.set(key, mean);
      seen.set(key, { count, sum });
    }
    this.prev = seen;
    return out;
  }
}
