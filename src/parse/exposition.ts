import { SourceError } from '../core/errors.js';

/** Family types of the Prometheus text format and OpenMetrics. */
export type FamilyType =
  | 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  | 'unknown' | 'info' | 'stateset' | 'gaugehistogram';

const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'unknown', 'info', 'stateset', 'gaugehistogram']);
/** The types of the text format 0.0.4 (all that strict parsing accepts). */
const TEXT_TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Label values by label name; nothing is inherited from `Object.prototype`, so any valid label name is a plain own key. */
export type SampleLabels = Record<string, string>;

/** One sample line. */
export interface Sample {
  /** The sample's own name (`x_bucket`, `x_total`, ...). */
  readonly name: string;
  readonly labels: SampleLabels;
  readonly value: number;
  /** Milliseconds since the epoch, when the line carried a timestamp. */
  readonly timestampMs?: number;
}

/** A metric family: its metadata and its samples in the order they came. */
export interface Family {
  readonly name: string;
  type: FamilyType;
  help?: string;
  unit?: string;
  readonly samples: Sample[];
}

/** A parsed payload. */
export interface Exposition {
  readonly families: Map<string, Family>;
  readonly format: 'text' | 'openmetrics';
  /** Sample lines that repeated an earlier series (the last one wins). */
  readonly duplicates: number;
  /** Number of distinct series. */
  readonly series: number;
}

/** Bounds that keep a hostile or broken payload from costing unbounded memory or time. */
export interface ParseOptions {
  /** Longest accepted payload in bytes (UTF-8); default 16 MiB. */
  readonly maxBytes?: number;
  /** Most sample lines accepted; default 200,000. */
  readonly maxSeries?: number;
  /** `auto` (default): OpenMetrics when the payload ends with `# EOF`. Ignored when `strict` (always text). */
  readonly format?: 'auto' | 'text' | 'openmetrics';
  /**
   * The text format 0.0.4 exactly, as node_exporter's textfile collector reads it, where a
   * doubtful file is better refused than guessed at: only the five classic TYPEs, a TYPE
   * before its samples and never a different one, no exemplars, `# EOF` a plain comment,
   * only `_bucket`/`_count`/`_sum` joining a histogram or summary, and a repeated series
   * is an error instead of "last one wins".
   */
  readonly strict?: boolean;
}

export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_SERIES = 200_000;

/** A payload that is not valid exposition text, or exceeds a bound. */
export class ExpositionError extends SourceError {
  override name = 'ExpositionError';
  constructor(message: string, readonly line: number, readonly reason: 'syntax' | 'too_large' | 'too_many_series' = 'syntax') {
    super(line > 0 ? `line ${line}: ${message}` : message);
  }
}

const FLOAT_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * A sample value as Prometheus and the common client libraries write it: decimal or
 * exponent notation, `NaN`, `+Inf`/`-Inf`/`Inf` in any case, and the MSVC spellings
 * `nan(ind)` / `-nan(ind)`. Returns undefined for anything else.
 */
export function parseValue(s: string): number | undefined {
  if (FLOAT_RE.test(s)) return Number(s);
  const l = s.toLowerCase();
  switch (l) {
    case 'nan': case '+nan': case '-nan': case 'nan(ind)': case '-nan(ind)': case '+nan(ind)':
      return NaN;
    case 'inf': case '+inf': case 'infinity': case '+infinity':
      return Infinity;
    case '-inf': case '-infinity':
      return -Infinity;
  }
  return undefined;
}

function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}
function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** The series identity of the line parsed last (name and label text as written). */
let lastKey = '';

/** Label objects inherit from an empty prototype-less object: no `Object.prototype` keys, yet V8 keeps them in fast mode. */
const LABELS_PROTO: object = Object.create(null) as object;

/** A new, empty label set. */
export function newLabels(): SampleLabels {
  return Object.create(LABELS_PROTO) as SampleLabels;
}

let failLine = 0;
function fail(why: string): never {
  throw new ExpositionError(why, failLine);
}

/**
 * Parses one sample line; `om` selects OpenMetrics timestamps (seconds) over text ones (ms);
 * `strict` refuses an exemplar (anything after the value and timestamp).
 */
