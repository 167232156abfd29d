#!/usr/bin/env node
// Removes from an installed node_modules tree what the exporter never loads at run time:
// type declarations, source maps, markdown, TypeScript sources, each package's own tests,
// benchmarks, examples and docs, koffi's C++ sources and the musl build next to the glibc
// one. Licence files stay. Used by both image builds (scripts/image/build.ts and the
// Dockerfile), so they ship the same files.
//
//   node scripts/image/prune.mjs APP_DIR      (APP_DIR/node_modules is pruned)
import { readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const FILE = /(\.d\.[cm]?ts|\.map|\.md|\.markdown|\.ts|\.mts|\.cts|\.tsbuildinfo)$|^(\.npmignore|\.eslintrc.*|\.prettierrc.*|\.editorconfig|\.travis\.yml|tsconfig\.json|\.taprc|\.nycrc.*)$/;
/** Directories removed at a package's top level only (yaml/dist/doc or ajv/dist/types are code). */
const PACKAGE_DIR = new Set(['test', 'tests', '__tests__', 'benchmark', 'benchmarks', 'bench', 'example', 'examples', 'docs', 'doc', '.github', 'coverage']);
/** Paths inside node_modules with no run-time use, beyond the rules above. */
const EXTRA = ['@types', 'koffi/src', 'koffi/vendor', 'koffi/cnoke.cjs', '@koromix/koffi-linux-x64/musl_x64'];

/** Prunes APP/node_modules; returns the removed paths relative to APP, sorted. */
export function prune(app) {
  const root = join(app, 'node_modules');
  const removed = [];
  const drop = (abs, rel) => {
    rmSync(abs, { recursive: true, force: true });
    removed.push(rel);
  };
  for (const rel of EXTRA) {
    if (existsSync(join(root, rel))) drop(join(root, rel), `node_modules/${rel}`);
  }
  const walk = (abs, rel, isPackageTop) => {
    for (const name of readdirSync(abs).sort()) {
      const a = join(abs, name);
      const r = `${rel}/${name}`;
      const st = statSync(a, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) {
        if (isPackageTop && PACKAGE_DIR.has(name)) drop(a, r);
        else walk(a, r, existsSync(join(a, 'package.json')) && (name !== 'node_modules'));
      } else if (FILE.test(name) && !/^licen[cs]e/i.test(name)) {
        drop(a, r);
      }
    }
  };
  walk(root, 'node_modules', false);
  return removed.sort();
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const app = process.argv[2];
  if (!app || !existsSync(join(app, 'node_modules'))) {
    process.stderr.write('usage: prune.mjs APP_DIR (with APP_DIR/node_modules installed)\n');
    process.exit(2);
  }
  const removed = prune(app);
  process.stdout.write(`prune: removed ${removed.length} paths from ${app}/node_modules\n`);
}
