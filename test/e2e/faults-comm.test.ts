import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertScrapesHealthy, sample, scrapeFor, stopClean, untilMetrics } from '../helpers/faults.js';
import { MAX_TEXTFILE_BYTES } from '../../src/collectors/textfile/index.js';
import { freePort, startExporter, waitFor } from '../helpers/procs.js';

// Fault matrix, communication side: peers that stop answering, textfile directories that cannot be read.

const base = ['--no-collector.gpu', '--no-collector.kubelet'];

test('peer unreachable: a peer that stops and a port nobody listens on read ds_comm_peer_up 0, scrapes stay fast', { timeout: 90_000 }, async () => {
  // A real peer exporter (it answers UDP probes on its web port number), and a port that is closed from the start.
  const peer = await startExporter(base);
  const peerAddr = peer.url.replace('http://', '');
  const closedPort = await freePort();
  const closed = `127.0.0.1:${closedPort}`;
  const ex = await startExporter([...base, `--peers=${peerAddr},${closed}`, '--peers.interval=500ms', '--peers.timeout=300ms']);
  let peerStopped = false;
  try {
    const first = await untilMetrics(ex.url, (b) => sample(b, 'ds_comm_peer_up', `peer="${peerAddr}"`) === 1 && sample(b, 'ds_comm_peer_up', `peer="${closed}"`) === 0, 15_000, 'live peer up, closed port down');
    assert.equal(sample(first, 'ds_comm_peer_loss_ratio', `peer="${closed}"`), 1, 'every probe to the closed port is lost');
    const baseline = await scrapeFor(ex.url, 2500);

    await stopClean(peer, 'peer exporter');
    peerStopped = true;
    // "within three probe intervals" (docs/operations.md): generous here, the machine is shared.
    await untilMetrics(ex.url, (b) => sample(b, 'ds_comm_peer_up', `peer="${peerAddr}"`) === 0, 10_000, 'stopped peer down');
    const during = await scrapeFor(ex.url, 3000);
    assertScrapesHealthy(baseline, during, 'peers unreachable');
    const text = during.lastBody;
    assert.equal(sample(text, 'ds_comm_peer_up', `peer="${peerAddr}"`), 0);
    assert.equal(sample(text, 'ds_comm_peer_up', `peer="${closed}"`), 0);
    assert.ok((sample(text, 'ds_comm_peer_loss_ratio', `peer="${peerAddr}"`) ?? 0) > 0, 'loss rises for the stopped peer');
    assert.equal(sample(text, 'ds_comm_peer_targets'), 2);
    assert.equal(sample(text, 'ds_exporter_collector_success', 'collector="peers"'), 1, 'unreachable peers are data, not a failed collector');
    await waitFor(async () => /level=warn msg="peer down" peer=127\.0\.0\.1:\d+/.test(ex.output()), 5000, 'the transition logged as "peer down"');
  } finally {
    await stopClean(ex, 'peers');
    if (!peerStopped) await peer.stop();
  }
});

/**
 * The process runs as root in CI containers, where `chmod 000` does not stop reads. The
 * unreadable cases are therefore made of things no permission bit is needed for: a FIFO
 * with no writer (a read would block forever), a file over the size cap, a directory
 * named like a textfile, and finally the directory path turned into a regular file.
 */
