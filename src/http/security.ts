import { createHash, timingSafeEqual } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import bcrypt from 'bcryptjs';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { loadWebConfig, type WebConfig } from './webconfig.js';

/** Paths that carry their own authentication or reveal nothing: never behind basic auth. */
const OPEN_PATHS = new Set(['/healthz', '/readyz', '/api/v1/push', '/api/v1/probe']);
const CACHE_MAX = 256;

export interface SecurityOptions {
  readonly logger: Logger;
  /** Concurrent requests beyond this get 503 (0: unlimited). */
  readonly maxRequests: number;
  readonly webConfig?: WebConfig;
  /** When set, the file is re-read when it changes (TLS material and users). */
  readonly webConfigPath?: string;
  /** How often to check the file for changes. */
  readonly reloadIntervalMs?: number;
}

function sha(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * Request cap, basic auth (bcrypt, with a cache of verified credentials so a scrape
 * does not pay a bcrypt round each time), client-certificate policy, configured
 * headers, and re-reading of the web config file when it changes.
 */
export const securityPlugin: FastifyPluginAsync<SecurityOptions> = async (app: FastifyInstance, opts) => {
  let config: WebConfig = opts.webConfig ?? { basicAuthUsers: new Map(), headers: {} };
  const verified = new Map<string, Buffer>(); // sha(user\0hash) -> sha(password)
  let inFlight = 0;

  app.addHook('onRequest', async (req, reply) => {
    if (opts.maxRequests > 0 && inFlight >= opts.maxRequests) {
      reply.header('retry-after', '1');
      return reply.code(503).type('text/plain').send(`too many concurrent requests (limit ${opts.maxRequests})\n`);
    }
    inFlight++;
    let released = false;
    reply.raw.once('close', () => {
      if (!released) {
        released = true;
        inFlight--;
      }
    });
    for (const [k, v] of Object.entries(config.headers)) reply.header(k, v);

    const tls = config.tls;
    const socket = req.raw.socket as TLSSocket;
    if (tls?.requestCert && typeof socket.getPeerCertificate === 'function') {
      const cert = socket.getPeerCertificate();
      const presented = !!cert && Object.keys(cert).length > 0;
      if (!presented && tls.requireCert) {
        return reply.code(403).type('text/plain').send('client certificate required\n');
      }
      // VerifyClientCertIfGiven: a presented certificate must chain to the client CA.
      if (presented && tls.ca !== undefined && !socket.authorized) {
        return reply.code(403).type('text/plain').send('client certificate not trusted\n');
      }
    }

    if (config.basicAuthUsers.size === 0) return;
    const path = req.url.split('?')[0];
    if (OPEN_PATHS.has(path)) return;
    const header = req.headers.authorization ?? '';
    const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
    const deny = () => reply.code(401).header('www-authenticate', 'Basic realm="ds-exporter"').type('text/plain').send('unauthorized\n');
    if (!m) return deny();
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return deny();
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const hash = config.basicAuthUsers.get(user);
    // Unknown users still pay one bcrypt round so timing does not reveal who exists.
    const cacheKey = sha(`${user}\u0000${hash ?? ''}`).toString('hex');
    const cached = verified.get(cacheKey);
    if (hash && cached && timingSafeEqual(cached, sha(password))) return;
    const ok = await bcrypt.compare(password, (hash ?? '$2b$10$' + 'x'.repeat(53)).replace(/^\$2y\$/, '$2b$'));
    if (!ok || !hash) return deny();
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value as string);
    verified.set(cacheKey, sha(password));
  });

  if (opts.webConfigPath) {
    const path = opts.webConfigPath;
    const interval = opts.reloadIntervalMs ?? 2000;
    watchFile(path, { interval, persistent: false }, () => {
      try {
        const next = loadWebConfig(path);
        if (!!next.tls !== !!config.tls) {
          opts.logger.error('web config reload: turning TLS on or off needs a restart; keeping the previous config', { file: path });
          return;
        }
        if (next.tls) {
          (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ cert: next.tls.cert, key: next.tls.key, ca: next.tls.ca, minVersion: next.tls.minVersion, maxVersion: next.tls.maxVersion });
        }
        config = next;
        verified.clear();
        opts.logger.info('web config reloaded', { file: path, users: next.basicAuthUsers.size, tls: !!next.tls });
      } catch (err) {
        opts.logger.error('web config reload failed; keeping the previous config', { file: path, err: describeError(err) });
      }
    });
    app.addHook('onClose', async () => unwatchFile(path));
  }
};

// Hooks apply to every route of the app, not only to routes inside this plugin.
(securityPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
