import { catalog as defaultCatalog, type MetricDef } from '../catalog/index.js';
import { ExponentialBuckets } from './native-histogram.js';

/** Label values by label name. */
export type Labels = Readonly<Record<string, string>>;

/**
 * One metric family: its catalog entry and live series. The fields under "rendering" are
 * slots the exposition writer (exposition.ts) fills and reuses; the series store only
 * bumps a family's `version` when what it would write changed.
 */
export interface Family {
  readonly def: MetricDef;
  /** Live series in the order they appeared. */
  readonly live: Set<Series>;
  /** Bucket count of a histogram family, +Inf included (0 otherwise). */
  readonly bucketCount: number;
  /** Bumped whenever a series of the family is added, removed or changes value (each rendering caches by it). */
  version: number;
  /** `version` when `lines` was written. */
  linesVersion: number;
  // rendering
  /** `# HELP`/`# TYPE` lines with their newline, text format and OpenMetrics (counters lose `_total` there). */
  textHeader?: Buffer;
  omHeader?: Buffer;
  /** `le="…"` label text of each bucket bound, +Inf last (histograms). */
  les?: readonly string[];
  /** The family's sample lines as last rendered and encoded (the same in both formats), each ending in a newline. */
  lines?: Buffer;
}

/** One series: the last value a collector wrote for one label set. */
export interface Series {
  readonly key: string;
  /** How the series was last written. */
  kind: Entry['kind'];
  readonly family: Family;
  readonly labels: Labels;
  /** Last gauge value or counter total. */
  value: number;
  /** Observations per bucket (not cumulative), +Inf last (histograms). */
  readonly buckets?: Float64Array;
  /** Commit id that last wrote the series. */
  seen: number;
  /** Histogram observations seen by this process. */
  count: number;
  sum: number;
  /**
   * Exponential buckets of a histogram written observation by observation (served as a
   * native histogram in the protobuf format); absent for one whose state a collector sets
   * whole (`Batch.histogram`), whose single observations are unknown.
   */
  native: ExponentialBuckets | undefined;
  // rendering
  /** Label pairs, escaped once: `a="x",b="y"` in catalog order. */
  labelText?: string;
  /** `name{labels} `: everything of the sample line before the value (gauges and counters). */
  prefix?: string;
  /** The sample line as last rendered, and the value it was rendered from. */
  line: string;
  lineValue: number;
  /** The label pairs encoded for the protobuf format, once, when it first renders the series. */
  pbLabels: Uint8Array | undefined;
}

interface Owner {
  readonly name: string;
  readonly series: Map<string, Series>;
  /** The series of the last commit, in the order written: collectors usually write the same order every sample. */
  order: Series[];
  lastCommit: number;
  staleAfterMs: number;
}

/** One write of a batch. */
export type Entry =
  | { kind: 'gauge'; name: string; labels: Labels; value: number }
  | { kind: 'counter'; name: string; labels: Labels; value: number }
  | { kind: 'observe'; name: string; labels: Labels; value: number }
  | { kind: 'keep'; name: string; labels: Labels; value: number }
  | { kind: 'hist'; name: string; labels: Labels; value: number; cumulative: readonly number[] };

/**
 * What one collector wrote during one sample. Nothing reaches the store until the
 * scheduler commits it after a successful sample, so a failing sample loses nothing
 * already served and half-written samples are never exposed.
 *
 * The writes are kept in parallel arrays, not one object each: a batch the scheduler reuses
 * for the next sample (`clear()`) then writes thousands of series without allocating.
 */
export class Batch {
  /** @internal Number of writes; the arrays below may be longer (kept from an earlier sample). */
  size = 0;
  /** @internal */ readonly kinds: Array<Entry['kind']> = [];
  /** @internal */ readonly names: string[] = [];
  /** @internal */ readonly labelSets: Labels[] = [];
  /** @internal */ readonly values: number[] = [];
  /** @internal Cumulative bucket counts of a `hist` write, undefined for the others. */
  readonly cumulatives: Array<readonly number[] | undefined> = [];
  constructor(readonly collector: string) {}

