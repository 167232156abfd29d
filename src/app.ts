import Fastify, { type FastifyInstance } from 'fastify';
import { catalog, enrichCatalog } from './catalog/index.js';
import { kubeletCollector, peersCollector, pushCollector, simCollector } from './collectors/index.js';
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
import { snapshotPlugin } from './http/snapshot.js';
import { loadWebConfig } from './http/webconfig.js';
import { pushPlugin, TokenFile } from './http/push.js';
import { probePlugin } from './http/probe.js';
import { GpuInventory, PodAllocations, type Ports, SelfAddress } from './ports/index.js';
import { PushState } from './push/state.js';
import { Simulation } from './sim/plan.js';
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
  /** What every collector got: the framework's deps and the ports. */
  readonly deps: CollectorDeps & Ports;
  /** Starts background sampling. */
  start(): void;
  /** Stops sampling, closes collectors and the HTTP server. */
  close(): Promise<void>;
}

/**
 * A collector whose creation failed (e.g. NVML asked for and missing) keeps retrying its
 * creation on every sample and fails visibly meanwhile, instead of taking the exporter down.
 */
function deferredCollector(def: CollectorDefinition, deps: CollectorDeps & Ports, config: Config): Collector {
  let inner: Collector | undefined;
  let creating: Promise<Collector> | undefined;
  return {
    async sample(batch, signal) {
      if (!inner) {
        creating ??= Promise.resolve(def.create(deps, config.configOf(def))).finally(() => (creating = undefined));
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
  const webConfigPath = config.web.configFile;
  const webConfig = webConfigPath ? loadWebConfig(webConfigPath) : undefined;
  const logger = appDeps.logger ?? createLogger(config.logLevel);
  const now = appDeps.now ?? Date.now;
  // A burst of scrapes renders at most once per sample interval; Prometheus-rate scrapes always get a fresh render.
  const minRenderIntervalMs = appDeps.minRenderIntervalMs ?? config.intervalMs;
  const kubelet = config.configOf(kubeletCollector);
  // With --kubelet.enrich-labels the GPU families carry the pod labels; otherwise the catalog as is.
  const storeCatalog = kubelet.enrichLabels ? enrichCatalog(catalog) : catalog;
  // Scrapers faster than the sample interval are served the last rendering (at most about 2 s old) while the next one renders.
  const store = new SampleStore({ now, catalog: storeCatalog, processMetrics: appDeps.processMetrics ?? true, minRenderIntervalMs, staleWhileRenderMs: Math.min(minRenderIntervalMs, 1000) });
  const push = config.configOf(pushCollector);
  const sim = config.configOf(simCollector);
  // Each port has one writer; the collectors and plugins that use one get it by name.
  const ports: Ports = {
    gpus: new GpuInventory(),
    pods: new PodAllocations(),
    podLabels: kubelet.enrichLabels,
    push: new PushState({ ...push.ingest, now }),
    self: new SelfAddress({ host: config.listenHost, port: config.listenPort }),
    simulation: new Simulation(config.simulation, sim, now),
  };
  const deps: CollectorDeps & Ports = { logger, store, now, intervalMs: config.intervalMs, ...ports };
  const scheduler = new Scheduler({ store, logger, intervalMs: config.intervalMs, staleAfterMs: config.staleAfterMs, now });

  const build = store.batch('exporter:build');
  build.info('ds_exporter_build_info', { version: VERSION, node_version: process.version });
  store.commit(build);

  for (const def of config.collectors) {
    let collector: Collector;
    try {
      collector = await def.create(deps, config.configOf(def));
    } catch (err) {
      logger.error('collector could not start; retrying on every sample', { collector: def.name, err: describeError(err) });
      collector = deferredCollector(def, deps, config);
    }
    scheduler.add(def.name, collector);
  }
  // `auto` found no GPU and nothing else is configured: the whole host is simulated (see src/sim/plan.ts).
  if (config.simulation.rest === 'with-simulated-gpus' && ports.gpus.sourceKind === 'simulated') {
    scheduler.add(simCollector.name, await simCollector.create(deps, sim));
  }

  const tls = webConfig?.tls;
  const requestTimeout = config.web.requestTimeoutMs;
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
  await app.register(securityPlugin, { logger, maxRequests: config.web.maxRequests, webConfig, webConfigPath });
  await app.register(metricsPlugin, { store });
  await app.register(healthPlugin, { scheduler });
  await app.register(snapshotPlugin, { store });
  await app.register(probePlugin, {
    logger,
    udp: config.configOf(peersCollector).echo,
    onListen: (host, port) => ports.self.listening(host, port),
  });
  await app.register(landingPlugin, {
    version: VERSION,
    gpuSource: () => ports.gpus.sourceKind ?? 'none',
    collectors: scheduler.collectorNames,
  });
  if (config.collectors.includes(pushCollector)) {
    await app.register(pushPlugin, {
      state: ports.push,
      maxBodyBytes: push.maxBodyBytes,
      tokens: push.tokenFile ? new TokenFile(push.tokenFile, logger, now) : undefined,
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
