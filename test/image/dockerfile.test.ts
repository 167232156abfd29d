// The Dockerfile as BuildKit reads it, without a Docker engine: test/tools/dockerfile-check
// runs BuildKit's Dockerfile frontend (conversion to LLB) and its linter (the rules of
// `docker build --check`) offline, with a stand-in config for the base image.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';

const ROOT = resolve(import.meta.dirname, '../..');
const TOOL = join(ROOT, '.test-tools/bin/dockerfile-check');
const needTool = existsSync(TOOL) ? {} : { skip: 'dockerfile-check not built: run scripts/setup-test-tools.sh (go build in test/tools/dockerfile-check)' };

interface Report {
  warnings: { rule: string; message: string; line: number }[];
  error?: string;
  baseImages: string[];
  llbOps: number;
  user: string;
  entrypoint: string[] | null;
  exposedPorts: string[];
}

function check(path: string): Promise<{ code: number; report: Report }> {
  return new Promise((done, fail) => {
    execFile(TOOL, [path], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (code !== 0 && code !== 1) return fail(new Error(`dockerfile-check failed (${code}): ${stderr}`));
      done({ code, report: JSON.parse(stdout) as Report });
    });
  });
}

test('BuildKit converts the Dockerfile and its linter has nothing to say', needTool, async () => {
  const { code, report } = await check(join(ROOT, 'Dockerfile'));
  assert.equal(report.error, undefined);
  assert.deepEqual(report.warnings, []);
  assert.equal(code, 0);
  assert.ok(report.baseImages.length > 0 && report.baseImages.every((b) => b === 'docker.io/library/node:20-slim'), report.baseImages.join(', '));
  assert.ok(report.llbOps > 3);
  // The final image config: numeric non-root user (the one the chart runs as), entrypoint, port.
  const values = parseYaml(await readFile(join(ROOT, 'helm/ds-exporter/values.yaml'), 'utf8'));
  assert.equal(report.user, `${values.containerSecurityContext.runAsUser}:${values.containerSecurityContext.runAsGroup}`);
  assert.deepEqual(report.entrypoint, ['ds-exporter']);
  assert.ok(report.exposedPorts.includes('9842/tcp'));
});

test('the check fails on what BuildKit refuses or warns about', needTool, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ds-dockerfile-'));
  try {
    const original = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    const cases: [string, string, (r: Report) => boolean][] = [
      ['bad mount type', original.replace('--mount=type=cache,', '--mount=type=cachex,'), (r) => /mount type/.test(r.error ?? '')],
      ['lowercase as', original.replace(' AS build', ' as build'), (r) => r.warnings.some((w) => w.rule === 'FromAsCasing')],
      ['shell-form entrypoint', original.replace('ENTRYPOINT ["ds-exporter"]', 'ENTRYPOINT ds-exporter'), (r) => r.warnings.some((w) => w.rule === 'JSONArgsRecommended')],
    ];
    for (const [what, text, expect] of cases) {
      assert.notEqual(text, original, `${what}: the mutation applies`);
      const path = join(dir, 'Dockerfile');
      await writeFile(path, text);
      const { code, report } = await check(path);
      assert.equal(code, 1, `${what}: exit code`);
      assert.ok(expect(report), `${what}: ${JSON.stringify(report)}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
