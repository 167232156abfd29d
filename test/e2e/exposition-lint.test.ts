import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PROMETHEUS_VERSIONS } from '../helpers/go-tools.js';
import { type Proc, promtoolCheckMetrics, startExporter } from '../helpers/procs.js';

// The whole /metrics of a running exporter (every part simulated, so every family is there:
// GPUs, engine, allocator, peers, collectives, the exporter's own and the Node.js runtime's),
// in every format it serves, goes through `promtool check metrics` of each Prometheus version.

const FORMATS = [
  { name: 'text 0.0.4 (no Accept)', accept: undefined, type: /^text\/plain; version=0\.0\.4/ },
  { name: 'text 0.0.4 (asked for)', accept: 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1', type: /^text\/plain; version=0\.0\.4/ },
  { name: 'OpenMetrics 1.0.0', accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5', type: /^application\/openmetrics-text; version=1\.0\.0/ },
] as const;

/**
 * The OpenMetrics body as the text format names it, for promtool's linter, which reads the text
 * format only: a counter family is named with `_total` there, `# UNIT` and `# EOF` are not part of
 * it, and an exemplar is dropped. Each change is checked against the body it changes, so an
 * OpenMetrics body that breaks the OpenMetrics rules fails here rather than being repaired.
 */
export function openMetricsAsText(om: string): string {
  const lines = om.split('\n');
  assert.equal(lines.at(-1), '', 'the body ends in a newline');
  assert.equal(lines.at(-2), '# EOF', 'the body ends with # EOF');
  const counters = new Set<string>();
  const out: string[] = [];
  for (const line of lines.slice(0, -2)) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type?.[2] === 'counter') {
      assert.doesNotMatch(type[1], /_total$/, `OpenMetrics names the counter family without _total: ${line}`);
      counters.add(type[1]);
      out.push(`# TYPE ${type[1]}_total counter`);
      continue;
    }
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help) {
      out.push(`# HELP ${help[1]}${lines.includes(`# TYPE ${help[1]} counter`) ? '_total' : ''} ${help[2]}`);
      continue;
    }
    if (line.startsWith('# UNIT ')) continue;
    assert.doesNotMatch(line, /^# EOF/, 'a single # EOF, at the end');
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (name && counters.has(name.replace(/_total$/, '').replace(/_created$/, ''))) {
      if (name.endsWith('_created')) continue;
      assert.match(name, /_total$/, `a counter sample carries _total: ${line}`);
    }
    out.push(line.replace(/ # \{.*$/, ''));
  }
  return out.join('\n') + '\n';
}

describe('the full /metrics of a running exporter', () => {
  let exporter: Proc;
  const bodies = new Map<string, string>();

  before(async () => {
    exporter = await startExporter(['--simulate', '--simulate.gpus=4', '--simulate.peers=3']);
    // Two rounds, OpenMetrics first: the first OpenMetrics rendering must not change what the
    // text format says after it.
    for (let round = 0; round < 2; round++) {
      for (const f of [...FORMATS].reverse()) {
        const res = await fetch(`${exporter.url}/metrics`, { headers: f.accept ? { accept: f.accept } : {} });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', f.type, f.name);
        bodies.set(f.name, await res.text());
      }
    }
  });
  after(async () => {
    await exporter?.stop();
  });

  test('every body holds the exporter, the GPU, the engine and the runtime families', () => {
    for (const [name, body] of bodies) {
      for (const fam of ['ds_gpu_busy_seconds_total', 'ds_serving_tokens_total', 'ds_comm_peer_latency_seconds_bucket', 'ds_exporter_build_info', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_gc_duration_seconds_bucket']) {
        assert.match(body, new RegExp(`^${fam}[{ ]`, 'm'), `${name}: ${fam}`);
      }
    }
  });

  test('the text format keeps _total on counters, and no gauge ends in _total', () => {
    for (const f of FORMATS.filter((x) => x.name.startsWith('text'))) {
      const body = bodies.get(f.name)!;
      for (const c of ['process_cpu_seconds_total', 'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total']) {
        assert.match(body, new RegExp(`^# TYPE ${c} counter$`, 'm'), `${f.name}: ${c}`);
        assert.match(body, new RegExp(`^${c} \\d`, 'm'), `${f.name}: ${c}`);
      }
      const bad = [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].filter((m) => (m[2] === 'counter') !== m[1].endsWith('_total')).map((m) => m[0]);
      assert.deepEqual(bad, [], `${f.name}: counters end in _total, nothing else does`);
    }
  });

  for (const v of PROMETHEUS_VERSIONS) {
    for (const f of FORMATS) {
      test(`promtool check metrics ${v.label}: ${f.name}, no finding`, { skip: v.skip }, () => {
        const body = bodies.get(f.name)!;
        const text = f.name.startsWith('OpenMetrics') ? openMetricsAsText(body) : body;
        const out = promtoolCheckMetrics(text, v.promtool);
        assert.equal(out.trim(), '', out);
      });
    }
  }
});
