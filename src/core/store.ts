import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import client from 'prom-client';
import { catalog as defaultCatalog, type MetricDef } from '../catalog/index.js';
import { ExponentialBuckets } from './native-histogram.js';
import { PROTOBUF_CONTENT_TYPE, renderProtobufFamilies, renderProtobufRegistry } from './render-protobuf.js';
import { registerRuntimeMetrics, shareRuntimeMetrics } from './runtime-metrics.js';

const gzipAsync = promisify(gzip);

/** Label values by label name. */
export type Labels = Readonly<Record<string, string>>;

/** @internal A metric family of the store, as the renderers read it. */
export interface Family {
  readonly def: MetricDef;
  /** Live series in the order they appeared. */
  readonly live: Set<Series>;
  /** `# HELP`/`# TYPE` lines with their newline, text format and OpenMetrics (counters lose `_total` there). */
  readonly textHeader: Buffer;
  readonly omHeader: Buffer;
  /** `le="…"` label text of each bucket bound, +Inf last (histograms). */
  readonly les: readonly string[];
  /** Bumped whenever a series of the family is added, removed or changes value (each rendering caches by it). */
  version: number;
  /** `version` when `lines` was written. */
  linesVersion: number;
  /** The family's sample lines as last rendered and encoded (the same in both formats), each ending in a newline. */
  lines: Buffer;
}

/** @internal One series of the store, as the renderers read it. */
export interface Series {
  readonly key: string;
  /** How the series was last written. */
  kind: Entry['kind'];
  readonly family: Family;
  readonly labels: Labels;
  /** Last gauge value or counter total. */
  value: number;
  /** Label pairs, escaped once when the series appears: `a="x",b="y"` in catalog order. */
  readonly labelText: string;
  /** `name{labels} `: everything of the sample line before the value (gauges and counters). */
  readonly prefix: string;
  /** The sample line as last rendered, and the value it was rendered from. */
  line: string;
  lineValue: number;
  /** Observations per bucket (not cumulative), +Inf last (histograms). */
  readonly buckets?: Float64Array;
  /** Commit id that last wrote the series. */
  seen: number;
  /** Histogram observations seen by this process (snapshot only). */
  count: number;
  sum: number;
  /**
   * Exponential buckets of a histogram written observation by observation (served as a
   * native histogram in the protobuf format); absent for one whose state a collector sets
   * whole (`Batch.histogram`), whose single observations are unknown.
   */
  native: ExponentialBuckets | undefined;
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

type Entry =
  | { kind: 'gauge'; name: string; labels: Labels; value: number }
  | { kind: 'counter'; name: string; labels: Labels; value: number }
  | { kind: 'observe'; name: string; labels: Labels; value: number }
  | { kind: 'keep'; name: string; labels: Labels; value: number }
  | { kind: 'hist'; name: string; labels: Labels; value: number; cumulative: readonly number[] };

/**
 * What one collector wrote during one sample. Nothing reaches the store until the
 * scheduler commits it after a successful sample, so a failing sample loses nothing
 * already served and half-written samples are never exposed.
 */
export class Batch {
  /** @internal */ readonly entries: Entry[] = [];
  constructor(readonly collector: string) {}

  /** Sets a gauge (or an info metric, whose value must be 1). NaN values are dropped. */
  gauge(name: string, labels: Labels, value: number): this {
    if (!Number.isNaN(value)) this.entries.push({ kind: 'gauge', name, labels, value });
    return this;
  }

  /** Sets an info metric (value 1). */
  info(name: string, labels: Labels): this {
    this.entries.push({ kind: 'gauge', name, labels, value: 1 });
    return this;
  }

  /** Sets a counter to `total`, a monotonic value the collector keeps; a drop is treated as a reset. */
  counter(name: string, labels: Labels, total: number): this {
    if (Number.isFinite(total) && total >= 0) this.entries.push({ kind: 'counter', name, labels, value: total });
    return this;
  }

