import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, test } from 'node:test';
import fc from 'fast-check';
import type { BuiltApp } from '../../src/app.js';
import { Discovery, isSelf, ownAddresses, parseHostPort, type PeerTarget } from '../../src/collectors/peers/discovery.js';
import { startUdpEcho } from '../../src/probe/echo.js';
import { createPeersCollector, peersCollector } from '../../src/collectors/peers/index.js';
import { PeerProber } from '../../src/collectors/peers/prober.js';
import { decodeProbe, encodeProbe, KIND_REPLY, KIND_REQUEST, replyTo } from '../../src/probe/protocol.js';
import { loadConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { SampleStore } from '../../src/core/store.js';
import { SelfAddress } from '../../src/ports/index.js';
import { freePort, peerView, startExporter } from '../helpers/peers.js';
import { waitFor } from '../helpers/procs.js';
import { snapshotOf } from '../../src/http/snapshot.js';

const apps: BuiltApp[] = [];
const closers: Array<() => Promise<void>> = [];
after(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await Promise.all(closers.map((c) => c()));
});

test('probe datagrams: encode/decode, replies only to well-formed requests', () => {
  const req = encodeProbe({ kind: KIND_REQUEST, proberId: 7n, seq: 9n, sentNs: 123456789n });
  assert.equal(req.length, 32);
  assert.deepEqual(decodeProbe(req), { kind: KIND_REQUEST, proberId: 7n, seq: 9n, sentNs: 123456789n });
  const rep = replyTo(req)!;
  assert.equal(decodeProbe(rep)!.kind, KIND_REPLY);
  assert.equal(replyTo(rep), undefined, 'a reply is never answered (no ping-pong loops)');
  assert.equal(replyTo(Buffer.alloc(32)), undefined);
  assert.equal(replyTo(Buffer.concat([req, Buffer.alloc(1)])), undefined);
  assert.equal(decodeProbe(Buffer.from('hello')), undefined);
});

test('probe datagrams fuzz: any bytes decode to a probe or to nothing, never throw; only requests get replies', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, magic) => {
    const b = Buffer.from(bytes);
    if (magic && b.length >= 6) b.write('DSXP', 0, 'latin1');
    const p = decodeProbe(b);
    const r = replyTo(b);
    if (r) {
      assert.equal(p?.kind, KIND_REQUEST);
      assert.equal(r.length, b.length);
      assert.deepEqual(decodeProbe(r), { ...p, kind: KIND_REPLY });
    }
    if (p) assert.equal(b.length, 32);
  }), { numRuns: 10_000 });
});

test('self detection: a specific listen address is only itself; a wildcard listener is every local address', () => {
  const own = ownAddresses({ host: '127.0.0.2', port: 9842 });
  assert.ok(isSelf('127.0.0.2', 9842, { host: '127.0.0.2', port: 9842 }, own));
  assert.ok(!isSelf('127.0.0.3', 9842, { host: '127.0.0.2', port: 9842 }, own));
  assert.ok(!isSelf('127.0.0.2', 9843, { host: '127.0.0.2', port: 9842 }, own));
  const wild = ownAddresses({ host: '0.0.0.0', port: 9842 }, () => ['127.0.0.1', '10.9.8.7', '::1']);
  assert.ok(isSelf('10.9.8.7', 9842, { host: '0.0.0.0', port: 9842 }, wild));
  assert.ok(isSelf('127.0.0.5', 9842, { host: '0.0.0.0', port: 9842 }, wild));
  assert.ok(!isSelf('10.9.8.6', 9842, { host: '0.0.0.0', port: 9842 }, wild));
  assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
  assert.throws(() => parseHostPort('host'), /host:port/);
});

