import type { CollectorDefinition } from '../core/collector.js';
import { gpuCollector } from './gpu/index.js';
import { peersCollector } from './peers/index.js';
import { textfileCollector } from './textfile/index.js';
import { simCollector } from './sim/index.js';

/** Every collector kind, by name. Order is the order of `--help`. */
export const collectorDefinitions: readonly CollectorDefinition[] = [gpuCollector, simCollector, peersCollector, textfileCollector];
