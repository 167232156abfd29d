import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_DIRS, generateAll } from './index.js';

/**
 * `npm run generate` writes the dashboards, rule files, metric reference and the Helm
 * chart's copies; `npm run generate -- --check` writes nothing and fails naming every
 * file that differs from what the generator produces.
 */
function run(argv: string[]): number {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const check = argv.includes('--check');
  const files = generateAll();
  const stale: string[] = [];
  for (const [rel, content] of files) {
    const path = join(root, rel);
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) continue;
    stale.push(`${rel} (${current === undefined ? 'missing' : 'differs'})`);
    if (!check) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
    }
  }
  for (const dir of GENERATED_DIRS) {
    let names: string[] = [];
    try {
      names = readdirSync(join(root, dir));
    } catch {
      continue;
    }
    for (const name of names) {
      const rel = `${dir}/${name}`;
      if (files.has(rel) || !/\.(json|ya?ml)$/.test(name)) continue;
      stale.push(`${rel} (not generated)`);
      if (!check) rmSync(join(root, rel));
    }
  }
  if (check) {
    if (stale.length === 0) return 0;
    process.stderr.write(`generated files are stale; run \`npm run generate\`:\n${stale.map((s) => `  ${s}\n`).join('')}`);
    return 1;
  }
  process.stdout.write(stale.length ? `generate: wrote\n${stale.map((s) => `  ${s}\n`).join('')}` : 'generate: everything up to date\n');
  return 0;
}

process.exitCode = run(process.argv.slice(2));
