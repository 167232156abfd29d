import type client from 'prom-client';
import { encodeSide, ZERO_THRESHOLD, type ExponentialBuckets } from './native-histogram.js';
import { ProtoWriter, zigzag } from './protobuf.js';
import type { Family, Series } from './series.js';

/**
 * The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily` messages, each
 * preceded by its varint length), written directly from the store's series. Field numbers
 * are those of prometheus/client_model's metrics.proto:
 *
 *   MetricFamily  1 name, 2 help, 3 type (COUNTER 0, GAUGE 1, SUMMARY 2, UNTYPED 3, HISTOGRAM 4), 4 metric
 *   Metric        1 label, 2 gauge, 3 counter, 4 summary, 5 untyped, 7 histogram (6 timestamp_ms: never written,
 *                 the text format has no timestamps either)
 *   LabelPair     1 name, 2 value
 *   Gauge/Counter/Untyped  1 value
 *   Summary       1 sample_count, 2 sample_sum, 3 quantile { 1 quantile, 2 value }
 *   Histogram     1 sample_count, 4 sample_count_float, 2 sample_sum, 3 bucket { 1 cumulative_count,
 *                 4 cumulative_count_float, 2 upper_bound }, 5 schema, 6 zero_threshold, 7 zero_count,
 *                 9 negative_span { 1 offset, 2 length }, 10 negative_delta, 12 positive_span, 13 positive_delta
 */

/** The content type of the delimited protobuf exposition (the escaping parameter is added by negotiation). */
export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

const TYPE_COUNTER = 0;
const TYPE_GAUGE = 1;
const TYPE_SUMMARY = 2;
const TYPE_UNTYPED = 3;
const TYPE_HISTOGRAM = 4;

/** Each family's encoded message, valid while the family's version is unchanged. */
const familyCache = new WeakMap<Family, { version: number; bytes: Buffer }>();
const scratch = new ProtoWriter(1 << 16);
const labelScratch = new ProtoWriter(1024);

/** The encoded `label` fields of a series, in catalog order (fixed for the series' life, so encoded once). */
function seriesLabels(s: Series): Uint8Array {
  let b = s.pbLabels;
  if (!b) {
    const w = labelScratch.reset();
    for (const name of s.family.def.labels) w.fork(1).string(1, name).string(2, s.labels[name]).join();
    b = s.pbLabels = w.copy();
  }
  return b;
}

/** A gauge, counter or untyped series: its label pairs and one message holding a double (9 bytes). */
function writeScalar(w: ProtoWriter, labels: Uint8Array, field: number, v: number): void {
  w.header(4, labels.length + 11).raw(labels).header(field, 9).double(1, v);
}

/** A family's type as the exposition spells it (info metrics are gauges, as in the text format). */
function familyType(t: Family['def']['type']): number {
  switch (t) {
    case 'counter':
      return TYPE_COUNTER;
    case 'histogram':
      return TYPE_HISTOGRAM;
    default:
      return TYPE_GAUGE;
  }
}

/** Writes the native part of a histogram: schema, zero bucket, spans and deltas of both sides. */
function writeNative(w: ProtoWriter, n: ExponentialBuckets): void {
  w.sint(5, n.schema).double(6, ZERO_THRESHOLD).uint(7, n.zeroCount);
  const neg = encodeSide(n.negative);
  const pos = encodeSide(n.positive);
  for (const sp of neg.spans) w.fork(9).sint(1, sp.offset).uint(2, sp.length).join();
  if (neg.deltas.length) {
    w.fork(10);
    for (const d of neg.deltas) w.varint(zigzag(d));
    w.join();
  }
  for (const sp of pos.spans) w.fork(12).sint(1, sp.offset).uint(2, sp.length).join();
  if (pos.deltas.length) {
    w.fork(13);
    for (const d of pos.deltas) w.varint(zigzag(d));
    w.join();
  }
}

/**
 * The classic buckets (cumulative, +Inf left out: it is the count) and, for a series with
 * exponential buckets, the native histogram in the same message. Counts that are not whole
 * (engine histograms re-bucketed onto the catalog bounds) go in the float fields.
 */
function writeHistogram(w: ProtoWriter, s: Series): void {
  const bounds = s.family.def.buckets ?? [];
  const b = s.buckets!;
  let whole = Number.isInteger(s.count);
  for (let i = 0; i < b.length && whole; i++) whole = Number.isInteger(b[i]);
  w.fork(7);
  if (whole) w.uint(1, s.count);
  else w.double(4, s.count);
  w.double(2, s.sum);
  let cum = 0;
  for (let i = 0; i < bounds.length; i++) {
    cum += b[i];
    w.fork(3);
    if (whole) w.uint(1, cum);
    else w.double(4, cum);
    w.double(2, bounds[i]).join();
  }
  if (s.native) writeNative(w, s.native);
  w.join();
}

