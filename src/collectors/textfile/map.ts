import { findMetric, type MetricDef } from '../../catalog/index.js';
import { NCCL_COLL_LABELS, NCCL_DEVICE_LABELS, NCCL_P2P_LABELS } from '../../catalog/comm.js';
import type { Exposition } from '../../parse/exposition.js';

/** One value to write into the store, already in the catalog's names and base units. */
export interface MappedSample {
  readonly name: string;
  readonly type: 'gauge' | 'counter';
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** What a textfile maps to. */
export interface MappedFile {
  readonly samples: MappedSample[];
  /** Families neither NCCL Inspector nor textfile-sourced catalog families. */
  readonly ignored: string[];
}

interface InspectorRule {
  readonly target: string;
  readonly labels: readonly string[];
  readonly scale: number;
  readonly type?: 'gauge' | 'counter';
}

/** NCCL Inspector families (plugins/profiler/inspector, Prometheus mode) and their catalog twins. */
const INSPECTOR: Record<string, InspectorRule> = {
  nccl_collective_exec_time_microseconds: { target: 'ds_nccl_collective_exec_time_seconds', labels: NCCL_COLL_LABELS, scale: 1e-6 },
  nccl_bus_bandwidth_gbs: { target: 'ds_nccl_bus_bandwidth_bytes_per_second', labels: NCCL_COLL_LABELS, scale: 1e9 },
  nccl_p2p_exec_time_microseconds: { target: 'ds_nccl_p2p_exec_time_seconds', labels: NCCL_P2P_LABELS, scale: 1e-6 },
  nccl_p2p_bus_bandwidth_gbs: { target: 'ds_nccl_p2p_bus_bandwidth_bytes_per_second', labels: NCCL_P2P_LABELS, scale: 1e9 },
  nccl_collectives_total: { target: 'ds_nccl_collectives_total', labels: NCCL_DEVICE_LABELS, scale: 1, type: 'counter' },
  nccl_collectives_dropped_total: { target: 'ds_nccl_collectives_dropped_total', labels: NCCL_DEVICE_LABELS, scale: 1, type: 'counter' },
  nccl_p2p_total: { target: 'ds_nccl_p2p_operations_total', labels: NCCL_DEVICE_LABELS, scale: 1, type: 'counter' },
  nccl_p2p_dropped_total: { target: 'ds_nccl_p2p_operations_dropped_total', labels: NCCL_DEVICE_LABELS, scale: 1, type: 'counter' },
};

/** The inspector names GPUs "GPU<cuda index>"; the catalog's gpu label is the bare index. */
function inspectorLabel(name: string, value: string | undefined): string {
  if (value === undefined || value === '') return 'unknown';
  if (name === 'gpu') {
    const m = /^GPU(\d+)$/.exec(value);
    if (m) return m[1];
  }
  return value;
}

/** Thrown for a file that claims a catalog family but does not fit it (the file is skipped). */
export class MappingError extends Error {
  override name = 'MappingError';
}

/**
 * Maps parsed families onto catalog metrics: NCCL Inspector families are renamed and
 * converted to base units; `ds_*` families are accepted when the catalog holds them with
 * source `textfile` (what `ds-exporter import` writes). Everything else is ignored and
 * listed. Pure.
 */
export function mapFamilies(exp: Exposition, lookup: (name: string) => MetricDef | undefined = findMetric): MappedFile {
  const samples: MappedSample[] = [];
  const ignored: string[] = [];
  for (const f of exp.families.values()) {
    const rule = INSPECTOR[f.name];
    if (rule) {
      for (const s of f.samples) {
        if (s.name !== f.name) continue;
        const labels: Record<string, string> = {};
        for (const l of rule.labels) labels[l] = inspectorLabel(l, s.labels[l]);
        if (rule.type === 'counter' && !(s.value >= 0 && Number.isFinite(s.value))) throw new MappingError(`${f.name}: counter value ${s.value}`);
        samples.push({ name: rule.target, type: rule.type ?? 'gauge', labels, value: s.value * rule.scale });
      }
      continue;
    }
    const def = lookup(f.name);
    if (!def || def.source !== 'textfile' || (def.type !== 'gauge' && def.type !== 'counter' && def.type !== 'info')) {
      if (f.samples.length > 0) ignored.push(f.name);
      continue;
    }
    if (def.type === 'counter' && f.type !== 'counter' && f.type !== 'untyped') throw new MappingError(`${f.name} is a counter in the catalog, the file says ${f.type}`);
    if (def.type !== 'counter' && f.type !== 'gauge' && f.type !== 'untyped') throw new MappingError(`${f.name} is a ${def.type} in the catalog, the file says ${f.type}`);
    for (const s of f.samples) {
      const keys = Object.keys(s.labels).sort();
      const want = [...def.labels].sort();
      if (keys.join(',') !== want.join(',')) throw new MappingError(`${f.name}: labels {${keys.join(',')}} do not match the catalog {${want.join(',')}}`);
      if (def.type === 'info' && s.value !== 1) throw new MappingError(`${f.name}: an info metric must be 1, got ${s.value}`);
      if (def.type === 'counter' && !(s.value >= 0 && Number.isFinite(s.value))) throw new MappingError(`${f.name}: counter value ${s.value}`);
      samples.push({ name: f.name, type: def.type === 'counter' ? 'counter' : 'gauge', labels: { ...s.labels }, value: s.value });
    }
  }
  return { samples, ignored };
}
