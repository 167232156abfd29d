import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { parse } from 'yaml';
import { generateAll } from '../../src/generate/index.js';
import { defaultRulesConfig, runbookPatternProblem } from '../../src/generate/rules/config.js';
import { ROOT } from './queries.js';

type RuleDoc = { groups: Array<{ rules: Array<{ alert?: string; annotations?: { runbook_url?: string } }> }> };

function alertLinks(files: Map<string, string>): Map<string, string> {
  const doc = parse(files.get('alerts/ds-exporter-alerts.yaml')!) as RuleDoc;
  return new Map(doc.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.alert!, r.annotations?.runbook_url ?? '']));
}

test('the runbook links follow the pattern set at generation time, the repository docs by default', () => {
  const def = alertLinks(generateAll());
  assert.ok(def.size >= 20);
  for (const [alert, url] of def) assert.equal(url, `https://github.com/ds-exporter/ds-exporter/blob/main/docs/runbooks.md#${alert.toLowerCase()}`);
  const ours = alertLinks(generateAll({ ...defaultRulesConfig, runbookUrlPattern: 'https://wiki.example.internal/gpu/runbooks/%s?src=alert' }));
  assert.deepEqual([...ours.keys()], [...def.keys()]);
  for (const [alert, url] of ours) assert.equal(url, `https://wiki.example.internal/gpu/runbooks/${alert.toLowerCase()}?src=alert`);
});

test('a runbook URL pattern that cannot work is refused with the reason', () => {
  assert.equal(runbookPatternProblem(defaultRulesConfig.runbookUrlPattern), undefined);
  assert.equal(runbookPatternProblem('http://runbooks.local:8080/%s'), undefined);
  for (const [bad, why] of [
    ['https://wiki.example/runbooks', /exactly once \(found 0\)/],
    ['https://wiki.example/%s/%s', /exactly once \(found 2\)/],
    ['', /exactly once/],
    ['runbooks/%s', /not an absolute URL/],
    ['javascript:alert(1)//%s', /http\(s\)/],
    ['file:///etc/%s', /http\(s\)/],
    ['https://wiki.example/%s" onclick="x', /space, quote/],
    ['https://wiki.example/<%s>', /space, quote/],
    [`https://wiki.example/${'a'.repeat(100_000)}/%s`, undefined],
  ] as const) {
    const problem = runbookPatternProblem(bad);
    if (why) assert.match(problem ?? '', why, bad.slice(0, 60));
    else assert.equal(problem, undefined);
  }
});

test('npm run generate refuses a bad --runbook-url-pattern and unknown arguments, and writes nothing', () => {
  for (const args of [['--runbook-url-pattern=https://x.example/none'], ['--runbook-url-pattern'], ['--runbook-url'], ['--check', 'extra']]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/generate/main.ts', ...args], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^generate: /, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
  // A good pattern with --check: the committed files use the default, so they differ.
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/generate/main.ts', '--check', '--runbook-url-pattern', 'https://wiki.example/rb/%s'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /alerts\/ds-exporter-alerts\.yaml/);
});
