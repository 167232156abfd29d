import type { CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import type { FlagValues } from '../../core/flags.js';
import type { Ports } from '../../ports/index.js';
import type { PushStateOptions } from '../../push/state.js';

/** The push flags, read once: the HTTP endpoint's limits and the ingest state's bounds. */
export interface PushConfig {
  /** Largest push body accepted (413 beyond). */
  readonly maxBodyBytes: number;
  /** File of bearer tokens a push must carry; undefined: no auth. */
  readonly tokenFile?: string;
  /** Bounds of the ingest state (the clock is the app's). */
  readonly ingest: Omit<PushStateOptions, 'now'>;
}

/** Series from `POST /api/v1/push`: allocator fragmentation, training throughput, collective timings. */
export const pushCollector: CollectorDefinition<PushConfig, CollectorDeps & Pick<Ports, 'push'>> = {
  name: 'push',
  description: 'allocator, training and collective stats pushed by processes to POST /api/v1/push',
  defaultEnabled: true,
  flags: [
    { name: 'push.max-body-bytes', type: 'int', default: '1048576', min: 1024, max: 64 * 1024 * 1024, help: 'Largest push body accepted; larger ones get 413.' },
    { name: 'push.token-file', type: 'string', help: 'File of bearer tokens (one per line) a push must carry; re-read when it changes. Unset: no auth.' },
    { name: 'push.ttl', type: 'duration', default: '60s', min: 1000, help: "A reporter's series disappear this long after its last push." },
    { name: 'push.max-reporters', type: 'int', default: '256', min: 1, max: 100_000, help: 'Reporters held at once (job, rank, pid, host); a new one beyond it gets 429.' },
    { name: 'push.max-series-per-reporter', type: 'int', default: '2000', min: 100, max: 1_000_000, help: 'Exposition samples one reporter may own; a push beyond it gets 429.' },
    { name: 'push.max-pending-observations', type: 'int', default: '65536', min: 1024, max: 10_000_000, help: 'Collective observations of one reporter waiting for the next sample; beyond it a push gets 429.' },
    { name: 'push.throughput-window', type: 'duration', default: '30s', min: 1000, help: 'Window of ds_training_throughput_samples_per_second, computed from cumulative samples.' },
  ],
  configure(flags: FlagValues): PushConfig {
    return {
      maxBodyBytes: flags.requireNumber('push.max-body-bytes'),
      tokenFile: flags.string('push.token-file') || undefined,
      ingest: {
        ttlMs: flags.requireNumber('push.ttl'),
        maxReporters: flags.requireNumber('push.max-reporters'),
        maxSeriesPerReporter: flags.requireNumber('push.max-series-per-reporter'),
        maxPendingObservations: flags.requireNumber('push.max-pending-observations'),
        throughputWindowMs: flags.requireNumber('push.throughput-window'),
      },
    };
  },
  create(deps) {
    return {
      async sample(batch) {
        deps.push.write(batch);
      },
    };
  },
};
