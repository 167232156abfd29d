import assert from 'node:assert/strict';
import { parseExposition } from '../../src/parse/exposition.js';
/**
 * A small protobuf decoder for the tests, written from the wire-format specification and
 * independent of src/core/protobuf.ts: varints are read as BigInt, packed and unpacked
 * repeated fields are both accepted, unknown fields are kept, and anything malformed throws.
 * On top of it, the `io.prometheus.client.MetricFamily` messages of the delimited exposition
 * are turned into plain objects.
 */

export type Field = { no: number; wire: 0; int: bigint } | { no: number; wire: 1; bits: Buffer } | { no: number; wire: 2; bytes: Buffer } | { no: number; wire: 5; bits: Buffer };

function readVarint(buf: Buffer, at: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (at >= buf.length) throw new Error(`varint runs past the end at ${at}`);
    const b = buf[at++];
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [v, at];
    shift += 7n;
  }
  throw new Error('varint longer than 10 bytes');
}

/** All fields of one message, in order. */
export function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at < buf.length) {
    const [key, next] = readVarint(buf, at);
    at = next;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (no === 0) throw new Error('field number 0');
    if (wire === 0) {
      const [int, n] = readVarint(buf, at);
      at = n;
      out.push({ no, wire, int });
    } else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4;
      if (at + len > buf.length) throw new Error('fixed field runs past the end');
      out.push({ no, wire, bits: buf.subarray(at, at + len) });
      at += len;
    } else if (wire === 2) {
      const [len, n] = readVarint(buf, at);
      at = n;
      if (at + Number(len) > buf.length) throw new Error(`length ${len} runs past the end`);
      out.push({ no, wire, bytes: buf.subarray(at, at + Number(len)) });
      at += Number(len);
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

/** The messages of a delimited stream (each preceded by its varint length). */
export function delimited(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const [len, n] = readVarint(buf, at);
    if (n + Number(len) > buf.length) throw new Error(`message of ${len} bytes at ${at} runs past the end`);
    out.push(buf.subarray(n, n + Number(len)));
    at = n + Number(len);
  }
  return out;
}

const unzig = (v: bigint): number => Number((v >> 1n) ^ -(v & 1n));
const double = (f: Field): number => {
  if (f.wire !== 1) throw new Error(`field ${f.no}: expected a double`);
  return f.bits.readDoubleLE(0);
};
const uint = (f: Field): number => {
  if (f.wire !== 0) throw new Error(`field ${f.no}: expected a varint`);
  return Number(f.int);
};
const str = (f: Field): string => {
  if (f.wire !== 2) throw new Error(`field ${f.no}: expected bytes`);
  return new TextDecoder('utf-8', { fatal: true }).decode(f.bytes);
};
const msg = (f: Field): Field[] => {
  if (f.wire !== 2) throw new Error(`field ${f.no}: expected a message`);
  return fields(f.bytes);
};
/** A repeated zigzag integer field, packed or not. */
function sints(fs: Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fs) {
    if (f.no !== no) continue;
    if (f.wire === 0) out.push(unzig(f.int));
    else if (f.wire === 2) {
      let at = 0;
      while (at < f.bytes.length) {
        const [v, n] = readVarint(f.bytes, at);
        out.push(unzig(v));
        at = n;
      }
    } else throw new Error(`field ${no}: not an integer`);
  }
  return out;
}

export interface DecodedSpan {
  offset: number;
  length: number;
}
export interface DecodedHistogram {
  count?: number;
  countFloat?: number;
  sum?: number;
  buckets: Array<{ cumulative?: number; cumulativeFloat?: number; upperBound: number }>;
  schema?: number;
  zeroThreshold?: number;
  zeroCount?: number;
  negativeSpans: DecodedSpan[];
  negativeDeltas: number[];
  positiveSpans: DecodedSpan[];
  positiveDeltas: number[];
}
export interface DecodedMetric {
  labels: Record<string, string>;
  gauge?: number;
  counter?: number;
  untyped?: number;
  summary?: { count: number; sum: number; quantiles: Array<[number, number]> };
  histogram?: DecodedHistogram;
  timestampMs?: number;
}
export interface DecodedFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'SUMMARY' | 'UNTYPED' | 'HISTOGRAM' | 'GAUGE_HISTOGRAM';
  metrics: DecodedMetric[];
}

const TYPES = ['COUNTER', 'GAUGE', 'SUMMARY', 'UNTYPED', 'HISTOGRAM', 'GAUGE_HISTOGRAM'] as const;

function span(fs: Field[]): DecodedSpan {
  let offset = 0;
  let length = 0;
  for (const f of fs) {
    if (f.no === 1) offset = unzig((f as { int: bigint }).int);
    else if (f.no === 2) length = uint(f);
  }
  return { offset, length };
}

