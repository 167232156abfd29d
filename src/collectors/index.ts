import type { CollectorDefinition } from '../core/collector.js';
import { engineCollector } from './engine/index.js';
import { gpuCollector } from './gpu/index.js';
import { kubeletCollector } from './kubelet/index.js';
import { pushCollector } from './push/index.js';
import { simCollector } from './sim/index.js';

/** Every collector kind, by name. Order is the order of `--help`. */
export const collectorDefinitions: readonly CollectorDefinition[] = [gpuCollector, engineCollector, pushCollector, kubeletCollector, simCollector];