  /** Adds one observation to a histogram. */
  observe(name: string, labels: Labels, value: number): this {
    if (Number.isFinite(value)) this.entries.push({ kind: 'observe', name, labels, value });
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
    this.entries.push({ kind: 'hist', name, labels, value: sum, cumulative });
    return this;
  }

  /** Adds entries written into another batch (e.g. rewritten by a post-pass); they passed the same checks there. */
  append(entries: readonly Entry[]): this {
    for (const e of entries) this.entries.push(e);
    return this;
  }

  /** Keeps a histogram series alive without a new observation in this sample. */
  keep(name: string, labels: Labels): this {
    this.entries.push({ kind: 'keep', name, labels, value: 0 });
    return this;
  }
}

/** Escapes HELP text and label values the way the exposition formats require. */
function escapeText(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** `a="x",b="y"` for the family's labels, in catalog order, escaped. */
function labelText(def: MetricDef, labels: Labels): string {
  let out = '';
  for (const l of def.labels) out += `${out ? ',' : ''}${l}="${escapeText(labels[l]).replace(/"/g, '\\"')}"`;
  return out;
}

/** Sample values as the exposition formats spell them. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

const NEWLINE = Buffer.from('\n');
const EMPTY = Buffer.alloc(0);

/** Gauge and counter sample lines of a family; a line is rewritten only when its value changed. */
function sampleLines(f: Family): string {
  const lines = new Array<string>(f.live.size);
  let i = 0;
  for (const s of f.live) {
    if (s.line === '' || !Object.is(s.lineValue, s.value)) {
      s.line = s.prefix + formatValue(s.value) + '\n';
      s.lineValue = s.value;
    }
    lines[i++] = s.line;
  }
  // join() writes one flat string; appending would build a rope that encoding must flatten.
  return lines.join('');
}

/** Histogram sample lines of a family: cumulative buckets, sum and count per series. */
function histogramLines(f: Family): string {
  const name = f.def.name;
  const out: string[] = [];
  for (const s of f.live) {
    const b = s.buckets!;
    const extra = s.labelText ? ',' + s.labelText : '';
    let cum = 0;
    for (let i = 0; i < b.length; i++) {
      cum += b[i];
      // +Inf is the count itself: re-summed fractional buckets (re-bucketed engine histograms) may carry float noise.
      out.push(`${name}_bucket{${f.les[i]}${extra}} ${i === b.length - 1 ? s.count : cum}\n`);
    }
    const braces = s.labelText ? `{${s.labelText}}` : '';
    out.push(`${name}_sum${braces} ${formatValue(s.sum)}\n${name}_count${braces} ${s.count}\n`);
  }
  return out.join('');
}

/** True when `labels` has the same values as the series for every label of its family. */
function sameLabels(s: Series, labels: Labels): boolean {
  if (s.labels === labels) return true;
  const names = s.family.def.labels;
  for (let i = 0; i < names.length; i++) if (s.labels[names[i]] !== labels[names[i]]) return false;
  return true;
}

/** The formats the store renders: Prometheus text 0.0.4, OpenMetrics 1.0.0, and delimited protobuf `MetricFamily` messages. */
export type ExpositionFormat = 'text' | 'openmetrics' | 'protobuf';

/** A rendered exposition body, cached until the next commit. */
export interface Rendered {
  readonly body: Buffer;
  readonly contentType: string;
  /** The body gzipped once, off the event loop (zlib's thread pool), shared by every caller. */
  gzip(): Promise<Buffer>;
}

/** JSON view of the current samples (`/api/v1/snapshot`). */
export interface Snapshot {
  readonly timestamp: number;
  readonly metrics: Record<string, Array<{ labels: Labels; value: number; count?: number; sum?: number }>>;
}

export interface StoreOptions {
  readonly now?: () => number;
  readonly catalog?: readonly MetricDef[];
  /** Register prom-client's process and Node.js metrics (off in unit tests for stable output). */
  readonly processMetrics?: boolean;
  /** Re-render at least this often even without commits, so process metrics move. */
  readonly maxCacheAgeMs?: number;
  /**
   * Serve a rendering younger than this even when a commit happened since, so a burst of
   * scrapes renders at most once per interval (0: always fresh).
   */
  readonly minRenderIntervalMs?: number;
  /**
   * How much older than `maxCacheAgeMs` a rendering may be and still be served while its
   * successor renders in the background (0: a scrape that finds no fresh rendering waits).
   */
  readonly staleWhileRenderMs?: number;
}

interface CacheEntry {
  readonly generation: number;
  readonly at: number;
  promise: Promise<Rendered>;
  /** The rendering has resolved (only a finished rendering is served stale). */
  done: boolean;
  /** A scrape asked for gzip: a background successor is gzipped before it is swapped in. */
  gzipWanted: boolean;
}

/**
 * The sample store: last value per series, owned by the collector that wrote it.
 * prom-client holds the values and writes the exposition; this class decides which
 * series exist (snapshot semantics per collector, staleness) and caches the rendering.
 */
export class SampleStore {
  private readonly now: () => number;
  private readonly defs: Map<string, MetricDef>;
  private readonly families = new Map<string, Family>();
  private readonly owners = new Map<string, Owner>();
  private readonly maxCacheAgeMs: number;
  private readonly minRenderIntervalMs: number;
  private commitId = 0;
  /** prom-client's process and Node.js metrics, rendered after the catalog families. */
  readonly textRegistry = new client.Registry();
  readonly omRegistry = new client.Registry<typeof client.openMetricsContentType>();
  private generation = 0;
  private readonly staleWhileRenderMs: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly refreshing = new Set<string>();
  private snapshotCache?: { generation: number; snapshot: Snapshot };

  constructor(opts: StoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.defs = new Map((opts.catalog ?? defaultCatalog).map((d) => [d.name, d]));
    this.maxCacheAgeMs = opts.maxCacheAgeMs ?? 1000;
    this.minRenderIntervalMs = opts.minRenderIntervalMs ?? 0;
    this.staleWhileRenderMs = opts.staleWhileRenderMs ?? 0;
    this.omRegistry.setContentType(client.openMetricsContentType);
    if (opts.processMetrics) {
      // One set of runtime metrics, registered in both registries (each formats them its way):
      // two sets would run two event-loop monitors and two GC observers.
      registerRuntimeMetrics(this.textRegistry);
      shareRuntimeMetrics(this.textRegistry, this.omRegistry);
    }
  }

  /** A new empty batch for `collector`. */
  batch(collector: string): Batch {
    return new Batch(collector);
  }

  /** Sets how long the series of `collector` survive without a successful commit. */
  setStaleAfter(collector: string, ms: number): void {
    this.owner(collector).staleAfterMs = ms;
  }

  /**
   * Applies a successful sample: its series replace all series the collector had;
   * series it no longer reports disappear at once. Throws (and changes nothing) when
   * the batch names a metric or label outside the catalog.
   */
  commit(batch: Batch): void {
    const entries = batch.entries;
    const owner = this.owner(batch.collector);
    const prev = owner.order;
    const order = new Array<Series>(entries.length);
    // Pass 1 resolves every entry to a series and validates it; nothing changes yet, so a
    // bad batch leaves the store as it was. The fast path reuses the series written at the
    // same position last time when name, kind and label values match (no key is built).
    let fresh: Map<string, Series> | undefined;
    let reused = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const p = prev[i];
      if (e.kind === 'hist') {
        const les = (p !== undefined && p.family.def.name === e.name ? p.family : this.family(e.name, e.kind)).les.length;
        if (e.cumulative.length !== les) throw new Error(`${e.name}: ${e.cumulative.length} bucket counts for ${les} buckets`);
      }
      if (p !== undefined && p.family.def.name === e.name && p.kind === e.kind && sameLabels(p, e.labels)) {
        order[i] = p;
        reused++;
        continue;
      }
      const family = this.family(e.name, e.kind);
      const key = this.key(e.name, e.labels);
      let s = owner.series.get(key) ?? fresh?.get(key);
      if (!s) {
        const text = labelText(family.def, e.labels);
        s = { key, kind: e.kind, family, labels: e.labels, value: NaN, labelText: text, prefix: `${family.def.name}${text ? `{${text}}` : ''} `, line: '', lineValue: NaN, buckets: family.def.type === 'histogram' ? new Float64Array(family.les.length) : undefined, seen: 0, count: 0, sum: 0, native: undefined, pbLabels: undefined };
        (fresh ??= new Map()).set(key, s);
      }
      order[i] = s;
    }
    if (fresh) {
      for (const [key, s] of fresh) {
        owner.series.set(key, s);
        s.family.live.add(s);
        s.family.version++;
      }
    }
    owner.order = order;
    const id = ++this.commitId;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const s = order[i];
      s.seen = id;
      s.kind = e.kind;
      switch (e.kind) {
        case 'gauge':
          if (s.value !== e.value) {
            s.value = e.value;
            s.family.version++;
          }
          break;
        case 'counter': {
          const prev = Number.isNaN(s.value) ? 0 : s.value;
          // A total below the previous one is a reset of the source: count it as new increments.
          const next = e.value >= prev ? e.value : prev + e.value;
          if (s.value !== next) {
            s.value = next;
            s.family.version++;
          }
          break;
        }
        case 'observe': {
          const bounds = s.family.def.buckets!;
          let b = 0;
          while (b < bounds.length && e.value > bounds[b]) b++;
          // Native buckets only for a series observed from its first observation on.
          if (s.count === 0) s.native ??= new ExponentialBuckets();
          s.native?.observe(e.value);
          s.buckets![b]++;
          s.count++;
          s.sum += e.value;
          s.family.version++;
          break;
        }
        case 'hist': {
          const b = s.buckets!;
          let prevCum = 0;
          for (let k = 0; k < b.length; k++) {
            b[k] = e.cumulative[k] - prevCum;
            prevCum = e.cumulative[k];
          }
          if (s.count !== prevCum || s.sum !== e.value || s.native) s.family.version++;
          s.native = undefined;
          s.count = prevCum;
          s.sum = e.value;
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
    if (reused !== entries.length || entries.length !== prev.length) {
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

  /**
   * The exposition in `format`, rendered at most once per commit and shared by concurrent
   * scrapes. With `staleWhileRenderMs`, a rendering that is behind but younger than
   * `maxCacheAgeMs + staleWhileRenderMs` is served while its successor renders in the
   * background, so a burst of scrapes never waits on a rendering.
   */
  render(format: ExpositionFormat = 'text'): Promise<Rendered> {
    const now = this.now();
    const hit = this.cache.get(format);
    if (hit) {
      const age = now - hit.at;
      if (age < this.maxCacheAgeMs && (hit.generation === this.generation || age < this.minRenderIntervalMs)) return hit.promise;
      if (this.staleWhileRenderMs > 0 && hit.done && age < this.maxCacheAgeMs + this.staleWhileRenderMs) {
        this.refresh(format, hit);
        return hit.promise;
      }
    }
    const entry = this.startRender(format);
    this.cache.set(format, entry);
    entry.promise.catch(() => {
      if (this.cache.get(format) === entry) this.cache.delete(format);
    });
    return entry.promise;
  }

  /** Renders `format` in a later turn of the event loop and swaps it in (gzipped first if scrapes asked for gzip). */
  private refresh(format: ExpositionFormat, old: CacheEntry): void {
    if (this.refreshing.has(format)) return;
    this.refreshing.add(format);
    setImmediate(() => {
      const entry = this.startRender(format);
      entry.promise
        .then((r) => (old.gzipWanted ? r.gzip() : undefined))
        .then(
          () => {
            if (this.cache.get(format) === old) this.cache.set(format, entry);
          },
          () => {},
        )
        .finally(() => this.refreshing.delete(format));
    });
  }

  private startRender(format: ExpositionFormat): CacheEntry {
    const entry: CacheEntry = { generation: this.generation, at: this.now(), promise: undefined as unknown as Promise<Rendered>, done: false, gzipWanted: false };
    let parts: Promise<Buffer[]>;
    let contentType: string;
    if (format === 'protobuf') {
      // The runtime metrics in their text names (counters keep `_total` in protobuf).
      const ours = renderProtobufFamilies(this.families.values());
      contentType = PROTOBUF_CONTENT_TYPE;
      parts = this.textRegistry.getMetricsAsArray().length ? this.textRegistry.getMetricsAsJSON().then((json) => [...ours, renderProtobufRegistry(json)]) : Promise.resolve(ours);
    } else {
      const ours = this.renderFamilies(format);
      const registry = format === 'text' ? this.textRegistry : this.omRegistry;
      contentType = format === 'text' ? client.prometheusContentType : client.openMetricsContentType;
      parts = (registry.getMetricsAsArray().length ? registry.metrics() : Promise.resolve(format === 'text' ? '' : '# EOF\n')).then((runtime) => {
        if (runtime) {
          if (format === 'text' && ours.length) ours.push(NEWLINE);
          ours.push(Buffer.from(runtime));
        }
        return ours;
      });
    }
    entry.promise = parts.then((ours): Rendered => {
      const body = Buffer.concat(ours);
      let gz: Promise<Buffer> | undefined;
      entry.done = true;
      return {
        body,
        contentType,
        gzip: () => {
          entry.gzipWanted = true;
          return (gz ??= gzipAsync(body, { level: 6 }));
        },
      };
    });
    return entry;
  }

  /**
   * The catalog families in the text format or OpenMetrics, written from label text
   * escaped once per series (the same bytes prom-client writes for the same series; a
   * test holds the two to each other). A family none of whose series changed since the
   * last rendering reuses its lines; a series whose value did not change reuses its line.
   */
  private renderFamilies(format: 'text' | 'openmetrics'): Buffer[] {
    const om = format === 'openmetrics';
    const parts: Buffer[] = [];
    for (const f of this.families.values()) {
      if (f.live.size === 0) continue;
      if (f.linesVersion !== f.version) {
        f.lines = Buffer.from(f.def.type === 'histogram' ? histogramLines(f) : sampleLines(f));
        f.linesVersion = f.version;
      }
      // Text separates families with an empty line; OpenMetrics does not.
      if (!om && parts.length) parts.push(NEWLINE);
      parts.push(om ? f.omHeader : f.textHeader, f.lines);
    }
    return parts;
  }

  /** Current values as JSON, built at most once per commit. */
  snapshot(): Snapshot {
    if (this.snapshotCache?.generation === this.generation) return this.snapshotCache.snapshot;
    const metrics: Record<string, Array<{ labels: Labels; value: number; count?: number; sum?: number }>> = {};
    for (const owner of this.owners.values()) {
      for (const s of owner.series.values()) {
        const list = (metrics[s.family.def.name] ??= []);
        list.push(s.family.def.type === 'histogram' ? { labels: s.labels, value: s.count ? s.sum / s.count : 0, count: s.count, sum: s.sum } : { labels: s.labels, value: s.value });
      }
    }
    const snapshot = { timestamp: this.now() / 1000, metrics };
    this.snapshotCache = { generation: this.generation, snapshot };
    return snapshot;
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
    let f = this.families.get(name);
    if (!f) {
      const def = this.defs.get(name);
      if (!def) throw new Error(`metric ${name} is not in the catalog`);
      const type = def.type === 'info' ? 'gauge' : def.type;
      const help = escapeText(def.help);
      const omName = type === 'counter' ? def.name.replace(/_total$/, '') : def.name;
      f = {
        def,
        live: new Set(),
        textHeader: Buffer.from(`# HELP ${def.name} ${help}\n# TYPE ${def.name} ${type}\n`),
        omHeader: Buffer.from(`# HELP ${omName} ${help}\n# TYPE ${omName} ${type}\n`),
        les: def.type === 'histogram' ? [...(def.buckets ?? []).map((b) => `le="${b}"`), 'le="+Inf"'] : [],
        version: 1,
        linesVersion: 0,
        lines: EMPTY,
      };
      this.families.set(name, f);
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
