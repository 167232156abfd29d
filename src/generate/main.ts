import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateAll } from './index.js';
import { defaultRulesConfig, type RulesConfig, runbookPatternProblem } from './rules/config.js';
import { syncGenerated } from './sync.js';

/**
 * `npm run generate` writes the dashboards, rule files, metric reference and the Helm
 * chart's copies; `npm run generate -- --check` writes nothing and fails naming every
 * file that differs from what the generator produces. `--runbook-url-pattern=URL` points the
 * alerts' runbook links elsewhere (`%s` is the alert's anchor, as the mixins'
 * `runbookURLPattern`); the default is the docs in the repository.
 */
function run(argv: string[]): number {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  let check = false;
  let cfg: RulesConfig = defaultRulesConfig;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--runbook-url-pattern(?:=(.*))?$/.exec(arg);
    if (arg === '--check') check = true;
    else if (m) {
      const pattern = m[1] ?? argv[++i];
      const problem = pattern === undefined ? '--runbook-url-pattern needs a value' : runbookPatternProblem(pattern);
      if (problem) {
        process.stderr.write(`generate: ${problem}\n`);
        return 2;
      }
      cfg = { ...cfg, runbookUrlPattern: pattern! };
    } else {
      process.stderr.write(`generate: unknown argument ${JSON.stringify(arg)} (known: --check, --runbook-url-pattern=URL-with-%s)\n`);
      return 2;
    }
  }
  const stale = syncGenerated(root, generateAll(cfg), { check });
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