test('three exporters on loopback measure each other, and skip themselves', { timeout: 60_000 }, async () => {
  const hosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const port = await freePort(hosts);
  const peers = `--peers=${hosts.map((h) => `${h}:${port}`).join(',')}`;
  const built = await Promise.all(hosts.map((h) => startExporter(h, port, [peers, '--peers.interval=500ms', '--peers.timeout=200ms'])));
  apps.push(...built);
  for (const [i, b] of built.entries()) {
    const others = hosts.filter((_, j) => j !== i).map((h) => `${h}:${port}`);
    const view = await waitFor(async () => {
      const v = await peerView(b);
      return others.every((o) => v.get(o)?.up === 1 && (v.get(o)?.count ?? 0) >= 2) ? v : undefined;
    }, 10_000, `exporter ${hosts[i]} to see its peers up`, { everyMs: 50, retryErrors: false });
    assert.deepEqual([...view.keys()].sort(), others.sort(), 'only the others, never itself');
    for (const o of others) {
      assert.ok(view.get(o)!.last! > 0 && view.get(o)!.last! < 0.2, `rtt ${view.get(o)!.last}`);
    }
    const text = (await b.app.inject({ url: '/metrics' })).body;
    assert.match(text, /^ds_comm_peer_targets 2$/m);
  }

  // A dead peer turns down within 3 intervals; the others stay up; the exporter keeps serving.
  const t0 = Date.now();
  const dead = built[2];
  await dead.close();
  apps.splice(apps.indexOf(dead), 1);
  const deadId = `${hosts[2]}:${port}`;
  await waitFor(async () => (await peerView(built[0])).get(deadId)?.up === 0, 5000, 'the dead peer to turn down', { everyMs: 20, retryErrors: false });
  const elapsed = Date.now() - t0;
  // 3 rounds of 500 ms (±10 % jitter) plus one 100 ms sample and a second of slack for a
  // loaded machine (the suite runs two test files at once on two cores).
  assert.ok(elapsed <= 3 * 550 + 100 + 1000, `down after ${elapsed} ms`);
  const v = await peerView(built[0]);
  assert.equal(v.get(`${hosts[1]}:${port}`)?.up, 1);
  assert.ok((v.get(deadId)?.loss ?? 0) > 0);
  assert.equal((await built[0].app.inject({ url: '/metrics' })).statusCode, 200);
});

test('HTTP probes where UDP is not answered', { timeout: 60_000 }, async () => {
  const hosts = ['127.0.0.5', '127.0.0.6'];
  const port = await freePort(hosts);
  const peers = `--peers=${hosts.map((h) => `${h}:${port}`).join(',')}`;
  const built = await Promise.all(hosts.map((h) => startExporter(h, port, [peers, '--peers.protocol=http', '--no-peers.echo', '--peers.interval=300ms', '--peers.timeout=200ms'])));
  apps.push(...built);
  const v = await waitFor(async () => {
    const view = await peerView(built[0]);
    return view.get(`${hosts[1]}:${port}`)?.up === 1 ? view : undefined;
  }, 10_000, 'HTTP probe answers', { everyMs: 50, retryErrors: false });
  assert.ok(v.get(`${hosts[1]}:${port}`)!.last! < 0.5);
  // The UDP responder is off: a UDP probe from here gets no answer.
  const sock = createSocket('udp4');
  let answered = false;
  sock.on('message', () => (answered = true));
  sock.send(encodeProbe({ kind: KIND_REQUEST, proberId: 1n, seq: 1n, sentNs: 1n }), port, hosts[1]);
  await new Promise((r) => setTimeout(r, 300));
  sock.close();
  assert.equal(answered, false);
  // The endpoint itself: echo with nonce, 400 on a bad nonce.
  const ok = await built[1].app.inject({ method: 'POST', url: '/api/v1/probe', payload: { nonce: 'abc-1', t: 5 } });
  assert.deepEqual(ok.json(), { nonce: 'abc-1', t: 5 });
  assert.deepEqual((await built[1].app.inject({ url: '/api/v1/probe?nonce=x9' })).json(), { nonce: 'x9', t: null });
  assert.equal((await built[1].app.inject({ method: 'POST', url: '/api/v1/probe', payload: { nonce: 'a b' } })).statusCode, 400);
});

/** A UDP responder that misbehaves in the ways the prober must survive. */
async function evilEcho(mode: 'duplicate-foreign' | 'late'): Promise<{ port: number; sock: Socket }> {
  const sock = createSocket('udp4');
  const other = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()));
  sock.on('message', (msg, rinfo) => {
    const reply = replyTo(msg);
    if (!reply) return;
    const p = decodeProbe(msg)!;
    if (mode === 'late') return void setTimeout(() => sock.send(reply, rinfo.port, rinfo.address), 150);
    sock.send(encodeProbe({ ...p, kind: KIND_REPLY, proberId: p.proberId + 1n }), rinfo.port, rinfo.address); // another prober's
    sock.send(encodeProbe({ ...p, kind: KIND_REPLY, sentNs: p.sentNs + 1n }), rinfo.port, rinfo.address); // forged time
    other.send(reply, rinfo.port, rinfo.address); // right bytes, wrong source
    sock.send(reply, rinfo.port, rinfo.address); // the real answer
    sock.send(reply, rinfo.port, rinfo.address); // duplicate
  });
  closers.push(async () => {
    sock.close();
    other.close();
  });
  return { port: (sock.address()).port, sock };
}

