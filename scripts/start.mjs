// `npm start`: runs the built exporter in this very process (npm's shell execs node on it,
// so a signal to the started process reaches the exporter). It never builds; a missing
// or out-of-date dist/ is a one-line error naming the fix. While a build of this checkout
// is replacing dist/ (scripts/build.mjs), it waits for it.
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

/** Builds of `dir` in progress: the fresh trees (dist.tmp-<pid>) of builds whose process is alive. */
export function buildsInProgress(dir = root) {
  return readdirSync(dir).filter((name) => {
    const m = /^dist\.tmp-(\d+)$/.exec(name);
    if (!m) return false;
    try {
      process.kill(Number(m[1]), 0);
      return true;
    } catch (err) {
      // Left behind by a build that was killed: not in progress.
      return err.code === 'EPERM';
    }
  });
}

/** Waits (at most `maxMs`) until no build of `dir` is in progress. */
async function waitForBuilds(dir = root, maxMs = 600_000) {
  const until = Date.now() + maxMs;
  let said = false;
  while (buildsInProgress(dir).length > 0 && Date.now() < until) {
    if (!said) process.stderr.write('ds-exporter: waiting for the build in progress to replace dist/\n');
    said = true;
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await waitForBuilds();
  const problem = distProblem();
  if (problem) {
    process.stderr.write(`ds-exporter: error: ${problem}\n`);
    process.exit(2);
  }
  await import(pathToFileURL(join(root, 'dist', 'main.js')).href);
}
