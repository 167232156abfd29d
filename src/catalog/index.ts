import { commMetrics } from './comm.js';
import { efficiencyMetrics } from './efficiency.js';
import { exporterMetrics } from './exporter.js';
import { gpuMetrics } from './gpu.js';
import { healthMetrics } from './health.js';
import { memoryMetrics } from './memory.js';
import { profilingMetrics } from './profiling.js';
import { servingMetrics } from './serving.js';
import type { MetricDef } from './types.js';

export type { MetricDef, MetricType, MetricUnit, MetricSource } from './types.js';
export { enrichCatalog, enrichedFamilies, isEnrichedFamily, POD_LABELS } from './enrich.js';

/** Every metric the exporter can emit. Registration, dashboards, alerts and docs derive from it. */
export const catalog: readonly MetricDef[] = [
  ...gpuMetrics,
  ...healthMetrics,
  ...profilingMetrics,
  ...memoryMetrics,
  ...servingMetrics,
  ...commMetrics,
  ...efficiencyMetrics,
  ...exporterMetrics,
];

const byName = new Map(catalog.map((m) => [m.name, m]));

/** The catalog entry of a metric, or undefined. */
export function findMetric(name: string): MetricDef | undefined {
  return byName.get(name);
}

/** Families that prom-client's process and Node.js metrics add beside the catalog. */
export const RUNTIME_METRIC_PREFIXES = ['process_', 'nodejs_'] as const;
