/**
 * Responder process for bench/peers.ts: `udp` (the exporter's UDP responder), `raw` (the
 * smallest possible UDP echo, the baseline) or `http` (fastify with the probe endpoint).
 * Prints the port, answers until SIGTERM, then prints its CPU use as JSON.
 */
import { createSocket } from 'node:dgram';
import Fastify from 'fastify';
import { startUdpEcho } from '../src/probe/echo.js';
import { silentLogger } from '../src/core/logger.js';
import { probePlugin } from '../src/http/probe.js';

const mode = process.argv[2] ?? 'udp';
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
let stop: () => Promise<void>;
if (mode === 'raw') {
  const s = createSocket('udp4');
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  process.stdout.write(`${s.address().port}\n`);
  stop = () => new Promise((r) => s.close(() => r()));
} else if (mode === 'http') {
  const app = Fastify();
  await app.register(probePlugin, { logger: silentLogger, udp: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${(app.server.address() as { port: number }).port}\n`);
  stop = () => app.close();
} else {
  const e = await startUdpEcho('127.0.0.1', 0);
  process.stdout.write(`${e.port}\n`);
  stop = () => e.close();
}
process.on('SIGTERM', () => {
  void stop().then(() => {
    const c = process.cpuUsage(cpu0);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ cpuSeconds: (c.user + c.system) / 1e6, wallSeconds: wall }) + '\n');
    process.exit(0);
  });
});
