import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CHART, ROOT } from './chart.js';

const generator = join(ROOT, 'node_modules/.bin/readme-generator');

test('the chart README parameters table is fresh (npm run helm-readme)', existsSync(generator) ? {} : { skip: 'readme-generator not installed: npm ci' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ds-readme-'));
  try {
    const copy = join(dir, 'README.md');
    await copyFile(join(CHART, 'README.md'), copy);
    // The generator also refuses values.yaml keys without a `## @param` (and @param for missing keys).
    await promisify(execFile)(generator, ['--values', join(CHART, 'values.yaml'), '--readme', copy]);
    const committed = await readFile(join(CHART, 'README.md'), 'utf8');
    assert.equal(committed, await readFile(copy, 'utf8'), 'helm/ds-exporter/README.md is stale: run npm run helm-readme');
    for (const key of ['gpuSource', 'serviceMonitor.enabled', 'prometheusRule.disabledAlerts', 'dashboards.enabled', 'webConfig.config', 'image.digest']) {
      assert.ok(committed.includes(`| \`${key}\``), `${key} documented`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('package.json has the helm-readme script', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.scripts['helm-readme'], /readme-generator --values helm\/ds-exporter\/values\.yaml --readme helm\/ds-exporter\/README\.md/);
  assert.ok(pkg.devDependencies['@bitnami/readme-generator-for-helm']);
});
