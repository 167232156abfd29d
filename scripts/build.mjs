// Builds dist/ without ever leaving it half-written: tsc writes a fresh tree beside it,
// which then replaces dist/ by rename; concurrent builds each replace dist/ whole. The fresh
// tree's directory exists from the start of the build: `npm start` waits while it does (a
// start that were loading dist/ during the renames would find files missing).
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const tmp = join(root, `dist.tmp-${process.pid}`);
const old = join(root, `dist.old-${process.pid}`);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp);
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', tmp], { stdio: 'inherit' });
if (r.status !== 0) {
  rmSync(tmp, { recursive: true, force: true });
  process.exit(r.status ?? 1);
}
// Another build may put its dist/ in place between our two renames: then move that one aside too.
for (let attempt = 0; ; attempt++) {
  try {
    renameSync(dist, old);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  try {
    renameSync(tmp, dist);
    break;
  } catch (err) {
    if ((err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') || attempt >= 20) throw err;
    rmSync(old, { recursive: true, force: true });
  }
}
rmSync(old, { recursive: true, force: true });