  private push(kind: Entry['kind'], name: string, labels: Labels, value: number, cumulative?: readonly number[]): void {
    const i = this.size++;
    this.kinds[i] = kind;
    this.names[i] = name;
    this.labelSets[i] = labels;
    this.values[i] = value;
    this.cumulatives[i] = cumulative;
  }

  /** Forgets every write, keeping the arrays for the next sample. */
  clear(): void {
    this.size = 0;
  }

  /** The writes as objects (tests, post-passes). */
  get entries(): Entry[] {
    const out: Entry[] = [];
    for (let i = 0; i < this.size; i++) {
      const kind = this.kinds[i];
      out.push(kind === 'hist' ? { kind, name: this.names[i], labels: this.labelSets[i], value: this.values[i], cumulative: this.cumulatives[i]! } : { kind, name: this.names[i], labels: this.labelSets[i], value: this.values[i] });
    }
    return out;
  }

  /** Sets a gauge (or an info metric, whose value must be 1). NaN values are dropped. */
  gauge(name: string, labels: Labels, value: number): this {
    if (!Number.isNaN(value)) this.push('gauge', name, labels, value);
    return this;
  }

  /** Sets an info metric (value 1). */
  info(name: string, labels: Labels): this {
    this.push('gauge', name, labels, 1);
    return this;
  }

  /** Sets a counter to `total`, a monotonic value the collector keeps; a drop is treated as a reset. */
  counter(name: string, labels: Labels, total: number): this {
    if (Number.isFinite(total) && total >= 0) this.push('counter', name, labels, total);
    return this;
  }

  /** Adds one observation to a histogram. */
  observe(name: string, labels: Labels, value: number): this {
    if (Number.isFinite(value)) this.push('observe', name, labels, value);
    return this;
  }

  /**
   * Sets a histogram's whole state, kept by the collector (e.g. following a source's
   * histogram across its resets): `cumulative` holds the cumulative count at each catalog
   * bucket bound, +Inf last; `sum` is the sum of observations. Dropped unless the counts are
   * finite, non-negative and non-decreasing.
   */
  histogram(name: string, labels: Labels, cumulative: readonly number[], sum: number): this {
    if (!Number.isFinite(sum)) return this;
    for (let i = 0; i < cumulative.length; i++) {
      const c = cumulative[i];
      if (!Number.isFinite(c) || c < 0 || (i > 0 && c < cumulative[i - 1])) return this;
    }
    this.push('hist', name, labels, sum, cumulative);
    return this;
  }

  /** Adds entries written into another batch (e.g. rewritten by a post-pass); they passed the same checks there. */
  append(entries: readonly Entry[]): this {
    for (const e of entries) this.push(e.kind, e.name, e.labels, e.value, e.kind === 'hist' ? e.cumulative : undefined);
    return this;
  }

  /** Keeps a histogram series alive without a new observation in this sample. */
  keep(name: string, labels: Labels): this {
    this.push('keep', name, labels, 0);
    return this;
  }
}

/** True when `labels` has the same values as the series for every label of its family. */
function sameLabels(s: Series, labels: Labels): boolean {
  if (s.labels === labels) return true;
  const names = s.family.def.labels;
  for (let i = 0; i < names.length; i++) if (s.labels[names[i]] !== labels[names[i]]) return false;
  return true;
}

export interface SeriesStoreOptions {
  readonly now?: () => number;
  readonly catalog?: readonly MetricDef[];
}

/**
 * Series and staleness: the last value per series, owned by the collector that wrote it.
 * A commit replaces all series of its collector (snapshot semantics); a collector that
 * stops succeeding loses its series after its stale bound. Every change bumps
 * `generation`, which the renderings and the JSON snapshot are cached by.
 */
export class SeriesStore {
  /** The store's clock. */
  readonly now: () => number;
  private readonly defs: Map<string, MetricDef>;
  private readonly familyMap = new Map<string, Family>();
  private readonly owners = new Map<string, Owner>();
  private commitId = 0;
  /** Bumped by every change of what is served. */
  generation = 0;