function histogram(fs: Field[]): DecodedHistogram {
  const h: DecodedHistogram = { buckets: [], negativeSpans: [], negativeDeltas: sints(fs, 10), positiveSpans: [], positiveDeltas: sints(fs, 13) };
  for (const f of fs) {
    switch (f.no) {
      case 1: h.count = uint(f); break;
      case 4: h.countFloat = double(f); break;
      case 2: h.sum = double(f); break;
      case 3: {
        const b: DecodedHistogram['buckets'][number] = { upperBound: NaN };
        for (const g of msg(f)) {
          if (g.no === 1) b.cumulative = uint(g);
          else if (g.no === 4) b.cumulativeFloat = double(g);
          else if (g.no === 2) b.upperBound = double(g);
        }
        h.buckets.push(b);
        break;
      }
      case 5: h.schema = unzig((f as { int: bigint }).int); break;
      case 6: h.zeroThreshold = double(f); break;
      case 7: h.zeroCount = uint(f); break;
      case 9: h.negativeSpans.push(span(msg(f))); break;
      case 12: h.positiveSpans.push(span(msg(f))); break;
    }
  }
  return h;
}

function metric(fs: Field[]): DecodedMetric {
  const m: DecodedMetric = { labels: {} };
  for (const f of fs) {
    switch (f.no) {
      case 1: {
        let name = '';
        let value = '';
        for (const g of msg(f)) {
          if (g.no === 1) name = str(g);
          else if (g.no === 2) value = str(g);
        }
        if (name in m.labels) throw new Error(`label ${name} twice`);
        m.labels[name] = value;
        break;
      }
      case 2: m.gauge = double(msg(f).find((g) => g.no === 1)!); break;
      case 3: m.counter = double(msg(f).find((g) => g.no === 1)!); break;
      case 5: m.untyped = double(msg(f).find((g) => g.no === 1)!); break;
      case 4: {
        const s = { count: 0, sum: 0, quantiles: [] as Array<[number, number]> };
        for (const g of msg(f)) {
          if (g.no === 1) s.count = uint(g);
          else if (g.no === 2) s.sum = double(g);
          else if (g.no === 3) {
            const q = msg(g);
            s.quantiles.push([double(q.find((x) => x.no === 1)!), double(q.find((x) => x.no === 2)!)]);
          }
        }
        m.summary = s;
        break;
      }
      case 7: m.histogram = histogram(msg(f)); break;
      case 6: m.timestampMs = Number(BigInt.asIntN(64, (f as { int: bigint }).int)); break;
    }
  }
  return m;
}

/** The families of a delimited protobuf exposition. */
export function decodeExposition(body: Buffer): DecodedFamily[] {
  return delimited(body).map((b) => {
    const fam: DecodedFamily = { name: '', help: '', type: 'GAUGE', metrics: [] };
    let typeSeen = false;
    for (const f of fields(b)) {
      if (f.no === 1) fam.name = str(f);
      else if (f.no === 2) fam.help = str(f);
      else if (f.no === 3) {
        const t = TYPES[uint(f)];
        if (!t) throw new Error(`unknown type ${uint(f)}`);
        fam.type = t;
        typeSeen = true;
      } else if (f.no === 4) fam.metrics.push(metric(msg(f)));
    }
    if (!typeSeen) fam.type = 'COUNTER'; // proto2 default of an absent enum
    return fam;
  });
}

/**
 * The buckets of one side of a native histogram as index → count (spans and deltas
 * expanded); throws when the spans and deltas disagree or a count goes negative.
 */
export function expandSide(spans: DecodedSpan[], deltas: number[]): Map<number, number> {
  const out = new Map<number, number>();
  let index = 0;
  let d = 0;
  let count = 0;
  spans.forEach((s, k) => {
    index += s.offset;
    if (k > 0 && s.offset < 0) throw new Error('a later span has a negative offset');
    for (let i = 0; i < s.length; i++) {
      if (d >= deltas.length) throw new Error('fewer deltas than span buckets');
      count += deltas[d++];
      if (count < 0) throw new Error(`negative count at bucket ${index}`);
      if (count > 0) out.set(index, count);
      index++;
    }
  });
  if (d !== deltas.length) throw new Error(`${deltas.length - d} deltas left over`);
  return out;
}

/** One sample as the text format would write it: `name{labels} value`, labels sorted, `le` and `quantile` as numbers. */
export interface FlatSample {
  readonly key: string;
  readonly value: number;
}