/** One family as a length-prefixed `MetricFamily` message. */
function encodeFamily(w: ProtoWriter, f: Family): void {
  const start = w.length;
  const def = f.def;
  w.string(1, def.name).string(2, def.help).uint(3, familyType(def.type));
  if (def.type === 'histogram') {
    for (const s of f.live) {
      w.fork(4).raw(seriesLabels(s));
      writeHistogram(w, s);
      w.join();
    }
  } else {
    const field = def.type === 'counter' ? 3 : 2;
    for (const s of f.live) writeScalar(w, seriesLabels(s), field, s.value);
  }
  w.delimit(start);
}

/**
 * The store's families as delimited `MetricFamily` messages, in the order the text format
 * writes them; a family whose version did not change since its last encoding reuses it.
 */
export function renderProtobufFamilies(families: Iterable<Family>): Buffer[] {
  const parts: Buffer[] = [];
  for (const f of families) {
    if (f.live.size === 0) continue;
    let hit = familyCache.get(f);
    if (!hit || hit.version !== f.version) {
      encodeFamily(scratch.reset(), f);
      hit = { version: f.version, bytes: scratch.finish() };
      familyCache.set(f, hit);
    }
    parts.push(hit.bytes);
  }
  return parts;
}

type RegistryMetric = client.MetricObjectWithValues<client.MetricValueWithName<string>>;
type LabelMap = Partial<Record<string, string | number>>;

function writeLabels(w: ProtoWriter, labels: LabelMap, skip?: string): void {
  for (const [name, value] of Object.entries(labels)) {
    if (name === skip || value === undefined) continue;
    w.fork(1).string(1, name).string(2, String(value)).join();
  }
}

/** Label values except `skip`, as a grouping key. */
function groupKey(labels: LabelMap, skip: string): string {
  let k = '';
  for (const [name, value] of Object.entries(labels)) if (name !== skip && value !== undefined) k += `${name}\u0000${value}\u0001`;
  return k;
}

interface Group {
  labels: LabelMap;
  count: number;
  sum: number;
  /** [upper bound or quantile, cumulative count or value] */
  points: Array<[number, number]>;
}

/** Regroups prom-client's flattened `_bucket`/`_sum`/`_count` (or quantile) samples into one entry per series. */
function groups(m: RegistryMetric, pointLabel: string): Group[] {
  const byKey = new Map<string, Group>();
  for (const v of m.values) {
    const labels = v.labels as LabelMap;
    const key = groupKey(labels, pointLabel);
    let g = byKey.get(key);
    if (!g) {
      const own: LabelMap = {};
      for (const [name, value] of Object.entries(labels)) if (name !== pointLabel) own[name] = value;
      g = { labels: own, count: 0, sum: 0, points: [] };
      byKey.set(key, g);
    }
    const suffix = v.metricName?.slice(m.name.length);
    if (suffix === '_sum') g.sum = v.value;
    else if (suffix === '_count') g.count = v.value;
    else if (labels[pointLabel] !== undefined) {
      const at = labels[pointLabel];
      g.points.push([at === '+Inf' ? Infinity : Number(at), v.value]);
    }
  }
  return [...byKey.values()];
}

/** prom-client's metrics (the process and Node.js runtime ones) as delimited `MetricFamily` messages. */
export function renderProtobufRegistry(metrics: readonly RegistryMetric[]): Buffer {
  const w = new ProtoWriter(16 * 1024);
  for (const m of metrics) {
    if (m.values.length === 0) continue;
    const start = w.length;
    const type = String(m.type);
    const code = type === 'counter' ? TYPE_COUNTER : type === 'gauge' ? TYPE_GAUGE : type === 'histogram' ? TYPE_HISTOGRAM : type === 'summary' ? TYPE_SUMMARY : TYPE_UNTYPED;
    w.string(1, m.name).string(2, m.help).uint(3, code);
    if (code === TYPE_HISTOGRAM) {
      for (const g of groups(m, 'le')) {
        w.fork(4);
        writeLabels(w, g.labels);
        const whole = Number.isInteger(g.count) && g.points.every(([, c]) => Number.isInteger(c));
        w.fork(7);
        if (whole) w.uint(1, g.count);
        else w.double(4, g.count);
        w.double(2, g.sum);
        for (const [bound, cum] of g.points.sort((a, b) => a[0] - b[0])) {
          if (bound === Infinity) continue;
          w.fork(3);
          if (whole) w.uint(1, cum);
          else w.double(4, cum);
          w.double(2, bound).join();
        }
        w.join().join();
      }
    } else if (code === TYPE_SUMMARY) {
      for (const g of groups(m, 'quantile')) {
        w.fork(4);
        writeLabels(w, g.labels);
        w.fork(4).uint(1, Math.max(0, Math.round(g.count))).double(2, g.sum);
        for (const [q, v] of g.points) w.fork(3).double(1, q).double(2, v).join();
        w.join().join();
      }
    } else {
      const field = code === TYPE_COUNTER ? 3 : code === TYPE_GAUGE ? 2 : 5;
      for (const v of m.values) {
        w.fork(4);
        writeLabels(w, v.labels as LabelMap);
        w.fork(field).double(1, v.value).join();
        w.join();
      }
    }
    w.delimit(start);
  }
  return w.finish();
}
