import type { Flags } from '../../config/flags.js';
import type { CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import { PushState } from './state.js';

export { PushState, PushRejection, throughput } from './state.js';
export { pushSchema, validatePush, PushValidationError, LIMITS, type PushBody } from './schema.js';

const SHARED_KEY = 'push.state';

/** The push ingest state of this exporter, shared by the HTTP plugin and the push collector. */
export function getPushState(deps: Pick<CollectorDeps, 'shared' | 'now'>, flags: Flags): PushState {
  let state = deps.shared.get(SHARED_KEY) as PushState | undefined;
  if (!state) {
    state = new PushState({
      ttlMs: flags.number('push.ttl') ?? 60_000,
      maxReporters: flags.number('push.max-reporters') ?? 256,
      maxSeriesPerReporter: flags.number('push.max-series-per-reporter') ?? 2000,
      maxPendingObservations: flags.number('push.max-pending-observations') ?? 65_536,
      throughputWindowMs: flags.number('push.throughput-window') ?? 30_000,
      now: deps.now,
    });
    deps.shared.set(SHARED_KEY, state);
  }
  return state;
}

/** Series from `POST /api/v1/push`: allocator fragmentation, training throughput, collective timings. */
export const pushCollector: CollectorDefinition = {
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
  create(deps, flags) {
    const state = getPushState(deps, flags);
    return {
      async sample(batch) {
        state.write(batch);
      },
    };
  },
};
