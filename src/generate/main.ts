import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateAll } from './index.js';
import { syncGenerated } from './sync.js';

/**
 * `npm run generate` writes the dashboards, rule files, metric reference and the Helm
 * chart's copies; `npm run generate -- --check` writes nothing and fails naming every
 * file that differs from what the generator produces.
 */
function run(argv: string[]): number {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const check = argv.includes('--check');
  const stale = syncGenerated(root, generateAll(), { check });
  const list = stale.map((s) => `  ${s}\n`).join('');
  if (check) {
    if (stale.length === 0) return 0;
    process.stderr.write(`generated files are stale; run \`npm run generate\`:\n${list}`);
    return 1;
  }
  process.stdout.write(stale.length ? `generate: wrote\n${list}` : 'generate: everything up to date\n');
  return 0;
}

process.exitCode = run(process.argv.slice(2));