  constructor(opts: SeriesStoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.defs = new Map((opts.catalog ?? defaultCatalog).map((d) => [d.name, d]));
  }

  /** A new empty batch for `collector`. */
  batch(collector: string): Batch {
    return new Batch(collector);
  }

  /** Sets how long the series of `collector` survive without a successful commit. */
  setStaleAfter(collector: string, ms: number): void {
    this.owner(collector).staleAfterMs = ms;
  }

  /** The families written so far, in the order they first appeared (rendering order). */
  families(): Iterable<Family> {
    return this.familyMap.values();
  }

  /** Every live series, by collector. */
  *series(): Iterable<Series> {
    for (const owner of this.owners.values()) yield* owner.series.values();
  }

  /**
   * Applies a successful sample: its series replace all series the collector had;
   * series it no longer reports disappear at once. Throws (and changes nothing) when
   * the batch names a metric or label outside the catalog.
   */
  commit(batch: Batch): void {
    const n = batch.size;
    const { kinds, names, labelSets, values, cumulatives } = batch;
    const owner = this.owner(batch.collector);
    const prev = owner.order;
    const prevLength = prev.length;
    // Pass 1 resolves every write to a series and validates it; nothing changes yet, so a
    // bad batch leaves the store as it was. The fast path reuses the series written at the
    // same position last time when name, kind and label values match (no key is built).
    let fresh: Map<string, Series> | undefined;
    /** Positions whose series is not the one written there last time, and their series. */
    let moved: Array<[number, Series]> | undefined;
    let reused = 0;
    for (let i = 0; i < n; i++) {
      const kind = kinds[i];
      const name = names[i];
      const labels = labelSets[i];
      const p = prev[i];
      if (kind === 'hist') {
        const les = (p !== undefined && p.family.def.name === name ? p.family : this.family(name, kind)).bucketCount;
        if (cumulatives[i]!.length !== les) throw new Error(`${name}: ${cumulatives[i]!.length} bucket counts for ${les} buckets`);
      }
      if (p !== undefined && p.family.def.name === name && p.kind === kind && sameLabels(p, labels)) {
        reused++;
        continue;
      }
      const family = this.family(name, kind);
      const key = this.key(name, labels);
      let s = owner.series.get(key) ?? fresh?.get(key);
      if (!s) {
        s = { key, kind, family, labels, value: NaN, buckets: family.bucketCount ? new Float64Array(family.bucketCount) : undefined, seen: 0, count: 0, sum: 0, native: undefined, labelText: undefined, prefix: undefined, line: '', lineValue: NaN, pbLabels: undefined };
        (fresh ??= new Map()).set(key, s);
      }
      (moved ??= []).push([i, s]);
    }
    if (fresh) {
      for (const [key, s] of fresh) {
        owner.series.set(key, s);
        s.family.live.add(s);
        s.family.version++;
      }
    }
    // Every write where it was last time: the order of the last commit stands as it is.
    let order = prev;
    if (reused !== n || n !== prevLength) {
      order = prev.slice(0, n);
      order.length = n;
      for (const [i, s] of moved ?? []) order[i] = s;
    }
    owner.order = order;
    const id = ++this.commitId;
    for (let i = 0; i < n; i++) {
      const s = order[i];
      const kind = kinds[i];
      const value = values[i];
      s.seen = id;
      s.kind = kind;
      switch (kind) {
        case 'gauge':
          if (s.value !== value) {
            s.value = value;
            s.family.version++;
          }
          break;
        case 'counter': {
          const prev = Number.isNaN(s.value) ? 0 : s.value;
          // A total below the previous one is a reset of the source: count it as new increments.
          const next = value >= prev ? value : prev + value;
          if (s.value !== next) {
            s.value = next;
            s.family.version++;
          }
          break;
        }
        case 'observe': {
          const bounds = s.family.def.buckets!;
          let b = 0;
          while (b < bounds.length && value > bounds[b]) b++;
          // Native buckets only for a series observed from its first observation on.
          if (s.count === 0) s.native ??= new ExponentialBuckets();
          s.native?.observe(value);
          s.buckets![b]++;
          s.count++;
          s.sum += value;
          s.family.version++;
          break;
        }
        case 'hist': {
          const b = s.buckets!;
          const cumulative = cumulatives[i]!;
          let prevCum = 0;
          for (let k = 0; k < b.length; k++) {
            b[k] = cumulative[k] - prevCum;
            prevCum = cumulative[k];
          }
          if (s.count !== prevCum || s.sum !== value || s.native) s.family.version++;
          s.native = undefined;
          s.count = prevCum;
          s.sum = value;
          break;
        }
        case 'keep':
          // A series kept before its first observation is still an observed one.
          if (s.count === 0 && !s.native) {
            s.native = new ExponentialBuckets();
            s.family.version++;
          }
          break;
      }
    }
    // The collector's series are exactly those of its last commit. When every entry is the
    // series written at the same position last time, the set is unchanged: nothing retires.
    if (reused !== n || n !== prevLength) {
      for (const s of owner.series.values()) {
        if (s.seen !== id) {
          this.retire(s);
          owner.series.delete(s.key);
        }
      }
    }
    owner.lastCommit = this.now();
    this.generation++;
  }

