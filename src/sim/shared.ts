import type { Flags } from '../config/flags.js';
import type { CollectorDeps } from '../core/collector.js';
import { SimHost } from './host.js';

/** The one simulated host of this process, shared by the simulated GPU source and the sim collector. */
export function getSimHost(deps: CollectorDeps, flags: Flags): SimHost {
  let host = deps.shared.get('sim.host') as SimHost | undefined;
  if (!host) {
    host = new SimHost({
      gpus: flags.number('simulate.gpus') ?? 8,
      seed: flags.number('simulate.seed') ?? 1,
      peers: flags.number('simulate.peers') ?? 4,
      startMs: deps.now(),
    });
    deps.shared.set('sim.host', host);
  }
  return host;
}
