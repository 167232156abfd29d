import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { replyTo } from './protocol.js';

/** A running UDP probe responder. */
export interface UdpEcho {
  readonly address: string;
  readonly port: number;
  /** Requests answered since start. */
  readonly answered: () => number;
  close(): Promise<void>;
}

/**
 * Answers probe requests on `host:port` (the web listen address: the same port number,
 * over UDP). Anything that is not a well-formed request is dropped without a reply.
 */
export function startUdpEcho(host: string, port: number, opts: { reuseAddr?: boolean } = {}): Promise<UdpEcho> {
  const sock: Socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: opts.reuseAddr ?? false });
  let answered = 0;
  sock.on('message', (msg, rinfo) => {
    const reply = replyTo(msg);
    if (!reply) return;
    answered++;
    sock.send(reply, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: host.replace(/%.*$/, ''), port, exclusive: true }, () => {
      sock.off('error', reject);
      // A send error to one prober (e.g. ICMP unreachable) must not take the responder down.
      sock.on('error', () => {});
      const a = sock.address();
      resolve({
        address: a.address,
        port: a.port,
        answered: () => answered,
        close: () => new Promise<void>((r) => sock.close(() => r())),
      });
    });
  });
}