  /** Removes a series from the exposition. */
  private retire(s: Series): void {
    s.family.live.delete(s);
    s.family.version++;
  }

  /** Removes every series of collectors whose last commit is older than their stale bound. */
  expire(): number {
    const now = this.now();
    let removed = 0;
    for (const owner of this.owners.values()) {
      if (owner.series.size === 0 || now - owner.lastCommit <= owner.staleAfterMs) continue;
      for (const s of owner.series.values()) this.retire(s);
      removed += owner.series.size;
      owner.series.clear();
      owner.order = [];
    }
    if (removed > 0) this.generation++;
    return removed;
  }

  /** Removes all series of one collector now (e.g. when it is closed). */
  drop(collector: string): void {
    const owner = this.owners.get(collector);
    if (!owner || owner.series.size === 0) return;
    for (const s of owner.series.values()) this.retire(s);
    owner.series.clear();
    owner.order = [];
    this.generation++;
  }

  /** Number of series currently held. */
  get seriesCount(): number {
    let n = 0;
    for (const o of this.owners.values()) n += o.series.size;
    return n;
  }

  private owner(name: string): Owner {
    let o = this.owners.get(name);
    if (!o) {
      o = { name, series: new Map(), order: [], lastCommit: this.now(), staleAfterMs: Infinity };
      this.owners.set(name, o);
    }
    return o;
  }

  private key(name: string, labels: Labels): string {
    const def = this.defs.get(name)!;
    const keys = Object.keys(labels);
    if (keys.length !== def.labels.length) {
      throw new Error(`${name}: labels {${keys.join(',')}} do not match the catalog {${def.labels.join(',')}}`);
    }
    let k = name;
    for (const l of def.labels) {
      const v = labels[l];
      if (typeof v !== 'string') throw new Error(`${name}: label "${l}" missing or not a string`);
      k += '\u0000' + v;
    }
    return k;
  }

  private family(name: string, kind: Entry['kind']): Family {
    let f = this.familyMap.get(name);
    if (!f) {
      const def = this.defs.get(name);
      if (!def) throw new Error(`metric ${name} is not in the catalog`);
      f = { def, live: new Set(), bucketCount: def.type === 'histogram' ? (def.buckets?.length ?? 0) + 1 : 0, version: 1, linesVersion: 0, textHeader: undefined, omHeader: undefined, les: undefined, lines: undefined };
      this.familyMap.set(name, f);
    }
    const t = f.def.type;
    const ok =
      kind === 'gauge' ? t === 'gauge' || t === 'info'
      : kind === 'counter' ? t === 'counter'
      : t === 'histogram';
    if (!ok) throw new Error(`metric ${name} is a ${t}, written as ${kind}`);
    return f;
  }
}
