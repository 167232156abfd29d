import Fastify, { type FastifyInstance } from 'fastify';
import { catalog, enrichCatalog } from './catalog/index.js';
import { getPushState } from './collectors/push/index.js';
import { anySourceConfigured, simCollector } from './collectors/sim/index.js';
import type { Config } from './config/config.js';
import type { Collector, CollectorDefinition, CollectorDeps } from './core/collector.js';
import { describeError } from './core/errors.js';
import { createLogger, type Logger } from './core/logger.js';
import { Scheduler } from './core/scheduler.js';
import { SampleStore } from './core/store.js';
import { healthPlugin } from './http/health.js';
import { landingPlugin } from './http/landing.js';
import { metricsPlugin } from './http/metrics.js';
import { securityPlugin } from './http/security.js';
import { loadWebConfig } from './http/webconfig.js';
import { pushPlugin, TokenFile } from './http/push.js';
import { probePlugin } from './http/probe.js';
import { SHARED_LISTEN } from './collectors/peers/index.js';
import { VERSION } from './version.js';

/** Seams for tests and benchmarks; production uses the defaults. */
export interface AppDeps {
  readonly logger?: Logger;
  readonly now?: () => number;
  readonly processMetrics?: boolean;
  /** Overrides the render coalescing window (default: one sample interval). */
  readonly minRenderIntervalMs?: number;
}

/** A built, not yet listening exporter. */
export interface BuiltApp {
  readonly app: FastifyInstance;
  readonly store: SampleStore;
  readonly scheduler: Scheduler;
  readonly deps: CollectorDeps;
  /** Starts background sampling. */
  start(): void;
  /** Stops sampling, closes collectors and the HTTP server. */
  close(): Promise<void>;
}

/**
 * A collector whose creation failed (e.g. NVML asked for and missing) keeps retrying its
 * creation on every sample and fails visibly meanwhile, instead of taking the exporter down.
 */
function deferredCollector(def: CollectorDefinition, deps: CollectorDeps, config: Config): Collector {
  let inner: Collector | undefined;
  let creating: Promise<Collector> | undefined;
  return {
    async sample(batch, signal) {
      if (!inner) {
        creating ??= Promise.resolve(def.create(deps, config.flags)).finally(() => (creating = undefined));
        inner = await creating;
      }
      return inner.sample(batch, signal);
    },
    // A creation still in flight at close (e.g. a child process being started) is
    // waited for and closed too, so nothing it opened outlives the exporter.
    close: async () => {
      if (creating) inner = await creating.catch(() => inner);
      await inner?.close?.();
    },
  };
}

/** Builds the exporter: store, collectors, scheduler and HTTP routes. Never listens. */
export async function buildApp(config: Config, appDeps: AppDeps = {}): Promise<BuiltApp> {
  // A wrong web config is a ConfigError before anything starts.
  const webConfigPath = config.flags.string('web.config.file');
  const webConfig = webConfigPath ? loadWebConfig(webConfigPath) : undefined;
  const logger = appDeps.logger ?? createLogger(config.logLevel);
  const now = appDeps.now ?? Date.now;
  // A burst of scrapes renders at most once per sample interval; Prometheus-rate scrapes always get a fresh render.
  const minRenderIntervalMs = appDeps.minRenderIntervalMs ?? config.intervalMs;
  // With --kubelet.enrich-labels the GPU families carry the pod labels; otherwise the catalog as is.
  const storeCatalog = config.flags.bool('kubelet.enrich-labels') ? enrichCatalog(catalog) : catalog;
  // Scrapers faster than the sample interval are served the last rendering (at most about 2 s old) while the next one renders.
  const store = new SampleStore({ now, catalog: storeCatalog, processMetrics: appDeps.processMetrics ?? true, minRenderIntervalMs, staleWhileRenderMs: Math.min(minRenderIntervalMs, 1000) });
  const deps: CollectorDeps = { logger, store, now, shared: new Map() };
  const scheduler = new Scheduler({ store, logger, intervalMs: config.intervalMs, staleAfterMs: config.staleAfterMs, now });

  const build = store.batch('exporter:build');
  build.info('ds_exporter_build_info', { version: VERSION, node_version: process.version });
  store.commit(build);

  for (const def of config.collectors) {
    let collector: Collector;
    try {
      collector = await def.create(deps, config.flags);
    } catch (err) {
      logger.error('collector could not start; retrying on every sample', { collector: def.name, err: describeError(err) });
      collector = deferredCollector(def, deps, config);
    }
    scheduler.add(def.name, collector);
  }
  // With no GPU to be found and nothing else configured, `auto` serves a whole simulated
  // host (a demo), not simulated GPUs beside empty panels; the warning already says so.
  // Once the user configured a real source, nothing but the missing GPUs is simulated.
  if (config.flags.string('gpu.source') === 'auto' && deps.shared.get('gpu.source') === 'simulated' && !config.collectors.some((d) => d.name === simCollector.name) && !config.flags.explicit.has('collector.sim') && !anySourceConfigured(config.flags)) {
    scheduler.add(simCollector.name, await simCollector.create(deps, config.flags));
  }

  const tls = webConfig?.tls;
  const requestTimeout = config.flags.number('web.request-timeout') ?? 30_000;
  // Slow clients (slowloris) are cut off: 10 s to send headers, the request timeout for the
  // whole request, checked every second rather than Node's default 30 s.
  const serverTimeouts = { headersTimeout: Math.min(10_000, requestTimeout), requestTimeout, connectionsCheckingInterval: 1000 };
  const app = Fastify({
    logger: false,
    return503OnClosing: true,
    requestTimeout,
    keepAliveTimeout: 65_000,
    bodyLimit: 1 << 20,
    http: serverTimeouts,
    ...(tls ? { https: { ...serverTimeouts, cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.requestCert, rejectUnauthorized: tls.rejectUnauthorized, minVersion: tls.minVersion, maxVersion: tls.maxVersion } } : {}),
  });
  app.server.headersTimeout = serverTimeouts.headersTimeout;
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) logger.error('request failed', { err: describeError(err) });
    // Never leak stack traces; 4xx messages name what was wrong.
    void reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message });
  });
  await app.register(securityPlugin, { logger, maxRequests: config.flags.number('web.max-requests') ?? 40, webConfig, webConfigPath });
  await app.register(metricsPlugin, { store });
  await app.register(healthPlugin, { scheduler, store });
  await app.register(probePlugin, {
    logger,
    udp: config.flags.has('peers.echo') ? config.flags.bool('peers.echo') : true,
    onListen: (host, port) => deps.shared.set(SHARED_LISTEN, { host, port }),
  });
  await app.register(landingPlugin, {
    version: VERSION,
    gpuSource: () => String(deps.shared.get('gpu.source') ?? 'none'),
    collectors: scheduler.collectorNames,
  });
  if (config.collectors.some((d) => d.name === 'push')) {
    const tokenFile = config.flags.string('push.token-file');
    await app.register(pushPlugin, {
      state: getPushState(deps, config.flags),
      maxBodyBytes: config.flags.number('push.max-body-bytes') ?? 1024 * 1024,
      tokens: tokenFile ? new TokenFile(tokenFile, logger, now) : undefined,
      logger,
    });
  }

  let closed = false;
  return {
    app,
    store,
    scheduler,
    deps,
    start: () => scheduler.start(),
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await scheduler.stop();
    },
  };
}
