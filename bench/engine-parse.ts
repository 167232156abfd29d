import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { detectEngine, extractReading } from '../src/collectors/engine/engines.js';
import { parseExposition } from '../src/parse/exposition.js';

/** One payload size: parse and normalize cost, medians over `runs`. */
export interface EngineParseRow {
  payload: string;
  bytes: number;
  samples: number;
  parseMs: number;
  extractMs: number;
  mbPerSecond: number;
}

const FIXTURES = resolve(import.meta.dirname, '../test/fixtures/engines');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The vLLM fixture repeated with `models` distinct model names: a host serving many models. */
function scaled(base: string, models: number): string {
  const parts: string[] = [];
  for (let i = 0; i < models; i++) parts.push(i === 0 ? base : base.replace(/^#.*\n/gm, '').replace(/model_name="[^"]*"/g, `model_name="model-${i}"`));
  return parts.join('');
}

/**
 * Parse time per payload size: the real vLLM, SGLang and Triton payloads, and the vLLM
 * payload scaled to 10, 100 and 500 models (about 10 MB). `quick` runs fewer repetitions.
 */
export function benchEngineParse(opts: { quick?: boolean } = {}): EngineParseRow[] {
  const vllm = readFileSync(resolve(FIXTURES, 'vllm.txt'), 'utf8');
  const payloads: Array<[string, string]> = [
    ['vllm.txt', vllm],
    ['sglang.txt', readFileSync(resolve(FIXTURES, 'sglang.txt'), 'utf8')],
    ['triton.txt', readFileSync(resolve(FIXTURES, 'triton.txt'), 'utf8')],
    ['vllm × 10 models', scaled(vllm, 10)],
    ['vllm × 100 models', scaled(vllm, 100)],
    ['vllm × 500 models', scaled(vllm, 500)],
  ];
  const rows: EngineParseRow[] = [];
  for (const [name, text] of payloads) {
    const bytes = Buffer.byteLength(text);
    const runs = Math.max(3, Math.min(opts.quick ? 20 : 200, Math.floor((opts.quick ? 2e6 : 4e7) / bytes)));
    const parse: number[] = [];
    const extract: number[] = [];
    let samples = 0;
    for (let i = 0; i < runs + 2; i++) {
      const t0 = performance.now();
      const exp = parseExposition(text, { maxBytes: 64 * 1024 * 1024, maxSeries: 10_000_000 });
      const t1 = performance.now();
      extractReading(exp, detectEngine(exp));
      const t2 = performance.now();
      samples = exp.series;
      if (i >= 2) {
        parse.push(t1 - t0);
        extract.push(t2 - t1);
      }
    }
    const parseMs = median(parse);
    rows.push({ payload: name, bytes, samples, parseMs, extractMs: median(extract), mbPerSecond: bytes / 1e6 / (parseMs / 1000) });
  }
  return rows;
}

/** The rows as a markdown table. */
export function engineParseTable(rows: readonly EngineParseRow[]): string {
  const f = (v: number) => (v < 10 ? v.toFixed(3) : v.toFixed(1));
  return [
    '| payload | bytes | samples | parse ms (median) | normalize ms (median) | parse MB/s |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.payload} | ${r.bytes} | ${r.samples} | ${f(r.parseMs)} | ${f(r.extractMs)} | ${f(r.mbPerSecond)} |`),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const rows = benchEngineParse({ quick: process.argv.includes('--quick') });
  process.stdout.write(`# Engine payload parsing\n\nNode ${process.version}; command: \`npx tsx bench/engine-parse.ts\`\n\n${engineParseTable(rows)}\n`);
}
