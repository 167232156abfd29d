import { findMetric, type MetricDef } from '../catalog/index.js';

/**
 * Series that Prometheus itself attaches to every target. They are not emitted by the
 * exporter, so they are not in the catalog, but dashboards and alerts may name them.
 */
export const PROMETHEUS_METRICS: ReadonlySet<string> = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

/** Labels that every series carries once Prometheus scraped it. */
export const TARGET_LABELS = ['job', 'instance'] as const;

/**
 * The label that tells clusters apart in a store several Prometheus servers write into
 * (an external label, added on remote write): dashboards filter every series by it (a series
 * without it matches "All"), and rules keep it in every aggregation, so that one Grafana and
 * one rule evaluator can serve many clusters. On a single Prometheus it is absent and changes
 * nothing.
 */
export const CLUSTER_LABEL = 'cluster';

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/** Recording rules register their output here so selectors can resolve them like catalog metrics. */
const recorded = new Map<string, readonly string[]>();

/** Recorded series aggregated above the target (no `instance`): the target labels they keep. */
const recordedTargetLabels = new Map<string, readonly string[]>();

/**
 * Declares a recorded series name and the labels it keeps; `targetLabels` when it keeps fewer
 * than job and instance (a cluster-level series keeps `job` only), so that selectors leave out
 * the matchers of the labels it does not have.
 */
export function declareRecorded(name: string, labels: readonly string[], targetLabels?: readonly string[]): void {
  recorded.set(name, labels);
  if (targetLabels) recordedTargetLabels.set(name, targetLabels);
}

/** The target labels (job, instance) a series name carries. */
export function seriesTargetLabels(name: string): readonly string[] {
  return recordedTargetLabels.get(name) ?? TARGET_LABELS;
}

/** The labels a series name carries beyond the target labels, or undefined when the name is unknown. */
export function seriesLabels(name: string): readonly string[] | undefined {
  if (PROMETHEUS_METRICS.has(name)) return [];
  const rec = recorded.get(name);
  if (rec) return rec;
  return catalogEntry(name)?.labels;
}

/** The catalog entry behind a series name (histogram `_bucket/_sum/_count` resolve to their family). */
export function catalogEntry(name: string): MetricDef | undefined {
  const direct = findMetric(name);
  if (direct) return direct;
  for (const s of HISTOGRAM_SUFFIXES) {
    if (name.endsWith(s)) {
      const fam = findMetric(name.slice(0, -s.length));
      if (fam?.type === 'histogram') return fam;
    }
  }
  return undefined;
}

/** Whether a name is a recorded series declared by the generated recording rules. */
export function isRecorded(name: string): boolean {
  return recorded.has(name);
}

/** A label matcher, rendered as PromQL. */
export type Matcher = string;

/**
 * The one selector helper. `selector(metric, scope, extra)` renders `metric{...}` with
 * the scope's matchers: `scope.always` apply to every series (job/instance in
 * dashboards, the configured selector in alerts), `scope.byLabel` only to series that
 * carry that label (gpu, engine, model, peer). Unknown metric names throw, so nothing
 * outside the catalog (or the recording rules) can be named.
 */
export interface Scope {
  readonly always: readonly Matcher[];
  readonly byLabel: Readonly<Record<string, Matcher>>;
}

export function selector(metric: string, scope: Scope, extra: readonly Matcher[] = []): string {
  const labels = seriesLabels(metric);
  if (!labels) throw new Error(`selector: ${metric} is neither in the catalog nor a recorded series`);
  const targets = seriesTargetLabels(metric);
  // A matcher on a target label the series does not keep (instance, on a cluster-level series) is left out.
  const matchers = scope.always.filter((m) => {
    const label = /^(\w+)/.exec(m)?.[1] ?? '';
    return !(TARGET_LABELS as readonly string[]).includes(label) || targets.includes(label);
  });
  for (const [label, m] of Object.entries(scope.byLabel)) if (labels.includes(label)) matchers.push(m);
  matchers.push(...extra);
  return matchers.length ? `${metric}{${matchers.join(',')}}` : metric;
}

/** A dashboard scope: `label=~"$label"` for each template variable. */
export function variableScope(vars: readonly string[]): Scope {
  const always: Matcher[] = [];
  const byLabel: Record<string, Matcher> = {};
  for (const v of vars) {
    const m = `${v}=~"$${v}"`;
    if ((TARGET_LABELS as readonly string[]).includes(v) || v === CLUSTER_LABEL) always.push(m);
    else byLabel[v] = m;
  }
  return { always, byLabel };
}
