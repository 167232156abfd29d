import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import client from 'prom-client';
import type { MetricDef } from '../../src/catalog/types.js';
import { SampleStore } from '../../src/core/store.js';

// A small catalog with every kind of family, hostile help text included.
const defs: MetricDef[] = [
  { name: 'ds_t_gauge_ratio', type: 'gauge', unit: 'ratio', source: 'gpu', labels: ['gpu', 'uuid'], help: 'A gauge; help with \\ backslash\nand a newline.' },
  { name: 'ds_t_info', type: 'info', unit: '', source: 'gpu', labels: ['name'], help: 'An info metric.' },
  { name: 'ds_t_events_total', type: 'counter', unit: '', source: 'gpu', labels: ['kind'], help: 'A counter.' },
  { name: 'ds_t_latency_seconds', type: 'histogram', unit: 'seconds', source: 'peers', labels: ['peer'], buckets: [0.001, 0.01, 0.1, 1], help: 'A histogram.' },
  { name: 'ds_t_plain', type: 'gauge', unit: '', source: 'gpu', labels: [], help: 'No labels.' },
];

type Op =
  | { k: 'gauge'; gpu: string; uuid: string; v: number }
  | { k: 'info'; name: string }
  | { k: 'counter'; kind: string; v: number }
  | { k: 'observe'; peer: string; v: number }
  | { k: 'plain'; v: number };

const value = fc.string({ maxLength: 12, unit: fc.constantFrom('a', 'b', '"', '\\', '\n', 'é', ' ', '{', '}', '=', ',', '0') });
const num = fc.oneof(fc.double({ noNaN: true, min: -1e12, max: 1e12 }), fc.integer({ min: 0, max: 1000 }), fc.constantFrom(0, 0.1, 1e-7, 1e21, Infinity, -Infinity));
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('gauge' as const), gpu: fc.constantFrom('0', '1', '2'), uuid: value, v: num }),
  fc.record({ k: fc.constant('info' as const), name: value }),
  fc.record({ k: fc.constant('counter' as const), kind: value, v: fc.integer({ min: 0, max: 1e6 }) }),
  fc.record({ k: fc.constant('observe' as const), peer: value, v: fc.double({ noNaN: true, min: 0, max: 5 }) }),
  fc.record({ k: fc.constant('plain' as const), v: num }),
);

/** What prom-client writes for the same series, one family per block (our renderer leaves empty families out). */
async function oracle(ops: Op[], format: 'text' | 'openmetrics'): Promise<string> {
  const reg = new client.Registry<typeof client.openMetricsContentType>();
  if (format === 'openmetrics') reg.setContentType(client.openMetricsContentType);
  const metrics = new Map<string, client.Gauge<string> | client.Counter<string> | client.Histogram<string>>();
  const get = (name: string) => {
    let m = metrics.get(name);
    if (!m) {
      const d = defs.find((x) => x.name === name)!;
      const o = { name, help: d.help, labelNames: [...d.labels], registers: [reg] };
      m = d.type === 'counter' ? new client.Counter(o) : d.type === 'histogram' ? new client.Histogram({ ...o, buckets: [...d.buckets!] }) : new client.Gauge(o);
      metrics.set(name, m);
    }
    return m;
  };
  const counters = new Map<string, number>();
  for (const o of ops) {
    if (o.k === 'gauge') (get('ds_t_gauge_ratio') as client.Gauge<string>).set({ gpu: o.gpu, uuid: o.uuid }, o.v);
    if (o.k === 'info') (get('ds_t_info') as client.Gauge<string>).set({ name: o.name }, 1);
    if (o.k === 'plain') (get('ds_t_plain') as client.Gauge<string>).set(o.v);
    if (o.k === 'observe') (get('ds_t_latency_seconds') as client.Histogram<string>).observe({ peer: o.peer }, o.v);
    if (o.k === 'counter') {
      // The store treats a total as the counter's value (a drop counts as a reset).
      const prev = counters.get(o.kind) ?? 0;
      const next = o.v >= prev ? o.v : prev + o.v;
      (get('ds_t_events_total') as client.Counter<string>).inc({ kind: o.kind }, next - prev);
      counters.set(o.kind, next);
    }
  }
  return reg.metrics();
}

function ours(ops: Op[]): SampleStore {
  const s = new SampleStore({ catalog: defs });
  // One batch holds every operation: one owner, no series retired.
  const b = s.batch('c');
  ops.forEach((o) => {
    if (o.k === 'gauge') b.gauge('ds_t_gauge_ratio', { gpu: o.gpu, uuid: o.uuid }, o.v);
    if (o.k === 'info') b.info('ds_t_info', { name: o.name });
    if (o.k === 'plain') b.gauge('ds_t_plain', {}, o.v);
    if (o.k === 'observe') b.observe('ds_t_latency_seconds', { peer: o.peer }, o.v);
    if (o.k === 'counter') b.counter('ds_t_events_total', { kind: o.kind }, o.v);
  });
  s.commit(b);
  return s;
}

/** Sample lines grouped by family header, order-insensitive inside a family. */
function normalize(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l && l !== '# EOF')
    .sort();
}

test('the store writes exactly what prom-client writes for the same series (text and OpenMetrics)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (opsIn) => {
      // Distinct series per operation kind keep the comparison about formatting, not about
      // which of two writes to one series wins.
      const seen = new Set<string>();
      const ops = opsIn.filter((o) => {
        if (o.k === 'observe') return true;
        const k = o.k === 'gauge' ? `g${o.gpu}\0${o.uuid}` : o.k === 'info' ? `i${o.name}` : o.k === 'counter' ? `c${o.kind}` : 'p';
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      const store = ours(ops);
      for (const format of ['text', 'openmetrics'] as const) {
        const mine = (await store.render(format)).body.toString();
        const theirs = await oracle(ops, format);
        // prom-client writes HELP/TYPE of families that have no series; ours leaves them out.
        const theirFamilies = theirs.split(format === 'text' ? '\n\n' : /\n(?=# HELP)/).filter((block) => block.split('\n').some((l) => l && !l.startsWith('#')));
        assert.deepEqual(normalize(mine), normalize(theirFamilies.join('\n')), format);
        if (format === 'openmetrics') assert.ok(mine.endsWith('# EOF\n'));
      }
    }),
    { numRuns: 2000 },
  );
});
