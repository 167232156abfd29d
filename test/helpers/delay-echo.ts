/** A probe responder that answers after DELAY_MS: the stand-in for tc netem where the kernel lacks it. */
import { createSocket } from 'node:dgram';
import { replyTo } from '../../src/collectors/peers/protocol.js';

const [host, portText, delayText] = process.argv.slice(2);
const sock = createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  const reply = replyTo(msg);
  if (reply) setTimeout(() => sock.send(reply, rinfo.port, rinfo.address), Number(delayText));
});
sock.bind(Number(portText), host, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => sock.close(() => process.exit(0)));
