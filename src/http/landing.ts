import type { FastifyPluginAsync } from 'fastify';

export interface LandingInfo {
  readonly version: string;
  readonly gpuSource: () => string;
  readonly collectors: readonly string[];
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** `GET /`: build info, the GPU source and links. */
export const landingPlugin: FastifyPluginAsync<LandingInfo> = async (app, info) => {
  app.get('/', async (_req, reply) => {
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ds-exporter</title></head><body>
<h1>ds-exporter ${esc(info.version)}</h1>
<p>GPU source: <b id="gpu-source">${esc(info.gpuSource())}</b>. Collectors: ${info.collectors.map(esc).join(', ')}.</p>
<ul><li><a href="metrics">/metrics</a></li><li><a href="api/v1/snapshot">/api/v1/snapshot</a></li><li><a href="healthz">/healthz</a></li><li><a href="readyz">/readyz</a></li></ul>
</body></html>`;
  });
};
