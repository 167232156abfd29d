import type { Flags } from '../../config/flags.js';
import type { Collector, CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import { DEFAULT_MAX_SERIES } from '../../parse/exposition.js';
import { EngineCollector } from './collector.js';
import { ENGINE_KINDS } from './engines.js';
import { parseTargets } from './scrape.js';

export { EngineCollector } from './collector.js';
export { ALIASES, ENGINE_KINDS, detectEngine, extractReading, type EngineKind } from './engines.js';
export { parseTargets, type EngineTarget } from './scrape.js';

/**
 * The per-target timeout: the flag, but never more than 80 % of the sample interval, so
 * a slow target fails on its own instead of timing out the whole sample.
 */
export function effectiveTimeoutMs(flags: Flags): number {
  const interval = flags.number('sample.interval') ?? 1000;
  const wanted = flags.number('engine.timeout') ?? 2000;
  return Math.max(50, Math.min(wanted, Math.floor(interval * 0.8)));
}

/** Inference-engine throughput, queues, KV cache and latency from the engines' own /metrics. */
export const engineCollector: CollectorDefinition = {
  name: 'engine',
  description: 'inference engine throughput, requests, queue, KV cache and latency percentiles (on when --engine.target is given)',
  defaultEnabled: false,
  flags: [
    { name: 'engine.target', type: 'list', help: `Engine /metrics URL to scrape, repeatable or comma-separated; KIND=URL forces the engine (${ENGINE_KINDS.join(', ')}), otherwise it is detected from the payload (trtllm-serve serves Prometheus text at /prometheus/metrics). Giving a target enables the collector.` },
    { name: 'engine.timeout', type: 'duration', default: '2s', min: 10, help: 'Timeout of one engine scrape (capped at 80% of --sample.interval).' },
    { name: 'engine.max-bytes', type: 'int', default: String(16 * 1024 * 1024), min: 1024, help: 'Largest engine payload accepted, in bytes; a larger one marks the target down.' },
    { name: 'engine.max-series', type: 'int', default: String(DEFAULT_MAX_SERIES), min: 10, help: 'Most sample lines accepted from one engine payload.' },
  ],
  autoEnable(flags: Flags): boolean {
    return parseTargets(flags.list('engine.target')).length > 0;
  },
  create(deps: CollectorDeps, flags: Flags): Collector {
    const targets = parseTargets(flags.list('engine.target'));
    const timeoutMs = effectiveTimeoutMs(flags);
    if (flags.explicit.has('engine.timeout') && timeoutMs < (flags.number('engine.timeout') ?? 2000)) {
      deps.logger.info('engine scrape timeout capped below the sample interval', { timeout_ms: timeoutMs });
    }
    if (targets.length === 0) deps.logger.warn('engine collector enabled without --engine.target: it scrapes nothing');
    return new EngineCollector({
      targets,
      timeoutMs,
      maxBytes: flags.number('engine.max-bytes') ?? 16 * 1024 * 1024,
      maxSeries: flags.number('engine.max-series') ?? DEFAULT_MAX_SERIES,
      logger: deps.logger.child({ collector: 'engine' }),
      now: deps.now,
    });
  },
};
