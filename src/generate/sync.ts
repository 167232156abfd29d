import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GENERATED_DIRS } from './index.js';

/**
 * Compares generated files with what is under `root`; unless `check`, makes the tree match
 * (writes differing files, removes rule/dashboard files the generator no longer produces).
 * Returns every path that was (or would be) changed, with why.
 */
export function syncGenerated(root: string, files: ReadonlyMap<string, string>, opts: { check: boolean }): string[] {
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
    if (!opts.check) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
    }
  }
  for (const dir of GENERATED_DIRS) {
    let names: string[];
    try {
      names = readdirSync(join(root, dir));
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      const rel = `${dir}/${name}`;
      if (files.has(rel) || !/\.(json|ya?ml)$/.test(name)) continue;
      stale.push(`${rel} (not generated)`);
      if (!opts.check) rmSync(join(root, rel));
    }
  }
  return stale;
}
