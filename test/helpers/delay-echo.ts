/**
 * A probe responder that holds each reply DELAY_MS: the stand-in for tc netem where the
 * kernel lacks it. It sleeps most of the delay and spins the last 3 ms for precision, and
 * on SIGTERM prints the hold times it really applied (a loaded machine can only add).
 */
import { createSocket } from 'node:dgram';
import { replyTo } from '../../src/probe/protocol.js';

const [host, portText, delayText] = process.argv.slice(2);
const delayNs = BigInt(Math.round(Number(delayText) * 1e6));
const holds: number[] = [];
const sock = createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  const t0 = process.hrtime.bigint();
  const reply = replyTo(msg);
  if (!reply) return;
  setTimeout(() => {
    while (process.hrtime.bigint() - t0 < delayNs) {
      // spin the last few milliseconds
    }
    sock.send(reply, rinfo.port, rinfo.address);
    holds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }, Math.max(0, Number(delayText) - 3));
});
sock.bind(Number(portText), host, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ holds }) + '\n');
  sock.close(() => process.exit(0));
});
