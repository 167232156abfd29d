import type { FastifyPluginAsync } from 'fastify';
import type { AddressInfo } from 'node:net';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { startUdpEcho, type UdpEcho } from '../collectors/peers/echo.js';
import { HTTP_NONCE } from '../collectors/peers/protocol.js';

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
      try {
        echoes.push(await startUdpEcho(a.address, a.port));
      } catch (err) {
        opts.logger.warn('cannot answer UDP probes; peers must use --peers.protocol=http', { address: `${a.address}:${a.port}`, err: describeError(err) });
      }
    }
  });
  app.addHook('onClose', async () => {
    await Promise.all(echoes.splice(0).map((e) => e.close()));
  });
};
