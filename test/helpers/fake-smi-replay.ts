import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAKE_SMI } from './fake-smi.js';
import { has, ROOT } from './procs.js';

/**
 * The compiled nvidia-smi replay (test/fake-nvidia-smi/replay.c): answers each call with the
 * bytes the capture-driven fake printed for exactly the same arguments, recorded beforehand,
 * at the cost of a tiny C process. Benchmarks use it so that the fake's own start-up (a Node
 * process) is not billed to whoever runs nvidia-smi per scrape.
 */

const source = join(ROOT, 'test/fake-nvidia-smi/replay.c');
/** The bytes a driver timestamp is recorded as; the replay writes the current time there. */
export const TIMESTAMP_PLACEHOLDER = '\x01'.repeat(23);
const TIMESTAMP = /\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{3}/g;

/** Why the replay cannot be built here, or undefined when it can. */
export function fakeSmiReplayUnavailable(): string | undefined {
  return has('gcc') ? undefined : 'gcc is not installed: cannot build the nvidia-smi replay';
}

/** Builds the replay into test/.build/ (cached by source hash) and returns the executable's path. */
export function buildFakeSmiReplay(): string {
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 16);
  const dir = join(ROOT, 'test/.build', `fake-smi-replay-${hash}`);
  const bin = join(dir, 'nvidia-smi');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, source], { stdio: 'pipe' });
  renameSync(tmp, bin); // atomic: parallel test files never run a half-written binary
  return bin;
}

/** The arguments without the loop ones (--loop-ms=N, -lms N, --loop=S, -l S), as the replay keys them. */
export function withoutLoopArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (/^(?:--loop-ms|-lms|--loop|-l)=/.test(a)) continue;
    if (a === '--loop-ms' || a === '-lms' || a === '--loop' || a === '-l') {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** The recording's key line and file name for a call with these arguments. */
export function replayKey(args: readonly string[]): { key: string; file: string } {
  const key = withoutLoopArgs(args).join('\x1f');
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(key, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return { key, file: h.toString(16).padStart(16, '0') };
}

/** Runs the capture-driven fake once (no delay, no loop) and returns what it printed and its exit status. */
function runFake(args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; status: number }> {
  const e = { ...env };
  delete e.FAKE_NVIDIA_SMI_DELAY_MS;
  return new Promise((resolve, reject) => {
    execFile(FAKE_SMI, args, { env: e, maxBuffer: 64 << 20, timeout: 60_000 }, (err, stdout) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ stdout, status: err ? (err.code as number) : 0 });
    });
  });
}

/**
 * Records into `dir` the fake's answer to each call (arguments as given; loop ones ignored) under
 * `env` (FAKE_NVIDIA_SMI_CAPTURE, _STATE, _GPUS, ...). Returns the number of recordings written.
 */
export async function recordSmiReplay(dir: string, calls: ReadonlyArray<readonly string[]>, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const seen = new Set<string>();
  for (const call of calls) {
    const { key, file } = replayKey(call);
    if (seen.has(file)) continue;
    if (key.includes('\n')) throw new Error(`cannot record an argument with a newline: ${JSON.stringify(call)}`);
    seen.add(file);
    const { stdout, status } = await runFake(withoutLoopArgs(call), env);
    if (stdout.includes('\x01')) throw new Error(`the fake printed a 0x01 byte for ${key}: it would read as a timestamp placeholder`);
    writeFileSync(join(dir, file), `${key}\n${status}\n${stdout.replace(TIMESTAMP, TIMESTAMP_PLACEHOLDER)}`);
  }
  return seen.size;
}

/** The calls logged in a FAKE_NVIDIA_SMI_PIDFILE (each line: pid, ms, arguments separated by spaces). */
export function callsFromPidfile(pidfile: string): string[][] {
  let text = '';
  try {
    text = readFileSync(pidfile, 'utf8');
  } catch {
    return [];
  }
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const args = line.split(' ').slice(2).filter(Boolean);
    if (line) out.set(replayKey(args).file, args);
  }
  return [...out.values()];
}
