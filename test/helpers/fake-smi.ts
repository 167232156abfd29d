import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The fake nvidia-smi executable (answers from test/fixtures/nvidia-smi captures). */
export const FAKE_SMI = join(import.meta.dirname, '..', 'fake-nvidia-smi', 'nvidia-smi');

const KEYS = ['CAPTURE', 'STATE', 'GPUS', 'TIMESTAMP', 'DELAY_MS', 'HANG_AFTER_LINES', 'DIE_AFTER_LINES', 'GARBAGE', 'GARBAGE_AFTER_LINES', 'PIDFILE'] as const;
export type FakeSmiEnv = Partial<Record<(typeof KEYS)[number], string>>;

/**
 * Sets the fake's behaviour for children started from now on (they inherit the
 * environment) and returns a function that restores it.
 */
export function setFakeSmiEnv(vars: FakeSmiEnv): () => void {
  const saved = KEYS.map((k) => [k, process.env[`FAKE_NVIDIA_SMI_${k}`]] as const);
  for (const k of KEYS) delete process.env[`FAKE_NVIDIA_SMI_${k}`];
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) process.env[`FAKE_NVIDIA_SMI_${k}`] = v;
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[`FAKE_NVIDIA_SMI_${k}`];
      else process.env[`FAKE_NVIDIA_SMI_${k}`] = v;
    }
  };
}

/** True while a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Starts the fake recorded in a pid file: pid, start time (ms) and arguments. */
export function fakeStarts(pidfile: string): Array<{ pid: number; at: number; loop: boolean }> {
  let text = '';
  try {
    text = readFileSync(pidfile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [pid, at, ...args] = l.split(' ');
      return { pid: Number(pid), at: Number(at), loop: args.some((a) => a.startsWith('--loop-ms')) };
    });
}
