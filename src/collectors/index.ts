import type { CollectorDefinition } from '../core/collector.js';
import { engineCollector } from './engine/index.js';
import { gpuCollector } from './gpu/index.js';
import { kubeletCollector } from './kubelet/index.js';
import { peersCollector } from './peers/index.js';
import { pushCollector } from './push/index.js';
import { simCollector } from './sim/index.js';
import { textfileCollector } from './textfile/index.js';

export { engineCollector, type EngineConfig } from './engine/index.js';
export { gpuCollector, type GpuConfig } from './gpu/index.js';
export { kubeletCollector, type KubeletConfig } from './kubelet/index.js';
export { peersCollector, type PeersConfig } from './peers/index.js';
export { pushCollector, type PushConfig } from './push/index.js';
export { simCollector, type SimConfig } from './sim/index.js';
export { textfileCollector, type TextfileConfig } from './textfile/index.js';

/** Every collector kind, by name. Order is the order of `--help`. */
export const collectorDefinitions: readonly CollectorDefinition[] = [gpuCollector, engineCollector, pushCollector, peersCollector, textfileCollector, kubeletCollector, simCollector];
