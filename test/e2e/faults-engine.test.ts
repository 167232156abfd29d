import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { assertScrapesHealthy, sample, samples, scrapeFor, stopClean, untilMetrics } from '../helpers/faults.js';
import { freePort, startExporter } from '../helpers/procs.js';

// Fault matrix, engine side: the real exporter scrapes fake engines on 127.0.0.1 that turn bad mid-run.

const vllm = readFileSync(new URL('../fixtures/engines/vllm.txt', import.meta.url), 'utf8');
type Mode = 'ok' | 'slow' | 'http500' | 'huge';
const HUGE_BYTES = 50 * 1024 * 1024;

/** 50 MB of well-formed exposition lines, sent chunked (no Content-Length): the size bound must hold while reading. */
const hugeChunk = Buffer.from(Array.from({ length: 4096 }, (_, i) => `vllm:num_requests_running{model_name="m${i % 97}",engine="${i}"} ${i}\n`).join(''));

/** A fake engine whose behaviour per path can be switched while the exporter scrapes it. */
async function fakeEngine(): Promise<{ server: Server; url: (path: string) => string; modes: Map<string, Mode>; close(): Promise<void> }> {
  const modes = new Map<string, Mode>();
  const server = createServer((req, res) => {
    res.on('error', () => {});
    const mode = modes.get((req.url ?? '/').split('?')[0]) ?? 'ok';
    if (mode === 'http500') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    } else if (mode === 'slow') {
      // Far beyond the exporter's engine timeout (capped at 80 % of the 1 s sample interval).
      const t = setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(vllm), 5000);
      res.on('close', () => clearTimeout(t));
    } else if (mode === 'huge') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      let sent = 0;
      const pump = () => {
        while (sent < HUGE_BYTES && !res.destroyed) {
          sent += hugeChunk.length;
          if (!res.write(hugeChunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end();
      };
      pump();
    } else {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(vllm);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    modes,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A fake engine on its own server, so it can go away entirely (connection refused). */
async function killableEngine(): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(vllm));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const upOf = (text: string, target: string) => [...samples(text, 'ds_engine_up')].find(([l]) => l.includes(`target="${target}"`))?.[1];
const errorsOf = (text: string, target: string, reason: string) => sample(text, 'ds_engine_scrape_errors_total', `target="${target}",reason="${reason}"`) ?? 0;

test('engine down, slower than the timeout, answering 500 and answering 50 MB: each target reads down with its reason, the healthy one stays up, scrapes stay fast', { timeout: 90_000 }, async () => {
  const engine = await fakeEngine();
  const down = await killableEngine();
  const targets = { healthy: engine.url('/healthy'), slow: engine.url('/slow'), http500: engine.url('/500'), huge: engine.url('/huge'), down: down.url };
  const ex = await startExporter(['--no-collector.gpu', '--no-collector.kubelet', ...Object.values(targets).map((t) => `--engine.target=vllm=${t}`)]);
  let downClosed = false;
  try {
    await untilMetrics(ex.url, (b) => Object.values(targets).every((t) => upOf(b, t) === 1), 15_000, 'every engine target up');
    const baseline = await scrapeFor(ex.url, 2500);

    // The faults, all at once.
    engine.modes.set('/slow', 'slow');
    engine.modes.set('/500', 'http500');
    engine.modes.set('/huge', 'huge');
    await down.close();
    downClosed = true;

    const faulty = ['slow', 'http500', 'huge', 'down'] as const;
    await untilMetrics(ex.url, (b) => faulty.every((k) => upOf(b, targets[k]) === 0), 20_000, 'every faulty target down');
    const during = await scrapeFor(ex.url, 4000);
    assertScrapesHealthy(baseline, during, 'engine faults');

    const text = during.lastBody;
    assert.equal(upOf(text, targets.healthy), 1, 'the healthy target stays up');
    for (const k of faulty) assert.equal(upOf(text, targets[k]), 0, `${k} reads down`);
    assert.ok(errorsOf(text, targets.slow, 'timeout') >= 1, 'the slow target fails by timeout');
    assert.ok(errorsOf(text, targets.http500, 'http_status') >= 1, 'the 500 counts as http_status');
    assert.ok(errorsOf(text, targets.huge, 'too_large') >= 1, 'the 50 MB body counts as too_large');
    assert.ok(errorsOf(text, targets.down, 'refused') >= 1, 'the stopped engine counts as refused');
    assert.equal(sample(text, 'ds_exporter_collector_success', 'collector="engine"'), 1, 'bad targets do not fail the collector');
    // The healthy target's serving series are still there.
    assert.match(text, /^ds_serving_requests_running\{engine="vllm",model="[^"]+"\} /m);
    for (const reason of ['timeout', 'HTTP 500', 'larger than', 'connection refused']) assert.match(ex.output(), new RegExp(`engine target down.*${reason}`), `logged: ${reason}`);

    // And back: the faults clear, the targets come back up.
    engine.modes.clear();
    await untilMetrics(ex.url, (b) => ['slow', 'http500', 'huge'].every((k) => upOf(b, targets[k as 'slow']) === 1), 20_000, 'targets recovered');
  } finally {
    await stopClean(ex, 'engine faults');
    if (!downClosed) await down.close();
    await engine.close();
  }
});
