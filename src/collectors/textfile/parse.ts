/**
 * A small, pure parser of the Prometheus text exposition format (0.0.4) for textfiles.
 * It accepts what node_exporter's textfile collector accepts: HELP/TYPE comments, other
 * comments, samples with optional labels and an optional timestamp. Anything else is an
 * error naming the line, so a broken or half-written file is skipped as a whole.
 */

/** One sample line. */
export interface ParsedSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestampMs?: number;
}

/** A family: the samples sharing a metric name (or a histogram/summary's base name). */
export interface ParsedFamily {
  readonly name: string;
  type: string;
  help?: string;
  readonly samples: ParsedSample[];
}

/** A syntax error at a line (1-based). */
export class ExpositionError extends Error {
  override name = 'ExpositionError';
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES = ['_bucket', '_sum', '_count'];

function parseValue(s: string): number | undefined {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** Parses `{a="b",...}` starting at `text[0] === '{'`; returns labels and the rest of the line. */
function parseLabels(text: string, lineNo: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = Object.create(null);
  let i = 1;
  const fail = (why: string): never => {
    throw new ExpositionError(lineNo, why);
  };
  for (;;) {
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const m = LABEL.exec(text.slice(i));
    if (!m) fail(`bad label name at column ${i + 1}`);
    const lname = m![0];
    i += lname.length;
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (text[i] !== '=') fail(`expected = after label ${lname}`);
    i++;
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (text[i] !== '"') fail(`expected " to open the value of label ${lname}`);
    i++;
    let v = '';
    for (;;) {
      if (i >= text.length) fail(`unterminated value of label ${lname}`);
      const c = text[i];
      if (c === '"') break;
      if (c === '\\') {
        const n = text[i + 1];
        if (n === 'n') v += '\n';
        else if (n === '\\' || n === '"') v += n;
        else fail(`bad escape \\${n ?? ''} in label ${lname}`);
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    i++;
    if (Object.prototype.hasOwnProperty.call(labels, lname)) fail(`label ${lname} twice`);
    labels[lname] = v;
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    fail(`expected , or } after label ${lname}`);
  }
}

function familyName(sample: string, typed: Map<string, ParsedFamily>): string {
  for (const s of SUFFIXES) {
    if (sample.endsWith(s)) {
      const base = sample.slice(0, -s.length);
      const f = typed.get(base);
      if (f && (f.type === 'histogram' || f.type === 'summary')) return base;
    }
  }
  return sample;
}

/** Parses a whole exposition text into families, in order of first appearance. Throws ExpositionError. */
export function parseExposition(text: string): ParsedFamily[] {
  const families = new Map<string, ParsedFamily>();
  const seen = new Set<string>();
  const lines = text.split('\n');
  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const line = lines[idx].replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) continue;
      const [, kind, name, arg = ''] = m;
      if (!NAME.test(name) || NAME.exec(name)![0] !== name) throw new ExpositionError(lineNo, `bad metric name "${name}" in ${kind}`);
      let f = families.get(name);
      if (kind === 'TYPE') {
        const t = arg.trim();
        if (!TYPES.has(t)) throw new ExpositionError(lineNo, `unknown type "${t}" for ${name}`);
        if (f && f.samples.length > 0) throw new ExpositionError(lineNo, `TYPE of ${name} after its samples`);
        if (f && f.type !== 'untyped' && f.type !== t) throw new ExpositionError(lineNo, `second TYPE for ${name}`);
        if (!f) families.set(name, (f = { name, type: t, samples: [] }));
        f.type = t;
      } else {
        if (!f) families.set(name, (f = { name, type: 'untyped', samples: [] }));
        f.help = arg.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      }
      continue;
    }
    const nm = NAME.exec(line);
    if (!nm) throw new ExpositionError(lineNo, 'expected a metric name');
    const name = nm[0];
    let rest = line.slice(name.length);
    let labels: Record<string, string> = Object.create(null);
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, lineNo));
    if (!/^[ \t]/.test(rest)) throw new ExpositionError(lineNo, `expected a space before the value of ${name}`);
    const parts = rest.trim().split(/[ \t]+/);
    if (parts.length < 1 || parts.length > 2 || parts[0] === '') throw new ExpositionError(lineNo, `expected "value [timestamp]" after ${name}`);
    const value = parseValue(parts[0]);
    if (value === undefined) throw new ExpositionError(lineNo, `bad value "${parts[0]}" for ${name}`);
    let timestampMs: number | undefined;
    if (parts.length === 2) {
      if (!/^-?\d+$/.test(parts[1])) throw new ExpositionError(lineNo, `bad timestamp "${parts[1]}" for ${name}`);
      timestampMs = Number(parts[1]);
    }
    const key = name + '\u0000' + Object.keys(labels).sort().map((k) => `${k}\u0001${labels[k]}`).join('\u0000');
    if (seen.has(key)) throw new ExpositionError(lineNo, `duplicate sample for ${name}`);
    seen.add(key);
    const fname = familyName(name, families);
    let f = families.get(fname);
    if (!f) families.set(fname, (f = { name: fname, type: 'untyped', samples: [] }));
    f.samples.push({ name, labels: { ...labels }, value, ...(timestampMs !== undefined ? { timestampMs } : {}) });
  }
  return [...families.values()];
}
