import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { Proc } from './procs.js';

/**
 * Latency bounds for scrapes while a fault is on. The machine running the tests is
 * small and shared, so the bounds compare with a baseline taken in the same test
 * (ratio), and cap absolutely only what would mean a hang or a blocked event loop.
 */
export const LATENCY = {
  /** No single scrape during a fault may take longer than this. */
  absoluteCapMs: 1500,
  /** p95 during the fault at most this many times the baseline p95 ... */
  ratio: 4,
  /** ... or the baseline p95 plus this slack, whichever is larger (a 5 ms baseline makes 20 ms noise look like a 4x slowdown). */
  slackMs: 250,
} as const;

export interface ScrapeRound {
  readonly latencies: number[];
  readonly statuses: number[];
  /** The last body answered 200. */
  readonly lastBody: string;
}

function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export const p95 = (v: readonly number[]) => quantile(v, 0.95);

/** One GET of /metrics on a fresh connection, bounded so a hang fails the test instead of stalling it. */
export function scrapeOnce(url: string, timeoutMs = 10_000): Promise<{ status: number; ms: number; body: string }> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - start) / 1e6;
    const req = http.get(`${url}/metrics`, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: ms(), body: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve({ status: 0, ms: ms(), body: '' }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: ms(), body: '' }));
  });
}

/** Sequential scrapes, one every `everyMs`, for `ms`. */
export async function scrapeFor(url: string, ms: number, everyMs = 100): Promise<ScrapeRound> {
  const latencies: number[] = [];
  const statuses: number[] = [];
  let lastBody = '';
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await scrapeOnce(url);
    statuses.push(r.status);
    latencies.push(r.ms);
    if (r.status === 200) lastBody = r.body;
    await new Promise((res) => setTimeout(res, everyMs));
  }
  return { latencies, statuses, lastBody };
}

/** Asserts that every scrape of `during` answered 200 in normal time compared with `baseline`. */
export function assertScrapesHealthy(baseline: ScrapeRound, during: ScrapeRound, what: string): void {
  assert.ok(during.statuses.length >= 5, `${what}: too few scrapes (${during.statuses.length}) to judge`);
  const bad = during.statuses.filter((s) => s !== 200);
  assert.equal(bad.length, 0, `${what}: scrapes answered ${bad.join(',')} instead of 200`);
  const max = Math.max(...during.latencies);
  assert.ok(max <= LATENCY.absoluteCapMs, `${what}: a scrape took ${max.toFixed(0)} ms (cap ${LATENCY.absoluteCapMs} ms); baseline p95 ${p95(baseline.latencies).toFixed(1)} ms`);
  const base = p95(baseline.latencies);
  const bound = Math.max(LATENCY.ratio * base, base + LATENCY.slackMs);
  const got = p95(during.latencies);
  assert.ok(got <= bound, `${what}: p95 ${got.toFixed(1)} ms during the fault, baseline p95 ${base.toFixed(1)} ms (bound ${bound.toFixed(1)} ms)`);
}

/** Value of the sample `name{labels}` (labels exactly as exposed, in order), or undefined. */
export function sample(text: string, name: string, labels = ''): number | undefined {
  const prefix = labels ? `${name}{${labels}} ` : `${name} `;
  for (const line of text.split('\n')) if (line.startsWith(prefix)) return Number(line.slice(prefix.length));
  return undefined;
}

/** All samples of a metric name, as label-text → value. */
export function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

/** Polls /metrics until `pred(body)` holds; returns that body. */
export async function untilMetrics(url: string, pred: (body: string) => boolean, ms: number, what: string): Promise<string> {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    const r = await scrapeOnce(url);
    if (r.status === 200) {
      last = r.body;
      if (pred(last)) return last;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  const relevant = last.split('\n').filter((l) => /^ds_(exporter_collector_success|gpu_up|engine_up|comm_peer_up|textfile_scrape_error)/.test(l));
  throw new Error(`timed out after ${ms} ms waiting for ${what}; last relevant series:\n${relevant.join('\n')}`);
}

/** Resident set size of a process, bytes. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Stops an exporter and asserts it exited 0 (a crash during the fault shows here). */
export async function stopClean(ex: Proc, what: string): Promise<void> {
  const alive = ex.child.exitCode === null && ex.child.signalCode === null;
  const code = await ex.stop();
  assert.ok(alive, `${what}: the exporter died during the fault (code ${ex.child.exitCode}, signal ${ex.child.signalCode})\n${ex.output().slice(-3000)}`);
  assert.equal(code, 0, `${what}: exit code ${code}\n${ex.output().slice(-3000)}`);
}