test('textfile directory unreadable: a FIFO, an oversized file, then the path turned into a file; scrapes stay fast', { timeout: 90_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'dsx-faults-textfile-'));
  const dir = join(root, 'textfiles');
  mkdirSync(dir);
  const good = readFileSync(new URL('../fixtures/comm/nccl-inspector.prom', import.meta.url), 'utf8');
  writeFileSync(join(dir, 'a-inspector.prom'), good);
  const ex = await startExporter([...base, `--textfile.directory=${dir}`]);
  const bandwidth = (b: string) => /^ds_nccl_bus_bandwidth_bytes_per_second\{/m.test(b);
  try {
    await untilMetrics(ex.url, (b) => sample(b, 'ds_textfile_scrape_error') === 0 && bandwidth(b), 15_000, 'healthy textfiles served');
    const baseline = await scrapeFor(ex.url, 2500);

    // Phase 1: unreadable entries next to the good file.
    execFileSync('mkfifo', [join(dir, 'b-stuck.prom')]);
    writeFileSync(join(dir, 'c-huge.prom'), Buffer.alloc(17 * 1024 * 1024, '# padding line of a runaway writer\n'));
    mkdirSync(join(dir, 'd-dir.prom'));
    await untilMetrics(ex.url, (b) => sample(b, 'ds_textfile_scrape_error') === 1, 10_000, 'scrape error flagged');
    const during = await scrapeFor(ex.url, 3000);
    assertScrapesHealthy(baseline, during, 'unreadable textfiles');
    assert.ok(bandwidth(during.lastBody), 'the good file is still served');
    assert.equal(sample(during.lastBody, 'ds_textfile_scrape_error'), 1);
    assert.equal(sample(during.lastBody, 'ds_exporter_collector_success', 'collector="textfile"'), 1, 'the collector itself does not fail: it did not hang on the FIFO');
    assert.match(ex.output(), /textfile skipped.*c-huge\.prom/, 'the oversized file is named in the log');

    // Phase 2: the directory path becomes a regular file (ENOTDIR).
    renameSync(dir, join(root, 'moved'));
    writeFileSync(dir, 'not a directory\n');
    await untilMetrics(ex.url, (b) => sample(b, 'ds_textfile_scrape_error') === 1 && !bandwidth(b), 10_000, 'path is a file: error, no textfile series');
    const during2 = await scrapeFor(ex.url, 2500);
    assertScrapesHealthy(baseline, during2, 'textfile path is a file');
    assert.equal(sample(during2.lastBody, 'ds_exporter_collector_success', 'collector="textfile"'), 1);
    assert.match(ex.output(), /textfile skipped.*cannot read directory/);
  } finally {
    await stopClean(ex, 'textfile');
    rmSync(root, { recursive: true, force: true });
  }
});

// A textfile just under the size cap is parsed once when it changes, not on every sample:
// scrapes stay fast while it sits there. Its families are ones the exporter ignores, so the
// exposition keeps its size and the comparison with the baseline stays fair.
test('textfile just under the size cap: parsed once, scrapes stay fast', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-faults-textfile-big-'));
  const ex = await startExporter([...base, `--textfile.directory=${dir}`]);
  try {
    const baseline = await scrapeFor(ex.url, 2500);
    const line = (i: number) => `node_runaway_writer_lines{shard="${i % 1000}",n="${i}"} ${i}\n`;
    const lines: string[] = [];
    let bytes = 0;
    for (let i = 0; bytes + 100 < MAX_TEXTFILE_BYTES - 64 * 1024; i++) {
      lines.push(line(i));
      bytes += lines[lines.length - 1].length;
    }
    writeFileSync(join(dir, '.big.tmp'), lines.join(''));
    renameSync(join(dir, '.big.tmp'), join(dir, 'big.prom'));
    const read = await untilMetrics(ex.url, (b) => /^ds_textfile_ignored_families\{file="big.prom"\} 1$/m.test(b), 20_000, 'big file read');
    assert.equal(sample(read, 'ds_textfile_scrape_error'), 0, `a ${(bytes / 2 ** 20).toFixed(2)} MB file under the cap is accepted`);
    const during = await scrapeFor(ex.url, 4000);
    assertScrapesHealthy(baseline, during, `a ${(bytes / 2 ** 20).toFixed(2)} MB textfile`);
    const duration = sample(during.lastBody, 'ds_exporter_collector_duration_seconds', 'collector="textfile"')!;
    assert.ok(duration < 0.1, `a textfile sample with an unchanged big file takes ${duration} s (no re-parse)`);
  } finally {
    await stopClean(ex, 'big textfile');
    rmSync(dir, { recursive: true, force: true });
  }
});
