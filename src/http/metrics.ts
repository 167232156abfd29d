import type { FastifyPluginAsync } from 'fastify';
import type { SampleStore } from '../core/store.js';

/** True when the Accept header prefers OpenMetrics (as Prometheus sends it). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return !!accept && /application\/openmetrics-text/i.test(accept);
}

/** `GET /metrics`: the cached exposition; OpenMetrics when asked, gzip when accepted. */
export const metricsPlugin: FastifyPluginAsync<{ store: SampleStore }> = async (app, { store }) => {
  app.get('/metrics', async (req, reply) => {
    const rendered = await store.render(wantsOpenMetrics(req.headers.accept) ? 'openmetrics' : 'text');
    reply.header('content-type', rendered.contentType).header('cache-control', 'no-store').header('vary', 'Accept, Accept-Encoding');
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      return reply.header('content-encoding', 'gzip').send(await rendered.gzip());
    }
    return reply.send(rendered.body);
  });
};