function bareProber(targets: PeerTarget[], opts: Partial<ConstructorParameters<typeof PeerProber>[0]> = {}): PeerProber {
  const p = new PeerProber({
    protocol: 'udp', intervalMs: 1000, timeoutMs: 100, maxPerInterval: 100, lossWindow: 10, refreshMs: 60_000,
    discovery: new Discovery({ statics: [], resolver: async () => [], self: () => ({ host: '127.0.0.1', port: 1 }) }),
    logger: silentLogger, ...opts,
  });
  p.setTargets(targets);
  closers.push(() => p.close());
  return p;
}

test('duplicate, foreign, forged and wrong-source replies are ignored; late replies count as lost', { timeout: 30_000 }, async () => {
  const evil = await evilEcho('duplicate-foreign');
  // A generous timeout: on a loaded machine a loopback reply can take longer than 100 ms,
  // and this part is about which replies count, not about lateness (the part below is).
  const p = bareProber([{ id: 'evil', address: '127.0.0.1', port: evil.port }], { timeoutMs: 2000 });
  for (let i = 0; i < 5; i++) {
    p.probe(p.peers[0]);
    await new Promise((r) => setTimeout(r, 30));
  }
  for (let i = 0; i < 100 && p.stats.answered + p.stats.lost < 5; i++) await new Promise((r) => setTimeout(r, 20));
  // Let the bogus replies that follow each real one arrive too.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(p.stats.sent, 5);
  assert.equal(p.stats.answered, 5);
  assert.equal(p.stats.lost, 0);
  assert.equal(p.stats.ignored, 20, 'four bogus replies per probe');
  const [s] = p.drain();
  assert.equal(s.pendingRtts.length, 5);

  const late = await evilEcho('late');
  const q = bareProber([{ id: 'late', address: '127.0.0.1', port: late.port }]);
  q.probe(q.peers[0]);
  q.probe(q.peers[0]);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual([q.stats.answered, q.stats.lost, q.stats.ignored], [0, 2, 2]);
  const [t] = q.drain();
  assert.deepEqual(t.outcomes, [false, false]);
});

test('large meshes: at most --peers.max probes per round, round-robin covers everyone, lost peers first', { timeout: 30_000 }, async () => {
  const echo = await startUdpEcho('127.0.0.1', 0);
  closers.push(() => echo.close());
  const targets = Array.from({ length: 10 }, (_, i) => ({ id: `peer-${i}`, address: '127.0.0.1', port: echo.port }));
  const p = bareProber(targets, { maxPerInterval: 3, intervalMs: 100 });
  for (let r = 0; r < 4; r++) {
    const before = p.stats.sent;
    p.round();
    await new Promise((res) => setTimeout(res, 150));
    assert.equal(p.stats.sent - before, 3);
  }
  const states = p.drain();
  assert.ok(states.every((s) => s.answered >= 1), 'every peer probed within ceil(10/3) rounds');
  assert.equal(echo.answered(), 12);
  // A peer that lost its probe is probed first next round.
  p.setTargets([...targets, { id: 'dead', address: '127.0.0.1', port: 9 }]);
  p.probe({ id: 'dead', address: '127.0.0.1', port: 9 });
  await new Promise((res) => setTimeout(res, 150));
  const sentBefore = p.stats.sent;
  p.round();
  assert.equal(p.stats.sent - sentBefore, 1, 'the first probe of the round goes out at once, the others spread over the round');
  assert.equal(p.drain().find((s) => s.target.id === 'dead')!.outcomes.length, 1);
  await new Promise((res) => setTimeout(res, 150));
  assert.equal(p.drain().find((s) => s.target.id === 'dead')!.outcomes.length, 2, 'the suspect was in the round');
});

