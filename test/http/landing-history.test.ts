import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';

// The page's own modules are plain browser JavaScript; they run unchanged under Node.
interface HistoryT {
  times: number[];
  push(t: number, values: Map<string, number | null>): boolean;
  keys(): string[];
  data(): Array<Array<number | null>>;
  hasData(): boolean;
}
const historyModule = '../../assets/history.js';
const formatModule = '../../assets/format.js';
const { History, HistogramMean } = (await import(historyModule)) as {
  History: new (windowS?: number) => HistoryT;
  HistogramMean: new () => { next(samples: Iterable<[string, { count: number; sum: number }]>): Map<string, number | null> };
};
const fmt = (await import(formatModule)) as Record<string, (v: number) => string>;

const m = (o: Record<string, number | null>) => new Map(Object.entries(o));

test('series that appear later are back-filled with gaps; absent ones get gaps', () => {
  const h = new History(300);
  assert.equal(h.push(100, m({ 'GPU 0': 0.5 })), true);
  assert.equal(h.push(101, m({ 'GPU 0': 0.6, 'GPU 1': 0.1 })), true, 'a new series changes the set');
  assert.equal(h.push(102, m({ 'GPU 1': 0.2 })), false, 'a series missing once stays');
  assert.deepEqual(h.data(), [
    [100, 101, 102],
    [0.5, 0.6, null],
    [null, 0.1, 0.2],
  ]);
});

test('the window is bounded and series whose values all left it disappear', () => {
  const h = new History(10);
  h.push(0, m({ a: 1, b: 1 }));
  for (let t = 1; t <= 10; t++) h.push(t, m({ a: t }));
  assert.deepEqual(h.keys(), ['a', 'b']);
  assert.equal(h.push(11, m({ a: 11 })), true, 'b dropped once its only value is older than the window');
  assert.deepEqual(h.keys(), ['a']);
  assert.deepEqual(h.times, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  for (let t = 12; t < 1000; t++) h.push(t, m({ a: t }));
  assert.equal(h.times.length, 11);
  h.push(1000, m({}));
  for (let t = 1001; t <= 1011; t++) h.push(t, m({}));
  assert.equal(h.hasData(), false, 'an absent metric leaves no data once its window passed');
});

test('repeated or older snapshots are ignored; keys sort naturally', () => {
  const h = new History();
  h.push(5, m({ 'GPU 10': 1, 'GPU 2': 1, 'GPU 1': 1 }));
  assert.equal(h.push(5, m({ x: 1 })), false);
  h.push(4, m({ y: 1 }));
  assert.deepEqual(h.keys(), ['GPU 1', 'GPU 2', 'GPU 10']);
  assert.deepEqual(h.times, [5]);
});

test('property: every series is as long as the time axis, inside the window, times increasing', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ dt: fc.integer({ min: -2, max: 40 }), present: fc.subarray(['a', 'b', 'c', 'd']) }), { maxLength: 80 }),
      (steps) => {
        const h = new History(60);
        let t = 0;
        for (const s of steps) {
          t += s.dt;
          h.push(t, new Map(s.present.map((k) => [k, t])));
          const data = h.data();
          for (const col of data) assert.equal(col.length, h.times.length);
          for (let i = 1; i < h.times.length; i++) assert.ok(h.times[i] > h.times[i - 1]);
          if (h.times.length) assert.ok(h.times[h.times.length - 1] - h.times[0] <= 60);
          for (const col of data.slice(1)) assert.ok(col.some((v) => v != null));
        }
      },
    ),
  );
});

test('histogram mean is Δsum/Δcount; no new observations or a reset give a gap', () => {
  const hm = new HistogramMean();
  assert.deepEqual([...hm.next([['ar', { count: 10, sum: 1 }]])], [['ar', null]], 'first sight');
  assert.deepEqual([...hm.next([['ar', { count: 14, sum: 1.2 }]])].map(([k, v]) => [k, Number(v!.toFixed(9))]), [['ar', 0.05]]);
  assert.deepEqual([...hm.next([['ar', { count: 14, sum: 1.2 }]])], [['ar', null]], 'nothing new');
  assert.deepEqual([...hm.next([['ar', { count: 2, sum: 0.1 }]])], [['ar', null]], 'reset');
  assert.deepEqual([...hm.next([['ar', { count: 4, sum: 0.3 }]])].map(([k, v]) => [k, Number(v!.toFixed(9))]), [['ar', 0.1]]);
});

test('formatting picks readable units', () => {
  assert.equal(fmt.percent(0.7183), '72 %');
  assert.equal(fmt.percent(0.02), '2.0 %');
  assert.equal(fmt.bytes(80 * 2 ** 30), '80 GiB');
  assert.equal(fmt.bytes(1536), '1.5 KiB');
  assert.equal(fmt.duration(0.000191), '191 µs');
  assert.equal(fmt.duration(0.00455), '4.55 ms');
  assert.equal(fmt.duration(2), '2 s');
  assert.equal(fmt.tokens(5813.96), '5.81k tok/s');
  assert.equal(fmt.watts(3240), '3.24 kW');
  assert.equal(fmt.watts(489.9), '490 W');
});
