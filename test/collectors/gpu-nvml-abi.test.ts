import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { type AbiFact, nvmlAbiFacts } from '../../src/collectors/gpu/nvml-abi.js';
import { gpmAbiFacts } from '../../src/collectors/gpu/nvml-gpm.js';
import { nvmlHealthAbi } from '../../src/collectors/gpu/nvml-health.js';
import { nvmlHeader } from '../helpers/nvml-header.js';
import { has } from '../helpers/procs.js';

const header = nvmlHeader();
const skip = !has('gcc') ? 'gcc is not installed' : !header ? "NVIDIA's nvml.h is not installed (scripts/setup-test-tools.sh installs it)" : undefined;

/** Every ABI fact of every NVML module. */
const ALL: readonly AbiFact[] = [...nvmlAbiFacts, ...gpmAbiFacts, ...nvmlHealthAbi];

function label(f: AbiFact): string {
  if (f.kind === 'sizeof') return `sizeof(${f.type})`;
  if (f.kind === 'offsetof') return `offsetof(${f.type}, ${f.field})`;
  return f.name;
}

/** A C program that prints what nvml.h says for each fact: one `label<TAB>value` line each, in order. */
function program(facts: readonly AbiFact[]): string {
  const lines = facts.map((f) => {
    const expr = f.kind === 'sizeof' ? `(long long)sizeof(${f.type})`
      : f.kind === 'offsetof' ? `(long long)offsetof(${f.type}, ${f.field})`
      : `(long long)(${f.name})`;
    return `  printf("%s\\t%lld\\n", ${JSON.stringify(label(f))}, ${expr});`;
  });
  return ['#define NVML_NO_UNVERSIONED_FUNC_DEFS', '#include <nvml.h>', '#include <limits.h>', '#include <stddef.h>', '#include <stdio.h>',
    'int main(void) {', ...lines, '  return 0;', '}', ''].join('\n');
}

/** Compiles and runs the program against nvml.h; each fact's value as the header has it. */
function headerValues(facts: readonly AbiFact[]): Map<string, bigint> {
  const dir = mkdtempSync(join(tmpdir(), 'nvml-abi-'));
  writeFileSync(join(dir, 'abi.c'), program(facts));
  execFileSync('gcc', ['-std=c11', '-Wall', `-I${dirname(header!)}`, '-o', join(dir, 'abi'), join(dir, 'abi.c')], { stdio: 'pipe' });
  const out = execFileSync(join(dir, 'abi'), { encoding: 'utf8' });
  return new Map(out.trim().split('\n').map((l) => {
    const [k, v] = l.split('\t');
    return [k, BigInt(v)];
  }));
}

test('every struct size, field offset, enum value and version constant the NVML code uses matches nvml.h', { skip }, () => {
  const got = headerValues(ALL);
  const wrong: string[] = [];
  for (const f of ALL) {
    const want = BigInt.asIntN(64, BigInt(f.value));
    const have = got.get(label(f));
    if (have !== want) wrong.push(`${label(f)}: the TypeScript side uses ${want}, nvml.h says ${have}`);
  }
  assert.deepEqual(wrong, []);
  // The table is not empty and covers GPM's large struct (a versioned header and 333 metric slots).
  assert.ok(ALL.length > 100, `${ALL.length} facts`);
  assert.equal(got.get('sizeof(nvmlGpmMetricsGet_t)'), 13_344n);
});

test('the check fails on a wrong fact: a size, an offset and a constant off by one are each reported', { skip }, () => {
  const bad: AbiFact[] = [
    { kind: 'sizeof', type: 'nvmlFieldValue_t', value: 41 },
    { kind: 'offsetof', type: 'nvmlMemory_v2_t', field: 'used', value: 31 },
    { kind: 'const', name: 'NVML_GPM_METRIC_SM_UTIL', value: 3 },
  ];
  const got = headerValues(bad);
  for (const f of bad) assert.notEqual(got.get(label(f)), BigInt(f.value), label(f));
});

test('a fact naming something nvml.h does not have fails to compile instead of passing', { skip }, () => {
  assert.throws(() => headerValues([{ kind: 'const', name: 'NVML_NO_SUCH_CONSTANT', value: 1 }]));
  assert.throws(() => headerValues([{ kind: 'offsetof', type: 'nvmlMemory_v2_t', field: 'noSuchField', value: 0 }]));
});

test('the facts have no duplicates that disagree', () => {
  const seen = new Map<string, bigint>();
  for (const f of ALL) {
    const v = BigInt(f.value);
    const prev = seen.get(label(f));
    assert.ok(prev === undefined || prev === v, `${label(f)}: ${prev} and ${v}`);
    seen.set(label(f), v);
  }
});
