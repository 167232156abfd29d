// The Dockerfile read and replayed without a Docker engine: stages and instructions, the
// build context as .dockerignore leaves it, and the RUN steps that make /app executed on
// this machine with the image paths moved into a work directory.
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface Instruction {
  op: string;
  args: string;
}

export interface Dockerfile {
  args: Instruction[];
  stages: { from: string; name?: string; body: Instruction[] }[];
}

/** Dockerfile → stages of instructions (continuations joined, comments dropped). */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const out: Dockerfile = { args: [], stages: [] };
  for (const raw of joined.split('\n')) {
    const line = raw.trim().replace(/\s+/g, ' ');
    if (!line) continue;
    const [op, ...rest] = line.split(' ');
    const ins = { op: op.toUpperCase(), args: rest.join(' ') };
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?: AS (\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`FROM ${ins.args}: not understood`);
      out.stages.push({ from: m[1], name: m[2], body: [] });
    } else if (out.stages.length === 0) out.args.push(ins);
    else out.stages.at(-1)!.body.push(ins);
  }
  return out;
}

/** .dockerignore patterns as a predicate over context paths (last matching pattern wins). */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const re = pattern
        .split('/')
        .map((seg) => (seg === '**' ? '(?:.*/)?' : `${seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}/`))
        .join('')
        .replace(/\(\?:\.\*\/\)\?$/, '.*/');
      return { negate, re: new RegExp(`^${re.replace(/\/$/, '')}(?:/.*)?$`) };
    });
  return (path) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate;
    return excluded;
  };
}

export function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 300_000): Promise<string> {
  return new Promise((done, fail) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`, { cause: err }));
      else done(stdout);
    });
  });
}

/**
 * Replays the Dockerfile's build and runtime stages into `work`: /src (the build context)
 * becomes work/src, /app work/app, /tmp work/tmp, /usr/local/bin work/bin. The build stage's
 * first `npm ci` (the dev dependencies) is the one step not run: the repository's installed
 * node_modules, made from the same lockfile, stand in for it. Returns the /app directory.
 */
export async function replayDockerfile(root: string, work: string, contextFiles: string[], env: NodeJS.ProcessEnv): Promise<{ app: string; bin: string }> {
  const df = parseDockerfile(await readFile(join(root, 'Dockerfile'), 'utf8'));
  const [build, runtime] = df.stages;
  const dirs = { src: join(work, 'src'), app: join(work, 'app'), tmp: join(work, 'tmp'), bin: join(work, 'bin') };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  const ignored = dockerignore(await readFile(join(root, '.dockerignore'), 'utf8'));
  if (build.body.find((i) => i.op === 'WORKDIR')?.args !== '/src') throw new Error('build stage WORKDIR is not /src');
  for (const f of contextFiles.filter((f) => !ignored(f))) {
    await mkdir(dirname(join(dirs.src, f)), { recursive: true });
    await cp(join(root, f), join(dirs.src, f));
  }
  const runs = build.body.filter((i) => i.op === 'RUN').map((i) => i.args.replace(/^(--mount=\S+ )+/, ''));
  if (!/^npm ci --ignore-scripts\b/.test(runs[0] ?? '')) throw new Error(`the build stage's first RUN is not the dev install: ${runs[0]}`);
  await symlink(join(root, 'node_modules'), join(dirs.src, 'node_modules'), 'dir');
  // One pass, so a replacement (work may itself live under /tmp) is never replaced again.
  const places: Record<string, string> = { '/src': dirs.src, '/app': dirs.app, '/tmp': dirs.tmp, '/usr/local/bin': dirs.bin };
  const move = (cmd: string) => cmd.replace(/(?<![\w.])(\/src|\/app|\/tmp|\/usr\/local\/bin)(?=[/\s]|$)/g, (m) => places[m]);
  // `mkdir /app` is part of the step; the directory is made here, so it may exist.
  for (const r of runs.slice(1)) await sh('bash', ['-euo', 'pipefail', '-c', move(r).replace(`mkdir ${dirs.app}`, `mkdir -p ${dirs.app}`)], dirs.src, env);
  const copies = runtime.body.filter((i) => i.op === 'COPY' || i.op === 'ADD');
  if (copies.length !== 1 || copies[0].args !== '--from=build /app/ ./' || runtime.body.find((i) => i.op === 'WORKDIR')?.args !== '/app') {
    throw new Error(`the runtime stage should take only /app from the build stage: ${JSON.stringify(copies)}`);
  }
  const runtimeEnv = { ...env };
  for (const e of runtime.body.filter((i) => i.op === 'ENV')) {
    const [k, v] = e.args.split('=');
    runtimeEnv[k] = v;
  }
  for (const r of runtime.body.filter((i) => i.op === 'RUN')) await sh('bash', ['-euo', 'pipefail', '-c', move(r.args.replace(/^(--mount=\S+ )+/, ''))], dirs.app, runtimeEnv);
  return { app: dirs.app, bin: dirs.bin };
}
