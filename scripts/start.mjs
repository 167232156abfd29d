// `npm start`: runs the built exporter in this very process (npm's shell execs node on it,
// so a signal to the started process reaches the exporter). It never builds; a missing
// or out-of-date dist/ is a one-line error naming the fix.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Newest modification time (ms) of the files under `dir`; 0 when it does not exist. */
function newest(dir) {
  let max = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    max = Math.max(max, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return max;
}

/** Why dist/ of `root` cannot be started, or undefined when it can. */
export function distProblem(dir = root) {
  let built;
  try {
    built = statSync(join(dir, 'dist', 'main.js')).mtimeMs;
  } catch {
    return 'dist/ is missing: run `npm run build` (npm ci builds it too)';
  }
  // src/ is absent in an installed package: nothing to compare with.
  if (newest(join(dir, 'src')) > built) return 'dist/ is older than src/: run `npm run build`';
  return undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const problem = distProblem();
  if (problem) {
    process.stderr.write(`ds-exporter: error: ${problem}\n`);
    process.exit(2);
  }
  await import(pathToFileURL(join(root, 'dist', 'main.js')).href);
}
