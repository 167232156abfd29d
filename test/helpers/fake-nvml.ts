import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { has, ROOT } from './procs.js';

const source = join(ROOT, 'test/fake-nvml/fake_nvml.c');

/** Why the fake NVML library cannot be built here, or undefined when it can. */
export function fakeNvmlUnavailable(): string | undefined {
  return has('gcc') ? undefined : 'gcc is not installed: cannot build the fake libnvidia-ml.so.1';
}

/**
 * Builds the fake libnvidia-ml.so.1 into test/.build/ (cached by source hash and flags)
 * and returns its path. `omit` leaves those NVML functions out of the library.
 */
export function buildFakeNvml(omit: readonly string[] = []): string {
  const defines = omit.map((f) => `-DOMIT_${f}`);
  const hash = createHash('sha256').update(readFileSync(source)).update(defines.join(' ')).digest('hex').slice(0, 16);
  const dir = join(ROOT, 'test/.build', `fake-nvml-${hash}`);
  const lib = join(dir, 'libnvidia-ml.so.1');
  if (existsSync(lib)) return lib;
  mkdirSync(dir, { recursive: true });
  const tmp = `${lib}.${process.pid}.tmp`;
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-Wall', ...defines, '-o', tmp, source, '-lpthread'], { stdio: 'pipe' });
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