test('DNS discovery: injectable resolver, re-resolution, self skipped, last addresses kept on failure', { timeout: 30_000 }, async () => {
  const echo = await startUdpEcho('127.0.0.7', 0);
  closers.push(() => echo.close());
  const echo2 = await startUdpEcho('127.0.0.8', echo.port).catch(() => undefined);
  if (echo2) closers.push(() => echo2.close());
  let answer: string[] | Error = ['127.0.0.7', '127.0.0.9'];
  const asked: string[] = [];
  const resolver = async (name: string) => {
    asked.push(name);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const config = loadConfig([`--web.listen-address=127.0.0.9:${echo.port}`, '--peers.dns=exporters.monitoring.svc', '--peers.interval=100ms', '--peers.timeout=50ms', '--peers.dns.refresh=1s'], {});
  const store = new SampleStore();
  const self = new SelfAddress({ host: config.listenHost, port: config.listenPort });
  const c = createPeersCollector({ logger: silentLogger, store, now: Date.now, intervalMs: config.intervalMs, self }, config.configOf(peersCollector), { resolver });
  closers.push(async () => c.close?.());
  const p = c.prober!;
  await p.refresh();
  assert.deepEqual(p.peers.map((t) => t.id), [`127.0.0.7:${echo.port}`], 'own address:port skipped');
  assert.ok(asked.includes('exporters.monitoring.svc'));
  await waitFor(() => p.drain().some((s) => s.answered > 0), 5000, 'a probe answer', { everyMs: 50, retryErrors: false });
  answer = ['127.0.0.7', '127.0.0.8', '127.0.0.9'];
  await p.refresh();
  assert.deepEqual(p.peers.map((t) => t.id).sort(), [`127.0.0.7:${echo.port}`, `127.0.0.8:${echo.port}`]);
  answer = new Error('SERVFAIL');
  await p.refresh();
  assert.equal(p.peers.length, 2, 'a failed lookup keeps the last addresses');
  answer = ['127.0.0.8'];
  await p.refresh();
  assert.deepEqual(p.peers.map((t) => t.id), [`127.0.0.8:${echo.port}`], 'peers that left are forgotten');
  const batch = store.batch('peers');
  await c.sample(batch, new AbortController().signal);
  store.commit(batch);
  assert.equal(snapshotOf(store).metrics.ds_comm_peer_targets[0].value, 1);
});

test('no peers configured: the collector emits nothing and probes nothing', async () => {
  const config = loadConfig([], {});
  const c = createPeersCollector({ logger: silentLogger, store: new SampleStore(), now: Date.now, intervalMs: config.intervalMs, self: new SelfAddress({ host: config.listenHost, port: config.listenPort }) }, config.configOf(peersCollector));
  assert.equal(c.prober, undefined);
  const store = new SampleStore();
  const b = store.batch('peers');
  await c.sample(b, new AbortController().signal);
  assert.equal(b.entries.length, 0);
});

test('peer reachability changes are logged once per change', { timeout: 30_000 }, async () => {
  const { createPeersCollector } = await import('../../src/collectors/peers/index.js');
  const { createLogger } = await import('../../src/core/logger.js');
  const { SampleStore } = await import('../../src/core/store.js');
  const lines: string[] = [];
  const store = new SampleStore();
  const port = await freePort(['127.0.0.9']);
  const config = loadConfig([`--peers=127.0.0.9:${port}`, '--peers.interval=200ms', '--peers.timeout=100ms'], {});
  const deps = { logger: createLogger('info', (l) => lines.push(l)), store, now: Date.now, intervalMs: config.intervalMs, self: new SelfAddress({ host: config.listenHost, port: config.listenPort }) };
  const c = createPeersCollector(deps, config.configOf(peersCollector));
  try {
    await waitFor(async () => {
      await c.sample(store.batch('peers'), new AbortController().signal);
      return lines.some((l) => /msg="peer down" peer=127.0.0.9:/.test(l)) ? true : undefined;
    }, 10_000, 'peer down logged', { everyMs: 100 });
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 200));
      await c.sample(store.batch('peers'), new AbortController().signal);
    }
    assert.equal(lines.filter((l) => /peer down/.test(l)).length, 1, lines.join('\n'));
  } finally {
    await c.close?.();
  }
});