function parseSampleLine(line: string, lineNo: number, om: boolean, strict: boolean): Sample {
  failLine = lineNo;
  const n = line.length;
  let i = 0;
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  const nameStart = i;
  if (i >= n || !isNameStart(line.charCodeAt(i))) fail('expected a metric name');
  while (i < n && isNameChar(line.charCodeAt(i))) i++;
  const name = line.slice(nameStart, i);
  const labels = newLabels();
  const afterName = i;
  let labelsEnd = i;
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  let hadLabels = false;
  if (i < n && line.charCodeAt(i) === 123 /* { */) {
    hadLabels = true;
    i++;
    for (;;) {
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (i >= n) fail('unterminated label set');
      if (line.charCodeAt(i) === 125 /* } */) {
        i++;
        labelsEnd = i;
        break;
      }
      const ls = i;
      const c0 = line.charCodeAt(i);
      if (!((c0 >= 97 && c0 <= 122) || (c0 >= 65 && c0 <= 90) || c0 === 95)) fail(`invalid label name at column ${i + 1}`);
      while (i < n) {
        const c = line.charCodeAt(i);
        if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (c >= 48 && c <= 57)) i++;
        else break;
      }
      const lname = line.slice(ls, i);
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (line.charCodeAt(i) !== 61 /* = */) fail(`expected "=" after label ${lname}`);
      i++;
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (line.charCodeAt(i) !== 34 /* " */) fail(`expected a quoted value for label ${lname}`);
      i++;
      let value = '';
      let chunk = i;
      for (;;) {
        if (i >= n) fail(`unterminated value of label ${lname}`);
        const c = line.charCodeAt(i);
        if (c === 34) break;
        if (c === 92 /* \ */) {
          value += line.slice(chunk, i);
          const e = line.charCodeAt(i + 1);
          if (e === 92) value += '\\';
          else if (e === 34) value += '"';
          else if (e === 110) value += '\n';
          else fail(`bad escape sequence in value of label ${lname}`);
          i += 2;
          chunk = i;
          continue;
        }
        i++;
      }
      value += line.slice(chunk, i);
      i++; // closing quote
      if (Object.prototype.hasOwnProperty.call(labels, lname)) fail(`duplicate label ${lname} (given twice)`);
      labels[lname] = value;
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      const sep = line.charCodeAt(i);
      if (sep === 44 /* , */) i++;
      else if (sep !== 125) fail(`expected "," or "}" after label ${lname}`);
    }
  }
  // Value, optional timestamp, optional OpenMetrics exemplar ("# {...} v [ts]").
  if (hadLabels ? i < n && !isSpace(line.charCodeAt(i)) : i === afterName) fail('expected a space before the value');
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  let vs = i;
  while (i < n && !isSpace(line.charCodeAt(i))) i++;
  const valueText = line.slice(vs, i);
  if (valueText === '') fail(`missing value for ${name}`);
  const value = parseValue(valueText);
  if (value === undefined) fail(`bad value "${valueText.slice(0, 40)}" for ${name}`);
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  let timestampMs: number | undefined;
  if (i < n && line.charCodeAt(i) !== 35 /* # */) {
    vs = i;
    while (i < n && !isSpace(line.charCodeAt(i))) i++;
    const ts = line.slice(vs, i);
    const t = FLOAT_RE.test(ts) ? Number(ts) : NaN;
    if (!Number.isFinite(t) || (!om && !/^-?\d+$/.test(ts))) fail(`invalid timestamp "${ts.slice(0, 40)}"`);
    timestampMs = om ? t * 1000 : t;
    while (i < n && isSpace(line.charCodeAt(i))) i++;
  }
  if (i < n && (strict || line.charCodeAt(i) !== 35)) fail('unexpected text after "value [timestamp]"');
  // An exemplar is accepted and dropped: nothing here uses it.
  // The series identity as written; label order differences are rare enough to count as distinct.
  lastKey = hadLabels ? line.slice(nameStart, labelsEnd) : name;
  return timestampMs === undefined ? { name, labels, value: value as number } : { name, labels, value: value as number, timestampMs };
}

/** Suffixes by which a sample belongs to a differently named family, and the family types that allow them. */
const SUFFIXES: ReadonlyArray<readonly [string, ReadonlySet<FamilyType>]> = [
  ['_bucket', new Set<FamilyType>(['histogram', 'gaugehistogram'])],
  ['_count', new Set<FamilyType>(['histogram', 'summary'])],
  ['_sum', new Set<FamilyType>(['histogram', 'summary'])],
  ['_created', new Set<FamilyType>(['counter', 'histogram', 'summary'])],
  ['_total', new Set<FamilyType>(['counter'])],
  ['_gcount', new Set<FamilyType>(['gaugehistogram'])],
  ['_gsum', new Set<FamilyType>(['gaugehistogram'])],
  ['_info', new Set<FamilyType>(['info'])],
];
/** The suffixes of the text format 0.0.4 (strict parsing). */
const TEXT_SUFFIXES = SUFFIXES.filter(([suffix]) => suffix === '_bucket' || suffix === '_count' || suffix === '_sum');

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

