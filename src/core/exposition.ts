import type { MetricDef } from '../catalog/index.js';
import type { Family, Labels, Series } from './series.js';

/**
 * The exposition writer: the catalog families in the Prometheus text format 0.0.4 or
 * OpenMetrics 1.0 (the protobuf format: render-protobuf.ts), written by hand rather than
 * by prom-client. It is faster because it works from what the series store keeps: label
 * text is escaped once per series, a series whose value did not change reuses its sample
 * line, and a family none of whose series changed reuses its encoded lines; prom-client
 * instead formats every label and value of every series on every scrape. prom-client still writes the process
 * and Node.js runtime metrics (render.ts appends them), and test/core/render-oracle.test.ts
 * holds this writer to the bytes prom-client writes for the same series.
 */

/** Escapes HELP text and label values the way the exposition formats require. */
export function escapeText(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** `a="x",b="y"` for the family's labels, in catalog order, escaped. */
export function labelText(def: MetricDef, labels: Labels): string {
  let out = '';
  for (const l of def.labels) out += `${out ? ',' : ''}${l}="${escapeText(labels[l]).replace(/"/g, '\\"')}"`;
  return out;
}

/** Sample values as the exposition formats spell them. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

export const NEWLINE = Buffer.from('\n');

/** The label text of a series, escaped the first time it is rendered. */
function seriesLabelText(s: Series): string {
  return (s.labelText ??= labelText(s.family.def, s.labels));
}

/** Gauge and counter sample lines of a family; a line is rewritten only when its value changed. */
function sampleLines(f: Family): string {
  const lines = new Array<string>(f.live.size);
  let i = 0;
  for (const s of f.live) {
    if (s.line === '' || !Object.is(s.lineValue, s.value)) {
      if (s.prefix === undefined) {
        const text = seriesLabelText(s);
        s.prefix = `${f.def.name}${text ? `{${text}}` : ''} `;
      }
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
  const les = (f.les ??= [...(f.def.buckets ?? []).map((b) => `le="${b}"`), 'le="+Inf"']);
  const out: string[] = [];
  for (const s of f.live) {
    const b = s.buckets!;
    const text = seriesLabelText(s);
    const extra = text ? ',' + text : '';
    let cum = 0;
    for (let i = 0; i < b.length; i++) {
      cum += b[i];
      // +Inf is the count itself: re-summed fractional buckets (re-bucketed engine histograms) may carry float noise.
      out.push(`${name}_bucket{${les[i]}${extra}} ${i === b.length - 1 ? s.count : cum}\n`);
    }
    const braces = text ? `{${text}}` : '';
    out.push(`${name}_sum${braces} ${formatValue(s.sum)}\n${name}_count${braces} ${s.count}\n`);
  }
  return out.join('');
}

/** Makes the `# HELP`/`# TYPE` lines of a family, once. */
function ensureHeaders(f: Family): void {
  if (f.textHeader && f.omHeader) return;
  const def = f.def;
  const type = def.type === 'info' ? 'gauge' : def.type;
  const help = escapeText(def.help);
  const omName = type === 'counter' ? def.name.replace(/_total$/, '') : def.name;
  f.textHeader = Buffer.from(`# HELP ${def.name} ${help}\n# TYPE ${def.name} ${type}\n`);
  f.omHeader = Buffer.from(`# HELP ${omName} ${help}\n# TYPE ${omName} ${type}\n`);
}

/**
 * The families in the text format or OpenMetrics, as buffers to concatenate. A family
 * none of whose series changed since the last rendering reuses its lines; a series whose
 * value did not change reuses its line.
 */
export function writeFamilies(families: Iterable<Family>, format: 'text' | 'openmetrics'): Buffer[] {
  const om = format === 'openmetrics';
  const parts: Buffer[] = [];
  for (const f of families) {
    if (f.live.size === 0) continue;
    if (f.linesVersion !== f.version || f.lines === undefined) {
      f.lines = Buffer.from(f.def.type === 'histogram' ? histogramLines(f) : sampleLines(f));
      f.linesVersion = f.version;
    }
    ensureHeaders(f);
    // Text separates families with an empty line; OpenMetrics does not.
    if (!om && parts.length) parts.push(NEWLINE);
    parts.push(om ? f.omHeader! : f.textHeader!, f.lines);
  }
  return parts;
}
