/**
 * Runs inside a network namespace (ip netns exec): probes every HOST:PORT over UDP until
 * each has COUNT answers, then prints {"rtts":{"host:port":[seconds...]},"sent":n,"lost":n}.
 * Usage: netns-probe.ts COUNT HOST:PORT...
 */
import { Discovery } from '../../src/collectors/peers/discovery.js';
import { PeerProber } from '../../src/collectors/peers/prober.js';
import { silentLogger } from '../../src/core/logger.js';

const [countText, ...targets] = process.argv.slice(2);
const count = Number(countText);
const prober = new PeerProber({
  protocol: 'udp', intervalMs: 100, timeoutMs: 80, maxPerInterval: 10, lossWindow: 100, refreshMs: 60_000,
  discovery: new Discovery({ statics: targets, resolver: async () => [], self: () => ({ host: '0.0.0.0', port: 1 }) }),
  logger: silentLogger,
});
prober.start();
const rtts: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t, []]));
const deadline = Date.now() + 25_000;
const timer = setInterval(() => {
  for (const s of prober.drain()) rtts[s.target.id]?.push(...s.pendingRtts);
  if (Object.values(rtts).every((r) => r.length >= count) || Date.now() > deadline) {
    clearInterval(timer);
    void prober.close().then(() => process.stdout.write(JSON.stringify({ rtts, sent: prober.stats.sent, lost: prober.stats.lost }) + '\n'));
  }
}, 100);
