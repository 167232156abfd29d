import type { ExpositionFormat } from '../core/store.js';
import { PROTOBUF_CONTENT_TYPE } from '../core/render-protobuf.js';

/**
 * Content negotiation for `/metrics`, as Prometheus' own client library does it: the Accept
 * header's media ranges are taken by weight (`q`, default 1; equal weights keep their order,
 * a concrete type before a wildcard), and the first range that one of the formats below
 * matches decides. A format matches when the type and subtype are equal (or `*`) and each of
 * the format's parameters has the same value in the range (a range without `version` means
 * OpenMetrics 0.0.1 or text 0.0.4); so a bare wildcard range (any type, any subtype) matches nothing and falls back to text.
 * Anything unknown, malformed or unmatched falls back to the text format: never an error.
 * Unlike that library, a range with weight 0 (or an unreadable weight) is not acceptable and is
 * skipped, as HTTP defines it.
 *
 * The `escaping` parameter (`allow-utf-8`, `underscores`, `dots`, `values`) of the ranges read
 * up to and including the match names the scheme the client wants for names outside the
 * legacy character set. Every name the exporter serves is in the legacy set, so each scheme
 * serves the same bytes; the response's content type names the negotiated scheme. The text
 * and OpenMetrics content types carry it only when the client named one (a plain request gets
 * them unchanged); the protobuf one always does (`underscores` when none was named, that
 * library's default).
 */

/** One media range of an Accept header. */
export interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  readonly q: number;
  readonly params: ReadonlyMap<string, string>;
}

/** The escaping schemes of the exposition formats. */
export const ESCAPING_SCHEMES = ['allow-utf-8', 'underscores', 'dots', 'values'] as const;
export type EscapingScheme = (typeof ESCAPING_SCHEMES)[number];

/** The answer to one Accept header. */
export interface Negotiated {
  readonly format: ExpositionFormat;
  /** The response's content type: format, version, and the escaping scheme where it is said. */
  readonly contentType: string;
  /** The escaping scheme the client named, if any. */
  readonly escaping?: EscapingScheme;
}

interface Candidate {
  readonly format: ExpositionFormat;
  readonly type: string;
  readonly subtype: string;
  readonly params: ReadonlyArray<readonly [string, string]>;
  readonly contentType: string;
}

// In the order a client that accepts OpenMetrics prefers them when one range matches several.
const CANDIDATES: readonly Candidate[] = [
  { format: 'openmetrics', type: 'application', subtype: 'openmetrics-text', params: [['version', '1.0.0']], contentType: 'application/openmetrics-text; version=1.0.0; charset=utf-8' },
  { format: 'openmetrics', type: 'application', subtype: 'openmetrics-text', params: [['version', '0.0.1']], contentType: 'application/openmetrics-text; version=0.0.1; charset=utf-8' },
  { format: 'protobuf', type: 'application', subtype: 'vnd.google.protobuf', params: [['proto', 'io.prometheus.client.MetricFamily'], ['encoding', 'delimited']], contentType: PROTOBUF_CONTENT_TYPE },
  { format: 'text', type: 'text', subtype: 'plain', params: [['version', '0.0.4']], contentType: 'text/plain; version=0.0.4; charset=utf-8' },
];
const TEXT = CANDIDATES[3];

/** Longer headers are read up to this many characters (Node refuses far shorter ones by default). */
const MAX_ACCEPT_LENGTH = 64 * 1024;

/** The media ranges of an Accept header, best first; ranges that cannot be read are left out. */
export function parseAccept(header: string): MediaRange[] {
  const ranges: Array<MediaRange & { at: number }> = [];
  const parts = header.slice(0, MAX_ACCEPT_LENGTH).split(',');
  for (let at = 0; at < parts.length; at++) {
    const [range, ...rest] = parts[at].split(';');
    const r = range.trim().toLowerCase();
    let type: string;
    let subtype: string;
    if (r === '*') {
      type = subtype = '*';
    } else {
      const slash = r.split('/');
      if (slash.length !== 2) continue;
      type = slash[0].trim();
      subtype = slash[1].trim();
      if (!type || !subtype || (type === '*' && subtype !== '*')) continue;
    }
    let q = 1;
    const params = new Map<string, string>();
    for (const p of rest) {
      const kv = p.split('=');
      if (kv.length !== 2) continue;
      const key = kv[0].trim().toLowerCase();
      let value = kv[1].trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      if (key === 'q') {
        const n = value === '' ? NaN : Number(value);
        q = Number.isFinite(n) ? n : 0;
      } else {
        params.set(key, value);
      }
    }
    ranges.push({ type, subtype, q, params, at });
  }
  ranges.sort((a, b) => b.q - a.q || Number(a.type === '*') - Number(b.type === '*') || Number(a.subtype === '*') - Number(b.subtype === '*') || a.at - b.at);
  return ranges;
}

function matches(r: MediaRange, c: Candidate): boolean {
  if (r.type !== '*' && r.type !== c.type) return false;
  if (r.subtype !== '*' && r.subtype !== c.subtype) return false;
  for (const [key, want] of c.params) {
    let got = r.params.get(key);
    if (got === undefined && key === 'version') {
      if (r.type === 'application' && r.subtype === 'openmetrics-text') got = '0.0.1';
      else if (r.type === 'text' && r.subtype === 'plain') got = '0.0.4';
    }
    if (got !== want) return false;
  }
  return true;
}

function isScheme(s: string | undefined): s is EscapingScheme {
  return s !== undefined && (ESCAPING_SCHEMES as readonly string[]).includes(s);
}

function answer(c: Candidate, escaping: EscapingScheme | undefined): Negotiated {
  const scheme = escaping ?? (c.format === 'protobuf' ? 'underscores' : undefined);
  return { format: c.format, contentType: scheme ? `${c.contentType}; escaping=${scheme}` : c.contentType, escaping };
}

/** The format, content type and escaping scheme for a request's Accept header (text when absent or unusable). */
export function negotiate(accept: string | undefined): Negotiated {
  let escaping: EscapingScheme | undefined;
  if (accept) {
    for (const r of parseAccept(accept)) {
      if (r.q <= 0) continue;
      const e = r.params.get('escaping');
      if (isScheme(e)) escaping = e;
      for (const c of CANDIDATES) if (matches(r, c)) return answer(c, escaping);
    }
  }
  return answer(TEXT, escaping);
}
