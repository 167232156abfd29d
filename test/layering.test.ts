import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/**
 * The relative module specifiers a file imports: static imports and re-exports (type-only
 * ones included: they tie the layers together just the same) and dynamic `import('...')`.
 * Comments are dropped first, so an example in a doc comment is not an import.
 */
export function importsOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g)) out.push(m[1]);
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]);
  return out;
}

/** Every file under src/ with the src-relative paths of the project files it imports. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const from = relative(SRC, file);
    const deps = importsOf(readFileSync(file, 'utf8'))
      .filter((s) => s.startsWith('.'))
      .map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts'));
    g.set(from, deps);
  }
  return g;
}

const top = (p: string) => p.split('/')[0];
/** `collectors/<name>` of a path under collectors/, else undefined. */
const collectorDir = (p: string) => (p.startsWith('collectors/') && p.split('/').length > 2 ? p.split('/').slice(0, 2).join('/') : undefined);

test('the import parser sees static, type-only, re-exported and dynamic imports, and not comments', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "export { c } from './c.js';",
    "export * from './d.js';",
    "import './side-effect.js';",
    "import {\n  e,\n  f,\n} from './ef.js';",
    "const k = (await import('./lazy.js')).default;",
    "// import { no } from './commented.js';",
    "/** import { no } from './doc.js'; */",
    "const url = 'http://x/y'; // import('./after-url.js')",
  ].join('\n');
  assert.deepEqual(importsOf(text).sort(), ['../b.js', './a.js', './c.js', './d.js', './ef.js', './lazy.js', './side-effect.js']);
});

test('layering: http/ and generate/ never import collectors/; core/ never imports config/ or collectors/; collectors never import each other', () => {
  const g = graph();
  assert.ok(g.size > 50, `found ${g.size} source files`);
  const broken: string[] = [];
  for (const [from, deps] of g) {
    for (const to of deps) {
      const rule =
        (top(from) === 'http' || top(from) === 'generate') && top(to) === 'collectors' ? `${top(from)}/ must not import collectors/`
        : top(from) === 'core' && (top(to) === 'config' || top(to) === 'collectors') ? `core/ must not import ${top(to)}/`
        : collectorDir(from) && collectorDir(to) && collectorDir(from) !== collectorDir(to) ? 'a collector must not import another collector'
        : undefined;
      if (rule) broken.push(`${from} → ${to}: ${rule}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('every relative import names a file that exists', () => {
  const g = graph();
  const missing = [...g].flatMap(([from, deps]) => deps.filter((to) => !g.has(to)).map((to) => `${from} → ${to}`));
  assert.deepEqual(missing, []);
});