/** `name{a="x",le="0.5"}` with labels sorted and `le`/`quantile` values normalised to JavaScript's number spelling. */
export function sampleKey(name: string, labels: Record<string, string>): string {
  const parts = Object.entries(labels)
    .map(([k, v]) => [k, k === 'le' || k === 'quantile' ? String(Number(v === '+Inf' ? Infinity : v)) : v] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${parts.join(',')}}`;
}

/** The samples a decoded protobuf exposition stands for in the text format (classic histogram buckets, +Inf = count). */
export function flatten(families: DecodedFamily[]): Map<string, FlatSample[]> {
  const out = new Map<string, FlatSample[]>();
  for (const f of families) {
    const list: FlatSample[] = [];
    const add = (name: string, labels: Record<string, string>, value: number) => list.push({ key: sampleKey(name, labels), value });
    for (const m of f.metrics) {
      if (f.type === 'HISTOGRAM') {
        const h = m.histogram!;
        const count = h.countFloat && h.countFloat > 0 ? h.countFloat : (h.count ?? 0);
        for (const b of h.buckets) {
          if (b.upperBound === Infinity) continue;
          add(`${f.name}_bucket`, { ...m.labels, le: String(b.upperBound) }, b.cumulativeFloat && b.cumulativeFloat > 0 ? b.cumulativeFloat : (b.cumulative ?? 0));
        }
        add(`${f.name}_bucket`, { ...m.labels, le: '+Inf' }, count);
        add(`${f.name}_sum`, m.labels, h.sum ?? 0);
        add(`${f.name}_count`, m.labels, count);
      } else if (f.type === 'SUMMARY') {
        const s = m.summary!;
        for (const [q, v] of s.quantiles) add(f.name, { ...m.labels, quantile: String(q) }, v);
        add(`${f.name}_sum`, m.labels, s.sum);
        add(`${f.name}_count`, m.labels, s.count);
      } else {
        add(f.name, m.labels, m.gauge ?? m.counter ?? m.untyped ?? NaN);
      }
    }
    out.set(f.name, list);
  }
  return out;
}

/** Every family of the text rendering, as sample keys and values, against the protobuf one decoded independently. */
export function assertSameAsText(text: string, pb: DecodedFamily[], opts: { valuesOf?: (family: string) => boolean } = {}): void {
  const exp = parseExposition(text, { format: 'text' });
  const flat = flatten(pb);
  // A family with no series is left out of protobuf (the text format writes its HELP and TYPE alone).
  const nonEmpty = [...exp.families.values()].filter((f) => f.samples.length > 0).map((f) => f.name);
  assert.deepEqual([...flat.keys()], nonEmpty, 'the same families in the same order');
  for (const f of pb) {
    const t = exp.families.get(f.name)!;
    assert.equal(f.help, t.help, `${f.name}: help`);
    assert.equal(f.type.toLowerCase(), t.type, `${f.name}: type`);
    // The text format spells -0 as 0.
    const mine = flat.get(f.name)!.map((s) => [s.key, opts.valuesOf?.(f.name) === false ? 0 : s.value + 0] as const);
    const theirs = t.samples.map((s) => [sampleKey(s.name, s.labels), opts.valuesOf?.(f.name) === false ? 0 : s.value + 0] as const);
    assert.deepEqual(new Map(mine), new Map(theirs), `${f.name}: samples`);
    assert.equal(mine.length, theirs.length, `${f.name}: sample count`);
  }
}


function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

/** A decoded protobuf exposition written back in the text format 0.0.4 (for `promtool check metrics`). */
export function asText(families: DecodedFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type === 'GAUGE_HISTOGRAM' ? 'histogram' : f.type.toLowerCase()}`);
    const line = (name: string, labels: Record<string, string>, v: number) => {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${escapeLabel(x)}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${formatNumber(v)}`);
    };
    for (const m of f.metrics) {
      if (f.type === 'HISTOGRAM') {
        const h = m.histogram!;
        const count = h.countFloat && h.countFloat > 0 ? h.countFloat : (h.count ?? 0);
        for (const b of h.buckets) if (b.upperBound !== Infinity) line(`${f.name}_bucket`, { ...m.labels, le: formatNumber(b.upperBound) }, b.cumulativeFloat && b.cumulativeFloat > 0 ? b.cumulativeFloat : (b.cumulative ?? 0));
        line(`${f.name}_bucket`, { ...m.labels, le: '+Inf' }, count);
        line(`${f.name}_sum`, m.labels, h.sum ?? 0);
        line(`${f.name}_count`, m.labels, count);
      } else if (f.type === 'SUMMARY') {
        for (const [q, v] of m.summary!.quantiles) line(f.name, { ...m.labels, quantile: formatNumber(q) }, v);
        line(`${f.name}_sum`, m.labels, m.summary!.sum);
        line(`${f.name}_count`, m.labels, m.summary!.count);
      } else {
        line(f.name, m.labels, m.gauge ?? m.counter ?? m.untyped ?? NaN);
      }
    }
    out.push('');
  }
  return out.join('\n');
}