function seriesKey(name: string, labels: SampleLabels): string {
  const keys = Object.keys(labels).sort();
  let k = name;
  for (const l of keys) k += '\u0000' + l + '\u0001' + labels[l];
  return k;
}

/**
 * Parses a Prometheus text-format or OpenMetrics payload into families. Pure and
 * bounded: throws an ExpositionError (never anything else) for malformed input, a
 * payload over `maxBytes` or more than `maxSeries` sample lines. Metadata lines
 * (HELP, TYPE, UNIT) may come in any order and after their samples; samples named
 * `x_bucket`, `x_count`, `x_sum`, `x_created`, `x_total` join family `x` when `x`
 * is declared with a type that has them; repeated series keep their last value.
 * `strict` narrows all this to the text format 0.0.4 (see ParseOptions.strict).
 */
export function parseExposition(text: string, opts: ParseOptions = {}): Exposition {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
  if (typeof text !== 'string') throw new ExpositionError('payload is not text', 0);
  // String length bounds the UTF-8 size from below (3 bytes per UTF-16 unit at most).
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes)) {
    throw new ExpositionError(`payload larger than ${maxBytes} bytes`, 0, 'too_large');
  }
  const strict = opts.strict === true;
  let om: boolean;
  if (strict) om = false;
  else if (opts.format === 'openmetrics') om = true;
  else if (opts.format === 'text') om = false;
  else om = /(^|\n)# EOF\r?\n?\s*$/.test(text.length > 64 ? text.slice(-64) : text);

  const meta = new Map<string, { type?: FamilyType; help?: string; unit?: string }>();
  const raw: Sample[] = [];
  const keys: string[] = [];
  // Strict parsing only: sample names seen (a TYPE must come first) and series seen (no repeats).
  const sampleNames = new Set<string>();
  const strictSeries = new Set<string>();
  let lineNo = 0;
  let pos = 0;
  let sawEof = false;
  const len = text.length;
  while (pos < len) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = len;
    let line = text.slice(pos, end);
    pos = end + 1;
    lineNo++;
    if (line.length > 0 && line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    if (sawEof) {
      if (line.trim() !== '') throw new ExpositionError('content after # EOF', lineNo);
      continue;
    }
    let k = 0;
    while (k < line.length && isSpace(line.charCodeAt(k))) k++;
    if (k === line.length) continue;
    if (line.charCodeAt(k) === 35 /* # */) {
      const m = /^#[ \t]+(HELP|TYPE|UNIT)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line.slice(k));
      if (!m) {
        if (!strict && /^#[ \t]*EOF[ \t]*$/.test(line.slice(k))) sawEof = true;
        continue; // a plain comment
      }
      const [, kw, fname, rest = ''] = m;
      if (strict && kw === 'UNIT') continue; // not a keyword of the text format: a plain comment
      if (!NAME_RE.test(fname)) throw new ExpositionError(`invalid metric name in ${kw} line`, lineNo);
      let md = meta.get(fname);
      if (!md) meta.set(fname, (md = {}));
      if (kw === 'TYPE') {
        const t = strict ? rest.trim() : rest.trim().toLowerCase();
        if (!(strict ? TEXT_TYPES : TYPES).has(t)) throw new ExpositionError(`unknown type "${rest.trim().slice(0, 40)}" for ${fname}`, lineNo);
        if (strict) {
          const late = sampleNames.has(fname) || ((t === 'histogram' || t === 'summary') && TEXT_SUFFIXES.some(([suffix]) => sampleNames.has(fname + suffix)));
          if (late) throw new ExpositionError(`TYPE of ${fname} after its samples`, lineNo);
          if (md.type && md.type !== 'untyped' && md.type !== t) throw new ExpositionError(`second TYPE for ${fname}`, lineNo);
          md.type = t as FamilyType;
        } else md.type ??= t as FamilyType;
      } else if (kw === 'HELP') {
        md.help ??= unescapeHelp(rest);
      } else {
        md.unit ??= rest.trim();
      }
      continue;
    }
    if (raw.length >= maxSeries) throw new ExpositionError(`more than ${maxSeries} samples`, lineNo, 'too_many_series');
    const sample = parseSampleLine(line, lineNo, om, strict);
    if (strict) {
      const key = seriesKey(sample.name, sample.labels);
      if (strictSeries.has(key)) throw new ExpositionError(`duplicate sample for ${sample.name}`, lineNo);
      strictSeries.add(key);
      sampleNames.add(sample.name);
    }
    raw.push(sample);
    keys.push(lastKey);
  }

  const families = new Map<string, Family>();
  const seen = new Map<string, { family: Family; index: number }>();
  let duplicates = 0;
  const familyFor = (sampleName: string): Family => {
    let fname = sampleName;
    let md = meta.get(sampleName);
    if (!md?.type) {
      for (const [suffix, allowed] of strict ? TEXT_SUFFIXES : SUFFIXES) {
        if (!sampleName.endsWith(suffix)) continue;
        const base = sampleName.slice(0, -suffix.length);
        const bm = meta.get(base);
        if (bm?.type && allowed.has(bm.type)) {
          fname = base;
          md = bm;
          break;
        }
      }
    }
    let f = families.get(fname);
    if (!f) {
      f = { name: fname, type: md?.type ?? 'untyped', help: md?.help, unit: md?.unit, samples: [] };
      families.set(fname, f);
    }
    return f;
  };
  let lastName = '';
  let lastFamily: Family | undefined;
  for (let j = 0; j < raw.length; j++) {
    const sample = raw[j];
    const family = sample.name === lastName ? lastFamily! : familyFor(sample.name);
    lastName = sample.name;
    lastFamily = family;
    const key = keys[j];
    const prev = seen.get(key);
    if (prev) {
      duplicates++;
      prev.family.samples[prev.index] = sample;
    } else {
      seen.set(key, { family, index: family.samples.length });
      family.samples.push(sample);
    }
  }
  // Families declared but without samples are still families (a HELP/TYPE pair alone).
  for (const [name, md] of meta) {
    if (!families.has(name) && md.type) families.set(name, { name, type: md.type, help: md.help, unit: md.unit, samples: [] });
  }
  return { families, format: om ? 'openmetrics' : 'text', duplicates, series: seen.size };
}

