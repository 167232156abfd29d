import type { MetricDef } from './types.js';

/** The labels `--kubelet.enrich-labels` appends to GPU series, in this order. */
export const POD_LABELS = ['namespace', 'pod', 'container'] as const;

/**
 * True for the families that `--kubelet.enrich-labels` labels with the pod holding the GPU:
 * every GPU collector family keyed by `uuid`, except those that already name a pod.
 */
export function isEnrichedFamily(def: MetricDef): boolean {
  return def.source === 'gpu' && def.labels.includes('uuid') && def.name !== 'ds_gpu_allocation_info' && !def.labels.includes('pod');
}

/** Names of the families `enrichCatalog` changes. */
export function enrichedFamilies(catalog: readonly MetricDef[]): Set<string> {
  return new Set(catalog.filter(isEnrichedFamily).map((d) => d.name));
}

/**
 * The catalog as the store sees it with `--kubelet.enrich-labels`: the enriched families get
 * `namespace`, `pod`, `container` appended to their labels; everything else is the same
 * object. Pure: the catalog passed in is not changed.
 */
export function enrichCatalog(catalog: readonly MetricDef[]): MetricDef[] {
  return catalog.map((d) => (isEnrichedFamily(d) ? { ...d, labels: [...d.labels, ...POD_LABELS] } : d));
}
