import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig, parseListenAddress } from '../../src/config/config.js';
import { envName, parseFlags, type FlagDef } from '../../src/config/flags.js';
import { ConfigError } from '../../src/core/errors.js';

const defs: FlagDef[] = [
  { name: 'web.listen-address', type: 'string', default: ':9842', help: '' },
  { name: 'sample.interval', type: 'duration', default: '1s', min: 100, help: '' },
  { name: 'engine.target', type: 'list', help: '' },
  { name: 'collector.gpu', type: 'bool', default: true, help: '' },
  { name: 'simulate.gpus', type: 'int', default: '8', min: 0, max: 1024, help: '' },
  { name: 'gpu.source', type: 'enum', choices: ['auto', 'nvml'], default: 'auto', help: '' },
];

test('defaults, environment and flags, in increasing precedence', () => {
  assert.equal(envName('web.listen-address'), 'DS_EXPORTER_WEB_LISTEN_ADDRESS');
  assert.equal(parseFlags(defs, []).string('web.listen-address'), ':9842');
  assert.equal(parseFlags(defs, [], { DS_EXPORTER_WEB_LISTEN_ADDRESS: ':1' }).string('web.listen-address'), ':1');
  assert.equal(parseFlags(defs, ['--web.listen-address=:2'], { DS_EXPORTER_WEB_LISTEN_ADDRESS: ':1' }).string('web.listen-address'), ':2');
  assert.equal(parseFlags(defs, ['--web.listen-address', ':3']).string('web.listen-address'), ':3');
});

test('durations, ints, enums, lists and boolean negation', () => {
  const f = parseFlags(defs, ['--sample.interval=250ms', '--simulate.gpus=64', '--engine.target=a', '--engine.target=b,c', '--no-collector.gpu', '--gpu.source=nvml']);
  assert.equal(f.number('sample.interval'), 250);
  assert.equal(f.number('simulate.gpus'), 64);
  assert.deepEqual(f.list('engine.target'), ['a', 'b', 'c']);
  assert.equal(f.bool('collector.gpu'), false);
  assert.equal(f.string('gpu.source'), 'nvml');
});

test('bad input is a ConfigError naming the flag', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--nope'], /unknown flag --nope/],
    [['-x'], /unknown flag -x/],
    [['--sample.interval=fast'], /--sample.interval: invalid duration "fast"/],
    [['--sample.interval=10ms'], /--sample.interval: must be at least 100 ms/],
    [['--simulate.gpus=1.5'], /--simulate.gpus: expected an integer/],
    [['--simulate.gpus=99999'], /--simulate.gpus: must be at most 1024/],
    [['--gpu.source=cuda'], /--gpu.source: expected one of auto\|nvml/],
    [['--web.listen-address'], /--web.listen-address: missing value/],
    [['--collector.gpu=maybe'], /--collector.gpu: expected true or false/],
  ];
  for (const [argv, re] of cases) assert.throws(() => parseFlags(defs, argv), (e: unknown) => e instanceof ConfigError && re.test(e.message), argv.join(' '));
  assert.throws(() => parseFlags(defs, [], { DS_EXPORTER_SIMULATE_GPUS: 'lots' }), /DS_EXPORTER_SIMULATE_GPUS \(--simulate.gpus\): expected an integer/);
});

test('hostile and huge values do not crash the parser', () => {
  const huge = 'x'.repeat(1_000_000);
  assert.throws(() => parseFlags(defs, [`--sample.interval=${huge}`]), ConfigError);
  assert.equal(parseFlags(defs, [`--web.listen-address=${huge}`]).string('web.listen-address')!.length, 1_000_000);
  assert.throws(() => parseFlags(defs, ['--simulate.gpus=NaN']), ConfigError);
  assert.throws(() => parseFlags(defs, ['--simulate.gpus=Infinity']), ConfigError);
});

test('listen addresses', () => {
  assert.deepEqual(parseListenAddress(':9842'), { host: '0.0.0.0', port: 9842 });
  assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListenAddress('[::1]:9842'), { host: '::1', port: 9842 });
  for (const bad of ['9842', 'host:', ':99999', 'a:b:c']) assert.throws(() => parseListenAddress(bad), ConfigError, bad);
});

test('--simulate implies the simulated GPU source and the sim collector, and refuses a real source', () => {
  const c = loadConfig(['--simulate'], {});
  assert.equal(c.flags.string('gpu.source'), 'simulated');
  assert.ok(c.collectors.some((d) => d.name === 'sim'));
  assert.throws(() => loadConfig(['--simulate', '--gpu.source=nvml'], {}), /--simulate conflicts with --gpu.source=nvml/);
  assert.ok(!loadConfig([], {}).collectors.some((d) => d.name === 'sim'));
});
