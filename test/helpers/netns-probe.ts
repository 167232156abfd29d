/**
 * Runs inside a network namespace (ip netns exec): probes HOST:PORT over UDP until COUNT
 * answers, then prints {"rtts":[seconds...],"sent":n,"lost":n} on stdout.
 */
import { Discovery } from '../../src/collectors/peers/discovery.js';
import { PeerProber } from '../../src/collectors/peers/prober.js';
import { silentLogger } from '../../src/core/logger.js';

const [host, portText, countText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText ?? 30);
const prober = new PeerProber({
  protocol: 'udp', intervalMs: 100, timeoutMs: 80, maxPerInterval: 10, lossWindow: 100, refreshMs: 60_000,
  discovery: new Discovery({ statics: [`${host}:${port}`], resolver: async () => [], self: () => ({ host: '0.0.0.0', port: 1 }) }),
  logger: silentLogger,
});
prober.start();
const rtts: number[] = [];
const deadline = Date.now() + 20_000;
const timer = setInterval(() => {
  for (const s of prober.drain()) rtts.push(...s.pendingRtts);
  if (rtts.length >= count || Date.now() > deadline) {
    clearInterval(timer);
    void prober.close().then(() => process.stdout.write(JSON.stringify({ rtts, sent: prober.stats.sent, lost: prober.stats.lost }) + '\n'));
  }
}, 100);