/** One histogram series: cumulative bucket counts by upper bound, ascending, ending at +Inf. */
export interface HistogramSeries {
  /** The series labels without `le`. */
  readonly labels: SampleLabels;
  /** Upper bounds ascending; the last is always +Inf. */
  readonly bounds: number[];
  /** Cumulative counts per bound. */
  readonly counts: number[];
  readonly sum?: number;
}

/**
 * Groups the samples of a histogram family (or of untyped `base_bucket` / `base_count` /
 * `base_sum` families) into series. A series without a `+Inf` bucket gets one from
 * `_count` (or from its largest bucket); buckets with an unparseable `le` are dropped.
 */
export function histogramSeries(exp: Exposition, base: string): HistogramSeries[] {
  const fam = exp.families.get(base);
  let samples: Sample[];
  if (fam && (fam.type === 'histogram' || fam.type === 'gaugehistogram')) samples = fam.samples;
  else if (!fam || fam.type === 'untyped' || fam.type === 'unknown') {
    samples = [];
    for (const suffix of ['_bucket', '_count', '_sum']) {
      const f = exp.families.get(base + suffix);
      if (f && (f.type === 'untyped' || f.type === 'unknown')) samples.push(...f.samples);
    }
  } else return [];
  const groups = new Map<string, { labels: SampleLabels; buckets: Map<number, number>; count?: number; sum?: number }>();
  for (const s of samples) {
    let kind: 'bucket' | 'count' | 'sum';
    if (s.name === base + '_bucket' || s.name === base + '_gbucket') kind = 'bucket';
    else if (s.name === base + '_count' || s.name === base + '_gcount') kind = 'count';
    else if (s.name === base + '_sum' || s.name === base + '_gsum') kind = 'sum';
    else continue;
    const labels = newLabels();
    for (const k of Object.keys(s.labels)) if (k !== 'le') labels[k] = s.labels[k];
    const key = seriesKey('', labels);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { labels, buckets: new Map() }));
    if (kind === 'bucket') {
      const le = s.labels.le === undefined ? undefined : parseValue(s.labels.le);
      if (le === undefined || Number.isNaN(le)) continue;
      g.buckets.set(le, s.value);
    } else if (kind === 'count') g.count = s.value;
    else g.sum = s.value;
  }
  const out: HistogramSeries[] = [];
  for (const g of groups.values()) {
    const bounds = [...g.buckets.keys()].sort((a, b) => a - b);
    if (bounds.length === 0 && g.count === undefined) continue;
    const counts = bounds.map((b) => g.buckets.get(b)!);
    if (bounds[bounds.length - 1] !== Infinity) {
      const last = counts.length ? counts[counts.length - 1] : 0;
      bounds.push(Infinity);
      counts.push(g.count !== undefined && g.count >= last ? g.count : last);
    }
    out.push({ labels: g.labels, bounds, counts, sum: g.sum });
  }
  return out;
}
