import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './procs.js';

/** The NVML release whose nvml.h the ABI table and the fake library are checked against. */
export const NVML_HEADER_VERSION = '13.3.29';

/**
 * NVIDIA's nvml.h: `$DS_EXPORTER_NVML_H`, else the copy scripts/setup-test-tools.sh installs
 * (PyPI `nvidia-nvml-dev`, cached under ~/.cache/ds-exporter/), else a `shared/third_party/nvml/`
 * folder beside or above the checkout. Undefined when none exists.
 */
export function nvmlHeader(): string | undefined {
  const candidates = [
    process.env.DS_EXPORTER_NVML_H,
    join(homedir(), '.cache/ds-exporter', `nvml-dev-${NVML_HEADER_VERSION}`, 'nvidia/cu13/include/nvml.h'),
  ];
  for (let dir = ROOT, i = 0; i < 4; i++, dir = dirname(dir)) candidates.push(join(dir, 'shared/third_party/nvml/nvml.h'), join(dir, '../shared/third_party/nvml/nvml.h'));
  return candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
}
