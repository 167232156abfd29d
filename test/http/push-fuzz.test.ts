import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { testApp } from '../helpers/app.js';

const T0 = 1_700_000_000_000;
const clock = () => {
  const c = { t: T0, now: () => c.t };
  return c;
};

// Valid pushes, then the same with one thing changed, removed or added anywhere, then anything at all.
const validPush = fc.record({
  version: fc.constant(1),
  reporter: fc.record({ job: fc.constantFrom('train', 'j\u00e9b'), rank: fc.integer({ min: 0, max: 2 }), pid: fc.integer({ min: 1, max: 2 }), host: fc.constant('a') }),
  timestamp: fc.double({ min: 1, max: 2e9, noNaN: true }),
  devices: fc.uniqueArray(
    fc.record({ index: fc.integer({ min: 0, max: 8 }), uuid: fc.constantFrom('', 'GPU-1', 'MIG-2'), reserved_bytes: fc.nat(), frac: fc.double({ min: 0, max: 1, noNaN: true }), num_ooms: fc.nat({ max: 9 }), num_alloc_retries: fc.nat({ max: 9 }), largest_free_block_bytes: fc.nat(), inactive_split_bytes: fc.nat() }, { requiredKeys: ['index', 'reserved_bytes', 'frac'] })
      .map(({ frac, ...d }) => ({ ...d, allocated_bytes: Math.floor(d.reserved_bytes * frac) })),
    { maxLength: 4, selector: (d) => d.index },
  ),
  training: fc.record({
    samples: fc.nat(),
    steps: fc.nat(),
    step_durations_seconds: fc.array(fc.double({ min: 1e-3, max: 100, noNaN: true }), { minLength: 1, maxLength: 5 }),
    flops_per_sample: fc.double({ min: 1, max: 1e18, noNaN: true }),
    dtype: fc.constantFrom('bf16', 'fp8'),
  }, { requiredKeys: ['samples', 'steps'] }),
  collectives: fc.uniqueArray(fc.record({ op: fc.constantFrom('all_reduce', 'broadcast', 'all_gather'), durations_seconds: fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: 1, maxLength: 5 }), bytes: fc.nat() }, { requiredKeys: ['op', 'durations_seconds'] }), { maxLength: 3, selector: (c) => c.op }),
}, { requiredKeys: ['version', 'reporter'] });

function paths(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}
function mutate(v: unknown, pick: number, how: 'replace' | 'delete' | 'add', value: unknown): unknown {
  const copy = structuredClone(v) as Record<string | number, unknown>;
  const all = paths(copy).slice(1);
  if (all.length === 0) return value;
  const path = all[pick % all.length];
  let parent: any = copy;
  for (const p of path.slice(0, -1)) parent = parent[p];
  const last = path[path.length - 1];
  if (how === 'replace') parent[last] = value;
  else if (how === 'delete') Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
  else if (parent[last] && typeof parent[last] === 'object' && !Array.isArray(parent[last])) (parent[last] as Record<string, unknown>)['x_' + pick] = value;
  else parent[last] = value;
  return copy;
}
const hostile = fc.oneof(fc.jsonValue(), fc.string({ maxLength: 300 }), fc.constantFrom(-1, 0.5, 2 ** 53, 1e308, '', null, [], {}, '\u0000', 'x'.repeat(500)));
const anyBody = fc.oneof(
  { weight: 3, arbitrary: validPush.map((v) => JSON.stringify(v)) },
  { weight: 5, arbitrary: fc.tuple(validPush, fc.nat(), fc.constantFrom('replace' as const, 'delete' as const, 'add' as const), hostile).map(([v, n, how, x]) => JSON.stringify(mutate(v, n, how, x))) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 200 }), validPush.map((v) => JSON.stringify(v)).chain((s) => fc.nat({ max: s.length - 1 }).map((n) => s.slice(0, n)))) },
);

test('fuzz: 10,000 pushes; a refused one never changes what is stored, nothing answers 500', { timeout: 120_000 }, async () => {
  const c = clock();
  const b = await testApp(['--no-collector.gpu', '--push.max-reporters=8'], { now: c.now });
  const state = b.deps.push;
  const view = () => {
    const batch = b.store.batch('fuzz');
    state.write(batch);
    return JSON.stringify(batch.entries.filter((e) => !e.name.startsWith('ds_exporter_push_')));
  };
  let accepted = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(anyBody, fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain'), async (body, type) => {
      const before = view(); // the previous iteration's view took the waiting observations
      const res = await b.app.inject({ method: 'POST', url: '/api/v1/push', payload: body, headers: { 'content-type': type } });
      assert.ok([202, 400, 415, 429].includes(res.statusCode), `${res.statusCode} ${res.body}`);
      const after = view();
      if (res.statusCode === 202) {
        accepted++;
        assert.equal(type.startsWith('application/json'), true);
      } else {
        refused++;
        assert.equal(typeof res.json().error, 'string');
        assert.equal(after, before, `refused (${res.statusCode} ${res.body}) yet the store changed`);
      }
      c.t += 50;
    }),
    // One fixed seed, so that the mix of accepted and refused bodies (and the floor below) is the same on every run;
    // FC_SEED=<n> tries another one (FC_PATH replays a failure that fast-check printed).
    { numRuns: 10_000, seed: Number(process.env.FC_SEED ?? 20261207), ...(process.env.FC_PATH ? { path: process.env.FC_PATH, verbose: 2 } : {}) },
  );
  assert.ok(accepted > 1500 && refused > 1500, `accepted ${accepted}, refused ${refused}: the fuzz must exercise both`);
  // Everything it holds renders as a valid exposition.
  assert.equal((await b.app.inject({ url: '/metrics' })).statusCode, 200);
  await b.close();
});
