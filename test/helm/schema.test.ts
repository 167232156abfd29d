import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import { stringify } from 'yaml';
import { CHART, ciValuesFiles, mergeValues, needHelm, readYamlFile, renderRaw, scenario } from './chart.js';

/** Values that must be refused: [what, override of the defaults, a fragment of the failing path]. */
const BAD: [string, Record<string, unknown>, string][] = [
  ['unknown top-level key', { serviceMonitors: { enabled: true } }, ''],
  ['unknown key in serviceMonitor', { serviceMonitor: { enable: true } }, '/serviceMonitor'],
  ['unknown key in image', { image: { sha: 'x' } }, '/image'],
  ['digest that is not sha256', { image: { digest: 'sha256:abc' } }, '/image/digest'],
  ['tag as a number', { image: { tag: 1.2 } }, '/image/tag'],
  ['pull policy out of its enum', { image: { pullPolicy: 'Sometimes' } }, '/image/pullPolicy'],
  ['port as a string', { port: '9842' }, '/port'],
  ['port out of range', { port: 70000 }, '/port'],
  ['hostNetwork as a string', { hostNetwork: 'enabled' }, '/hostNetwork'],
  ['kubelet.enrichLabels as a string', { kubelet: { enrichLabels: 'on-request' } }, '/kubelet/enrichLabels'],
  ['kubelet.processAttribution as a string', { kubelet: { processAttribution: 'true' } }, '/kubelet/processAttribution'],
  ['gpuSource out of its enum', { gpuSource: 'simulate' }, '/gpuSource'],
  ['extraArgs as a string', { extraArgs: '--simulate' }, '/extraArgs'],
  ['env entry without a name', { env: [{ value: 'x' }] }, '/env/0'],
  ['SYS_ADMIN added', { containerSecurityContext: { capabilities: { add: ['SYS_ADMIN'] } } }, '/containerSecurityContext/capabilities/add'],
  ['security context key misspelt', { containerSecurityContext: { readOnlyRootFileSystem: false } }, '/containerSecurityContext'],
  ['runAsUser as a name', { podSecurityContext: { runAsUser: 'nobody' } }, '/podSecurityContext/runAsUser'],
  ['memory limit that is not a quantity', { resources: { limits: { memory: 'lots' } } }, '/resources/limits/memory'],
  ['web config on with nothing in it', { webConfig: { enabled: true } }, '/webConfig'],
  ['plain-text basic auth password', { webConfig: { enabled: true, config: { basic_auth_users: { admin: 'hunter2' } } } }, '/webConfig/config/basic_auth_users/admin'],
  ['unknown web config key', { webConfig: { enabled: true, config: { tls_config: {} } } }, '/webConfig/config'],
  ['disabledAlerts as a string', { prometheusRule: { disabledAlerts: 'DsGpuDown' } }, '/prometheusRule/disabledAlerts'],
  ['scrape interval as a number', { serviceMonitor: { interval: 15 } }, '/serviceMonitor/interval'],
  ['dashboard label as a number', { dashboards: { labels: { grafana_dashboard: 1 } } }, '/dashboards/labels/grafana_dashboard'],
  ['update strategy out of its enum', { updateStrategy: { type: 'Recreate' } }, '/updateStrategy/type'],
  ['toleration effect out of its enum', { tolerations: [{ key: 'k', operator: 'Exists', effect: 'NoRun' }] }, '/tolerations/0/effect'],
];

let validate: ValidateFunction;
let defaults: unknown;
let dir: string;

before(async () => {
  const schema = JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8'));
  assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
  defaults = await readYamlFile(join(CHART, 'values.yaml'));
  dir = await mkdtemp(join(tmpdir(), 'ds-values-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function errorsOf(v: ValidateFunction): string {
  return (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

describe('values.schema.json with ajv (draft-07, strict)', () => {
  test('accepts the defaults and every ci scenario', async () => {
    assert.ok(validate(defaults), `values.yaml: ${errorsOf(validate)}`);
    for (const f of await ciValuesFiles()) {
      const merged = mergeValues(defaults, await readYamlFile(f));
      assert.ok(validate(merged), `${scenario(f)}: ${errorsOf(validate)}`);
    }
  });

  for (const [what, override, path] of BAD) {
    test(`refuses ${what}`, () => {
      assert.equal(validate(mergeValues(defaults, override)), false, 'accepted');
      assert.ok(validate.errors!.some((e) => e.instancePath.startsWith(path)), `no error under ${path || '/'}: ${errorsOf(validate)}`);
    });
  }

  test('types the schema does not know are refused at the top level', () => {
    const schemaKeys = Object.keys((validate.schema as { properties: object }).properties);
    const valueKeys = Object.keys(defaults as object);
    assert.deepEqual(valueKeys.filter((k) => !schemaKeys.includes(k)), [], 'values.yaml keys missing from the schema');
  });
});

describe('helm refuses the same values', needHelm, () => {
  for (const [what, override, path] of BAD) {
    test(`helm template refuses ${what}`, async () => {
      const file = join(dir, `${what.replace(/\W+/g, '-')}.yaml`);
      await writeFile(file, stringify(override));
      const r = await renderRaw({ valuesFiles: [file] });
      assert.notEqual(r.code, 0, 'helm rendered it');
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      if (path) assert.ok(r.stderr.includes(`'${path}`) || r.stderr.includes(`'${path.split('/').slice(0, -1).join('/')}`), `helm names ${path}: ${r.stderr}`);
    });
  }
});
