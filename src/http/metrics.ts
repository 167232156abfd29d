import type { FastifyPluginAsync } from 'fastify';
import type { SampleStore } from '../core/store.js';
import { negotiate } from './negotiate.js';

/**
 * `GET /metrics`: the cached exposition in the format the Accept header negotiates (text,
 * OpenMetrics or protobuf; text for anything else), gzip when accepted.
 */
export const metricsPlugin: FastifyPluginAsync<{ store: SampleStore }> = async (app, { store }) => {
  app.get('/metrics', async (req, reply) => {
    const wanted = negotiate(req.headers.accept);
    const rendered = await store.render(wanted.format);
    reply.header('content-type', wanted.contentType).header('cache-control', 'no-store').header('vary', 'Accept, Accept-Encoding');
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      return reply.header('content-encoding', 'gzip').send(await rendered.gzip());
    }
    return reply.send(rendered.body);
  });
};
