import type { FastifyPluginAsync } from 'fastify';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { startUdpEcho, type UdpEcho } from '../probe/echo.js';
import { HTTP_NONCE } from '../probe/protocol.js';

export interface ProbeOptions {
  readonly logger: Logger;
  /** Also answer UDP probes on the port the server listens on. */
  readonly udp: boolean;
  /** Told the address the server actually listens on (for the prober to skip itself). */
  readonly onListen?: (host: string, port: number) => void;
}

const schema = {
  type: 'object',
  properties: { nonce: { type: 'string', pattern: HTTP_NONCE.source }, t: { type: 'number' } },
  required: ['nonce'],
  additionalProperties: false,
} as const;

/**
 * `GET/POST /api/v1/probe`: the HTTP echo of the peer prober (for networks that block
 * UDP), and the UDP responder bound to the same port number once the server listens.
 */
export const probePlugin: FastifyPluginAsync<ProbeOptions> = async (app, opts) => {
  const answer = (body: { nonce: string; t?: number }) => ({ nonce: body.nonce, t: body.t ?? null });
  app.post<{ Body: { nonce: string; t?: number } }>('/api/v1/probe', { schema: { body: schema } }, async (req, reply) => reply.header('cache-control', 'no-store').send(answer(req.body)));
  app.get<{ Querystring: { nonce: string; t?: number } }>('/api/v1/probe', { schema: { querystring: schema } }, async (req, reply) => reply.header('cache-control', 'no-store').send(answer(req.query)));

  const echoes: UdpEcho[] = [];
  app.addHook('onListen', async () => {
    const addrs = app.addresses().filter((a): a is AddressInfo => typeof a === 'object' && (a.family === 'IPv4' || a.family === 'IPv6'));
    if (addrs[0]) opts.onListen?.(addrs[0].address, addrs[0].port);
    if (!opts.udp) return;
    for (const a of addrs) {
      const wildcard = a.address === '0.0.0.0' || a.address === '::';
      try {
        echoes.push(await startUdpEcho(a.address, a.port, { reuseAddr: wildcard }));
      } catch (err) {
        opts.logger.warn('cannot answer UDP probes; peers must use --peers.protocol=http', { address: `${a.address}:${a.port}`, err: describeError(err) });
        continue;
      }
      if (!wildcard) continue;
      // A wildcard socket answers from the address the route picks, which on a host with
      // several addresses need not be the one probed; the prober ignores replies from
      // another address. One socket per local address answers from the probed address.
      for (const addr of localAddresses(a.family)) {
        try {
          echoes.push(await startUdpEcho(addr, a.port, { reuseAddr: true }));
        } catch (err) {
          opts.logger.debug('no UDP responder on this address; the wildcard one answers', { address: addr, err: describeError(err) });
        }
      }
    }
  });
  app.addHook('onClose', async () => {
    await Promise.all(echoes.splice(0).map((e) => e.close()));
  });
};

/** Local unicast addresses of a family (link-local IPv6 left out: it needs a scope). */
function localAddresses(family: string): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === family && !(family === 'IPv6' && i.address.toLowerCase().startsWith('fe80')))
    .map((i) => i!.address);
}
