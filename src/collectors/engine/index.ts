import type { Collector, CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import type { FlagValues } from '../../core/flags.js';
import { DEFAULT_MAX_SERIES } from '../../parse/exposition.js';
import { EngineCollector } from './collector.js';
import { ENGINE_KINDS } from './engines.js';
import { fresh, type Ports } from '../../ports/index.js';
import { type EngineTarget, parseTargets } from './scrape.js';

export { EngineCollector } from './collector.js';
export { ALIASES, ENGINE_KINDS, detectEngine, extractReading, type EngineKind } from './engines.js';
export { parseTargets, type EngineTarget } from './scrape.js';

/** The engine flags, read once. */
export interface EngineConfig {
  readonly targets: readonly EngineTarget[];
  /** `--engine.timeout` as asked; see `effectiveTimeoutMs`. */
  readonly timeoutMs: number;
  /** `--engine.timeout` was given (a cap below it is then logged). */
  readonly timeoutExplicit: boolean;
  readonly maxBytes: number;
  readonly maxSeries: number;
}

/**
 * The per-target timeout: the flag, but never more than 80 % of the sample interval, so
 * a slow target fails on its own instead of timing out the whole sample.
 */
export function effectiveTimeoutMs(wantedMs: number, intervalMs: number): number {
  return Math.max(50, Math.min(wantedMs, Math.floor(intervalMs * 0.8)));
}

/** Inference-engine throughput, queues, KV cache and latency from the engines' own /metrics. */
/** The engine collector reads the GPU inventory and the pod allocations to tell which GPUs an engine runs on. */
export type EngineDeps = CollectorDeps & Pick<Ports, 'gpus' | 'pods'>;

export const engineCollector: CollectorDefinition<EngineConfig, EngineDeps> = {
  name: 'engine',
  description: 'inference engine throughput, requests, queue, KV cache and latency percentiles (on when --engine.target is given)',
  defaultEnabled: false,
  flags: [
    { name: 'engine.target', type: 'list', help: `Engine /metrics URL to scrape, repeatable or comma-separated; KIND=URL forces the engine (${ENGINE_KINDS.join(', ')}), otherwise it is detected from the payload (trtllm-serve serves Prometheus text at /prometheus/metrics). A fragment names the engine's GPUs for the cost per token: #gpus=0-3 (indices, ranges, UUIDs joined by +) or #pod=NAMESPACE/NAME (the pod's kubelet allocation); without one they are found through the GPU process lists when the engine runs on this host. Giving a target enables the collector.` },
    { name: 'engine.timeout', type: 'duration', default: '2s', min: 10, help: 'Timeout of one engine scrape (capped at 80% of --sample.interval).' },
    { name: 'engine.max-bytes', type: 'int', default: String(16 * 1024 * 1024), min: 1024, help: 'Largest engine payload accepted, in bytes; a larger one marks the target down.' },
    { name: 'engine.max-series', type: 'int', default: String(DEFAULT_MAX_SERIES), min: 10, help: 'Most sample lines accepted from one engine payload.' },
  ],
  configure(flags: FlagValues): EngineConfig {
    return {
      targets: parseTargets(flags.list('engine.target')),
      timeoutMs: flags.requireNumber('engine.timeout'),
      timeoutExplicit: flags.explicit.has('engine.timeout'),
      maxBytes: flags.requireNumber('engine.max-bytes'),
      maxSeries: flags.requireNumber('engine.max-series'),
    };
  },
  autoEnable(config): boolean {
    return config.targets.length > 0;
  },
  create(deps: EngineDeps, config): Collector {
    const { targets } = config;
    const timeoutMs = effectiveTimeoutMs(config.timeoutMs, deps.intervalMs);
    if (config.timeoutExplicit && timeoutMs < config.timeoutMs) {
      deps.logger.info('engine scrape timeout capped below the sample interval', { timeout_ms: timeoutMs });
    }
    if (targets.length === 0) deps.logger.warn('engine collector enabled without --engine.target: it scrapes nothing');
    return new EngineCollector({
      targets,
      timeoutMs,
      maxBytes: config.maxBytes,
      maxSeries: config.maxSeries,
      logger: deps.logger.child({ collector: 'engine' }),
      now: deps.now,
      // What the GPU and kubelet collectors last saw, while fresh.
      gpuEvidence: () => ({
        hostGpus: deps.gpus.sourceKind === undefined ? undefined : deps.gpus.devices,
        // Simulated GPUs list made-up pids: never matched against a real engine's processes.
        processes: deps.gpus.sourceKind === 'simulated' ? undefined : fresh(deps.gpus.processes, deps.now())?.gpus,
        allocations: fresh(deps.pods.latest, deps.now())?.allocations,
      }),
    });
  },
};
