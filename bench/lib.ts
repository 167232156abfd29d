import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');

/** One line describing the machine, for committed results. */
export function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown CPU'}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform} ${process.arch}`;
}

/** user+system CPU seconds of a process, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** CPU seconds of a process's main thread (the event loop; the thread whose id is the pid), and its voluntary context switches (wake-ups). */
export function mainThreadCpu(pid: number): { cpuS: number; wakeups: number } {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'));
  return { cpuS: (Number(fields[11]) + Number(fields[12])) / 100, wakeups: m ? Number(m[1]) : NaN };
}

/** Resident set size of a process in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The node flags the exporter runs with (its shebang and `npm start`): see docs/operations.md. */
export const EXPORTER_NODE_FLAGS = ['--no-memory-reducer'];

/** Starts the built exporter (dist/) with `args` on `port` and waits until it is ready. */
export async function startBuiltExporter(port: number, args: string[]): Promise<{ child: ChildProcess; url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [...EXPORTER_NODE_FLAGS, join(ROOT, 'dist/main.js'), `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  return {
    child,
    url,
    stop: () =>
      new Promise<void>((res) => {
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

/** Closed-loop load: `concurrency` keep-alive connections GET `path` for `ms`. Returns latencies in ms. */
export async function load(url: string, path: string, concurrency: number, ms: number, headers: Record<string, string> = {}, ratePerConnection?: number): Promise<{ latencies: number[]; errors: number; seconds: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const u = new URL(path, url);
  const latencies: number[] = [];
  let errors = 0;
  const end = Date.now() + ms;
  const t0 = process.hrtime.bigint();
  const one = () =>
    new Promise<void>((res) => {
      const start = process.hrtime.bigint();
      const req = http.get({ host: u.hostname, port: u.port, path: u.pathname, agent, headers }, (r) => {
        r.on('data', () => {});
        r.on('end', () => {
          if (r.statusCode === 200) latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
          else errors++;
          res();
        });
      });
      req.on('error', () => {
        errors++;
        res();
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      if (!ratePerConnection) {
        while (Date.now() < end) await one();
        return;
      }
      // Paced: each connection sends at a fixed rate (staggered), so latency is measured
      // below saturation; a late request is sent at once (the schedule does not drift).
      const gap = 1000 / ratePerConnection;
      let next = Date.now() + (gap * i) / concurrency;
      while (next < end) {
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        await one();
        next += gap;
      }
    }),
  );
  agent.destroy();
  return { latencies: latencies.sort((a, b) => a - b), errors, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** Renders rows as a markdown table. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 1)) : v);
  return [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(fmt).join(' | ')} |`)].join('\n');
}
