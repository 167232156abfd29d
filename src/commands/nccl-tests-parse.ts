import { SourceError } from '../core/errors.js';

/** One measured size of an nccl-tests run, out-of-place or in-place, in base units. */
export interface NcclTestRow {
  readonly op: string;
  readonly sizeBytes: number;
  readonly inPlace: boolean;
  readonly timeSeconds: number;
  readonly algBandwidthBytesPerSecond: number;
  readonly busBandwidthBytesPerSecond: number;
}

/** nccl-tests prints GB/s as 1e9 bytes per second. */
const GB = 1e9;

/** `all_reduce_perf`, `/opt/nccl-tests/build/all_reduce_perf_mpi`, `AllReduce` → `all_reduce`. */
export function normalizeOp(raw: string): string {
  let s = raw.trim().split(/[\\/]/).pop() ?? '';
  s = s.replace(/(_perf)?(_mpi)?$/, '').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  s = s.replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  return s || 'unknown';
}

function num(s: string | undefined): number {
  if (s === undefined || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return NaN;
  return Number(s);
}

function pushRow(out: NcclTestRow[], op: string, size: number, inPlace: boolean, timeUs: number, alg: number, bus: number): void {
  if (!Number.isFinite(timeUs) || timeUs < 0 || !Number.isFinite(bus) || bus < 0) return;
  out.push({ op, sizeBytes: size, inPlace, timeSeconds: timeUs / 1e6, algBandwidthBytesPerSecond: Number.isFinite(alg) && alg >= 0 ? alg * GB : NaN, busBandwidthBytesPerSecond: bus * GB });
}

/**
 * Parses the text table of an nccl-tests binary (`all_reduce_perf` and friends). Columns
 * are located from the table header (`size count type redop root time algbw busbw #wrong`,
 * twice: out-of-place then in-place; also with `cputime` and the per-iteration columns);
 * without a header the current default layout is assumed. `op` comes from `opHint`, the
 * "Collective test starting" line, or stays `unknown`. Pure; throws SourceError when no
 * result row is found.
 */
export function parseNcclTestsText(text: string, opHint?: string): NcclTestRow[] {
  let op = opHint ? normalizeOp(opHint) : undefined;
  let header: string[] | undefined;
  const rows: NcclTestRow[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const start = /^#\s*Collective test starting:\s*(\S+)/.exec(line);
      if (start && !op) op = normalizeOp(start[1]);
      const toks = line.slice(1).trim().split(/\s+/);
      if (toks[0] === 'size' && toks.includes('busbw')) header = toks;
      continue;
    }
    const t = line.split(/\s+/);
    if (!/^\d+$/.test(t[0]) || !/^\d+$/.test(t[1] ?? '')) continue;
    const cols = header ?? ['size', 'count', 'type', 'redop', 'root', 'time', 'algbw', 'busbw', '#wrong', 'time', 'algbw', 'busbw', '#wrong'];
    const timeIdx = cols.flatMap((c, i) => (c === 'time' || c === 'cputime' ? [i] : []));
    if (timeIdx.length === 0) continue;
    const groups = timeIdx.map((ti) => ({ time: ti, alg: cols.indexOf('algbw', ti), bus: cols.indexOf('busbw', ti) }));
    const size = Number(t[0]);
    // Trace-replay rows print only the in-place half: fewer tokens than the header.
    if (groups.length >= 2 && t.length < groups[1].bus + 1) {
      const g = groups[0];
      pushRow(rows, op ?? 'unknown', size, true, num(t[g.time]), num(t[g.alg]), num(t[g.bus]));
      continue;
    }
    groups.slice(0, 2).forEach((g, i) => pushRow(rows, op ?? 'unknown', size, i === 1, num(t[g.time]), num(t[g.alg]), num(t[g.bus])));
  }
  if (rows.length === 0) throw new SourceError('nccl-tests: no result rows found (expected the table printed by e.g. all_reduce_perf)');
  return rows;
}

type JsonObj = Record<string, unknown>;
const isObj = (v: unknown): v is JsonObj => typeof v === 'object' && v !== null && !Array.isArray(v);
const jnum = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'string' ? num(v.trim()) : NaN);

/**
 * Parses the JSON report of nccl-tests (`-J FILE`, format version 2): `results[]` with
 * `size`, `out_of_place`/`in_place` objects of `time` (or `cpu_time`, µs), `alg_bw`,
 * `bus_bw` (GB/s). `op` comes from `opHint`, the program in `args[0]`, or
 * `experiment_name`. Pure; throws SourceError naming what is missing.
 */
export function parseNcclTestsJson(text: string, opHint?: string): NcclTestRow[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SourceError('nccl-tests JSON: not valid JSON', { cause: err });
  }
  if (!isObj(doc)) throw new SourceError('nccl-tests JSON: the document is not an object');
  if (!Array.isArray(doc.results)) throw new SourceError('nccl-tests JSON: "results" is missing or not a list');
  const args = Array.isArray(doc.args) && typeof doc.args[0] === 'string' ? doc.args[0] : undefined;
  const rows: NcclTestRow[] = [];
  doc.results.forEach((r, i) => {
    if (!isObj(r)) throw new SourceError(`nccl-tests JSON: results[${i}] is not an object`);
    const size = jnum(r.size);
    if (!Number.isInteger(size) || size < 0) throw new SourceError(`nccl-tests JSON: results[${i}].size is not a byte count`);
    const name = typeof r.experiment_name === 'string' && r.experiment_name ? r.experiment_name : undefined;
    const op = opHint ? normalizeOp(opHint) : args ? normalizeOp(args) : name ? normalizeOp(name) : 'unknown';
    for (const [key, inPlace] of [['out_of_place', false], ['in_place', true]] as const) {
      const g = r[key];
      if (g === null || g === undefined) continue;
      if (!isObj(g)) throw new SourceError(`nccl-tests JSON: results[${i}].${key} is not an object`);
      pushRow(rows, op, size, inPlace, jnum(g.time ?? g.cpu_time), jnum(g.alg_bw), jnum(g.bus_bw));
    }
  });
  if (rows.length === 0) throw new SourceError('nccl-tests JSON: no result with a time and a bus bandwidth');
  return rows;
}

/** Text or JSON, decided by the first non-blank character. */
export function parseNcclTests(text: string, opHint?: string): NcclTestRow[] {
  return /^\s*\{/.test(text) ? parseNcclTestsJson(text, opHint) : parseNcclTestsText(text, opHint);
}
