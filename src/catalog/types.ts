/** The kind of a Prometheus family. `info` is a gauge whose value is always 1 and whose labels carry identity. */
export type MetricType = 'gauge' | 'counter' | 'histogram' | 'info';

/** Base units only (Prometheus naming): the unit is also the name's suffix before `_total`. */
export type MetricUnit =
  | 'seconds' | 'bytes' | 'ratio' | 'celsius' | 'watts' | 'joules' | 'hertz'
  | 'bytes_per_second' | 'tokens_per_second' | 'samples_per_second' | '';

/** Where the series come from on a real host (the collector that emits them). */
export type MetricSource =
  | 'gpu' | 'engine' | 'push' | 'peers' | 'textfile' | 'kubelet' | 'exporter';

/** One metric family of the catalog. */
export interface MetricDef {
  readonly name: string;
  readonly type: MetricType;
  readonly unit: MetricUnit;
  readonly help: string;
  readonly labels: readonly string[];
  readonly source: MetricSource;
  /** Histogram bucket upper bounds, in the metric's unit. */
  readonly buckets?: readonly number[];
}

/** Exponential bucket bounds from `start` to at least `end`, `factor` apart. */
export function expBuckets(start: number, end: number, factor: number): number[] {
  const out: number[] = [];
  for (let v = start; v < end * (1 + 1e-9); v *= factor) out.push(Number(v.toPrecision(6)));
  if (out[out.length - 1] < end) out.push(end);
  return out;
}
