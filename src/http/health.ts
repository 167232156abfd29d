import type { FastifyPluginAsync } from 'fastify';
import type { Scheduler } from '../core/scheduler.js';

/** `/healthz` (the process answers), `/readyz` (first full sample done). */
export const healthPlugin: FastifyPluginAsync<{ scheduler: Scheduler }> = async (app, { scheduler }) => {
  app.get('/healthz', async (_req, reply) => reply.header('cache-control', 'no-store').type('text/plain').send('ok\n'));
  app.get('/readyz', async (_req, reply) => {
    reply.header('cache-control', 'no-store').type('text/plain');
    return scheduler.ready ? reply.send('ready\n') : reply.code(503).send('not ready: first sample not complete\n');
  });
};
