import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { nvmlHeader } from './nvml-header.js';
import { has, ROOT } from './procs.js';

const dirOfSources = join(ROOT, 'test/fake-nvml');
const source = join(dirOfSources, 'fake_nvml.c');

/** Why the fake NVML library cannot be built here, or undefined when it can. */
export function fakeNvmlUnavailable(): string | undefined {
  if (!has('gcc')) return 'gcc is not installed: cannot build the fake libnvidia-ml.so.1';
  if (!nvmlHeader()) return "NVIDIA's nvml.h is not installed (scripts/setup-test-tools.sh installs it): cannot build the fake libnvidia-ml.so.1";
  return undefined;
}

/**
 * Builds the fake libnvidia-ml.so.1 against NVIDIA's nvml.h into test/.build/ (cached by the
 * hash of its sources, the header and the flags) and returns its path. `omit` leaves those NVML
 * functions out of the library.
 */
export function buildFakeNvml(omit: readonly string[] = []): string {
  const header = nvmlHeader();
  if (!header) throw new Error(fakeNvmlUnavailable());
  const defines = omit.map((f) => `-DOMIT_${f}`);
  const hasher = createHash('sha256');
  // fake_nvml.c includes the other files of its folder: all of them and the header decide the build.
  for (const f of readdirSync(dirOfSources).sort()) hasher.update(f).update(readFileSync(join(dirOfSources, f)));
  const hash = hasher.update(readFileSync(header)).update(defines.join(' ')).digest('hex').slice(0, 16);
  const dir = join(ROOT, 'test/.build', `fake-nvml-${hash}`);
  const lib = join(dir, 'libnvidia-ml.so.1');
  if (existsSync(lib)) return lib;
  mkdirSync(dir, { recursive: true });
  const tmp = `${lib}.${process.pid}.tmp`;
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-Wall', `-I${dirname(header)}`, ...defines, '-o', tmp, source, '-lpthread'], { stdio: 'pipe' });
  renameSync(tmp, lib); // atomic: parallel test files never load a half-written library
  return lib;
}

/**
 * Writes a fake NVML config (key=value lines) to a fresh temp file and points
 * FAKE_NVML_CONFIG at it. The fake reads it at nvmlInit.
 */
export function writeFakeNvmlConfig(values: Record<string, string | number>): string {
  const file = join(mkdtempSync(join(tmpdir(), 'fake-nvml-')), 'nvml.conf');
  writeFileSync(file, Object.entries(values).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  process.env.FAKE_NVML_CONFIG = file;
  return file;
}
