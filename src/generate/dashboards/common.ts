import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as heatmap from '@grafana/grafana-foundation-sdk/heatmap';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import type { MetricDef, MetricUnit } from '../../catalog/index.js';
import { catalogEntry, CLUSTER_LABEL, selector, variableScope } from '../promql.js';

/** The Prometheus data source of every panel and variable: the `datasource` template variable. */
export const DS: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** Tag shared by every generated dashboard (dashboard links use it). */
export const TAG = 'ds-exporter';

/** Grafana unit ids for the catalog's base units. */
const GRAFANA_UNITS: Record<MetricUnit, string> = {
  seconds: 's', bytes: 'bytes', ratio: 'percentunit', celsius: 'celsius', watts: 'watt', joules: 'joule',
  hertz: 'hertz', bytes_per_second: 'Bps', tokens_per_second: 'cps', samples_per_second: 'cps', '': 'short',
};

/** The Grafana unit of a catalog metric. */
export function unitOf(metric: string): string {
  const def = catalogEntry(metric);
  if (!def) throw new Error(`unitOf: ${metric} is not in the catalog`);
  return GRAFANA_UNITS[def.unit];
}

/** Template variables a dashboard may filter by, beyond job and instance. */
export type FilterVar = 'gpu' | 'engine' | 'model' | 'peer' | 'namespace' | 'pod';

/** Where each filter variable takes its values from. */
const FILTER_SOURCE: Record<FilterVar, { metric: string; label: string; title: string }> = {
  gpu: { metric: 'ds_gpu_info', label: 'gpu', title: 'GPU' },
  engine: { metric: 'ds_serving_requests_running', label: 'engine', title: 'Engine' },
  model: { metric: 'ds_serving_requests_running', label: 'model', title: 'Model' },
  peer: { metric: 'ds_comm_peer_up', label: 'peer', title: 'Peer' },
  // Kubernetes attribution: only ds_gpu_allocation_info carries these, so the selector helper
  // filters that series alone; per-pod panels join it on uuid to reach the GPU metrics.
  namespace: { metric: 'ds_gpu_allocation_info', label: 'namespace', title: 'Namespace' },
  pod: { metric: 'ds_gpu_allocation_info', label: 'pod', title: 'Pod' },
};

/** Query helpers bound to one dashboard's variables. */
export interface Q {
  /** `metric{job=~"$job",instance=~"$instance",<var>=~"$<var>" for each var the metric carries, ...extra}`. */
  s(metric: string, ...extra: string[]): string;
  /** Catalog families named so far (histogram series resolve to their family). */
  readonly used: ReadonlySet<string>;
}

/** Catalog families named by any dashboard built so far (see buildDashboards). */
export const usedByDashboards = new Set<string>();

export function queries(filters: readonly FilterVar[]): Q {
  const scope = variableScope([CLUSTER_LABEL, 'job', 'instance', ...filters]);
  const used = new Set<string>();
  return {
    used,
    s(metric, ...extra) {
      used.add(catalogEntry(metric)?.name ?? metric);
      usedByDashboards.add(catalogEntry(metric)?.name ?? metric);
      return selector(metric, scope, extra);
    },
  };
}

/**
 * A panel for any catalog metric, so families added to the catalog show up without
 * hand-written panels: info metrics as a table of their labels, counters as a rate,
 * histograms as p50/p99, gauges as they are.
 */
export function autoPanel(def: MetricDef, q: Q, opts: { w?: number; h?: number } = {}): cog.Builder<dashboard.Panel> {
  const own = def.labels.filter((l) => l !== 'job');
  const legend = ['{{instance}}', ...own.map((l) => `{{${l}}}`)].join(' ');
  const help = `${def.help} (${def.name}, ${def.type}, from the ${def.source} collector.)`;
  const w = opts.w ?? 12;
  if (def.type === 'info') {
    return tablePanel({ title: titleOf(def.name), description: help, unit: 'short', w, targets: [{ expr: q.s(def.name), format: 'table', instant: true }], columns: ['instance', ...own] });
  }
  if (def.type === 'histogram') {
    const by = ['instance', ...own, 'le'].join(', ');
    return timeSeries({
      title: `${titleOf(def.name)} p50 / p99`, description: help, unit: GRAFANA_UNITS[def.unit], w,
      targets: [0.5, 0.99].map((quantile) => ({ expr: `histogram_quantile(${quantile}, sum by (${by}) (rate(${q.s(`${def.name}_bucket`)}[$__rate_interval])))`, legend: `${legend} p${quantile * 100}` })),
    });
  }
  if (def.type === 'counter') {
    const unit = def.unit === '' ? 'cps' : def.unit === 'seconds' ? 'percentunit' : def.unit === 'bytes' ? 'Bps' : def.unit === 'joules' ? 'watt' : 'short';
    return timeSeries({ title: `${titleOf(def.name)} (rate)`, description: `${help} Shown as a per-second rate.`, unit, w, targets: [{ expr: `rate(${q.s(def.name)}[$__rate_interval])`, legend }] });
  }
  return timeSeries({ title: titleOf(def.name), description: help, unit: GRAFANA_UNITS[def.unit], w, targets: [{ expr: q.s(def.name), legend }] });
}

/** `ds_gpu_memory_clock_hertz` -> `Gpu memory clock hertz`: a readable title for generated panels. */
function titleOf(name: string): string {
  const words = name.replace(/^ds_/, '').replace(/_total$/, '').split('_');
  const s = words.join(' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** One PromQL target. */
export interface Target {
  readonly expr: string;
  readonly legend?: string;
  /** Table/heatmap formats and instant queries. */
  readonly format?: 'table' | 'heatmap';
  readonly instant?: boolean;
}

function target(t: Target, i: number): prometheus.DataqueryBuilder {
  const b = new prometheus.DataqueryBuilder()
    .datasource(DS)
    .refId(String.fromCharCode(65 + i))
    .expr(t.expr)
    .legendFormat(t.legend ?? '__auto');
  if (t.format === 'table') b.format(prometheus.PromQueryFormat.Table);
  if (t.format === 'heatmap') b.format(prometheus.PromQueryFormat.Heatmap);
  if (t.instant) b.instant();
  else b.range();
  return b;
}

/** What every panel must have: a title, a description and a unit. */
export interface PanelBase {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: readonly Target[];
  /** Grid width (of 24) and height. */
  readonly w?: number;
  readonly h?: number;
  readonly min?: number;
  readonly max?: number;
}

function base<T extends { title(t: string): T; description(d: string): T; datasource(d: common.DataSourceRef): T; unit(u: string): T; span(w: number): T; height(h: number): T; withTarget(t: prometheus.DataqueryBuilder): T; min(n: number): T; max(n: number): T }>(b: T, p: PanelBase): T {
  b.title(p.title).description(p.description).datasource(DS).unit(p.unit).span(p.w ?? 12).height(p.h ?? 8);
  p.targets.forEach((t, i) => b.withTarget(target(t, i)));
  if (p.min !== undefined) b.min(p.min);
  if (p.max !== undefined) b.max(p.max);
  return b;
}

/** A time series panel. */
export function timeSeries(p: PanelBase & { stack?: boolean }): timeseries.PanelBuilder {
  const b = base(new timeseries.PanelBuilder(), p)
    .lineWidth(1)
    .fillOpacity(p.stack ? 60 : 10)
    .showPoints(common.VisibilityMode.Never)
    .legend(new common.VizLegendOptionsBuilder().displayMode(common.LegendDisplayMode.Table).placement(common.LegendPlacement.Bottom).showLegend(true).calcs(['mean', 'max', 'lastNotNull']))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
  if (p.stack) b.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal));
  return b;
}

/** A single-value panel (last value). */
export function statPanel(p: PanelBase & { thresholds?: Array<[number | null, string]> }): stat.PanelBuilder {
  const b = base(new stat.PanelBuilder(), { w: 4, h: 4, ...p })
    .graphMode(common.BigValueGraphMode.Area)
    .colorMode(common.BigValueColorMode.Value)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  if (p.thresholds) b.thresholds(thresholds(p.thresholds));
  return b;
}

function thresholds(steps: Array<[number | null, string]>): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.map(([value, color]) => ({ value, color })));
}

/** A heatmap whose rows are series (one per GPU, peer, ...) and cells their value over time. */
export function seriesHeatmap(p: PanelBase): heatmap.PanelBuilder {
  return base(new heatmap.PanelBuilder(), p)
    .calculate(false)
    .rowsFrame(new heatmap.RowsHeatmapOptionsBuilder().layout(common.HeatmapCellLayout.Auto))
    // Zero is a value here (an idle GPU), not an empty bucket: do not hide it.
    .filterValues(new heatmap.FilterValueRangeBuilder())
    .color(new heatmap.HeatmapColorOptionsBuilder().mode(heatmap.HeatmapColorMode.Scheme).scheme('RdYlGn').reverse(true).exponent(0.5).steps(64).fill('dark-orange').scale(heatmap.HeatmapColorScale.Exponential))
    .yAxis(new heatmap.YAxisConfigBuilder().unit(p.unit))
    .cellGap(1)
    .showValue(common.VisibilityMode.Never);
}

/** A heatmap of a Prometheus histogram's buckets (targets with format heatmap). */
export function bucketHeatmap(p: PanelBase): heatmap.PanelBuilder {
  return base(new heatmap.PanelBuilder(), p)
    .calculate(false)
    .color(new heatmap.HeatmapColorOptionsBuilder().mode(heatmap.HeatmapColorMode.Scheme).scheme('Spectral').exponent(0.5).steps(64).fill('dark-orange').scale(heatmap.HeatmapColorScale.Exponential))
    .yAxis(new heatmap.YAxisConfigBuilder().unit(p.unit))
    .cellGap(1)
    .showValue(common.VisibilityMode.Never);
}

/** A table of instant values; `columns` lists the labels to keep, in order. */
export function tablePanel(p: PanelBase & { columns: readonly string[]; sortBy?: string }): table.PanelBuilder {
  const b = base(new table.PanelBuilder(), { w: 12, h: 8, ...p })
    .withTransformation({
      id: 'organize',
      options: {
        excludeByName: { Time: true },
        indexByName: Object.fromEntries([...p.columns, 'Value'].map((c, i) => [c, i])),
        renameByName: {},
      },
    })
    .filterable(true);
  if (p.sortBy) b.sortBy([new common.TableSortByFieldStateBuilder().displayName(p.sortBy).desc(true)]);
  return b;
}

/** A collapsed-free row header. */
export function row(title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title);
}

/** The shared shell: data source, cluster/job/instance and filter variables, links, UTC, read-only. */
export function dashboardShell(opts: {
  uid: string;
  title: string;
  description: string;
  tags: readonly string[];
  filters: readonly FilterVar[];
}): dashboard.DashboardBuilder {
  const b = new dashboard.DashboardBuilder(opts.title)
    .uid(opts.uid)
    .description(opts.description)
    .tags([TAG, ...opts.tags])
    .timezone('utc')
    .readonly()
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .link(new dashboard.DashboardLinkBuilder('ds-exporter').type(dashboard.DashboardLinkType.Dashboards).tags([TAG]).asDropdown(true).includeVars(true).keepTime(true))
    .withVariable(new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'));
  const scopeVars: string[] = [];
  const selectorOf = (metric: string) => selector(metric, variableScope(scopeVars));
  const addVar = (name: string, label: string, metric: string, labelName: string, allValue = '.+') => {
    const q = `label_values(${selectorOf(metric)}, ${labelName})`;
    b.withVariable(
      new dashboard.QueryVariableBuilder(name)
        .label(label)
        .datasource(DS)
        .query({ qryType: 1, query: q, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
        .definition(q)
        .multi(true)
        .includeAll(true)
        .allValue(allValue)
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
        .sort(dashboard.VariableSort.NaturalAsc),
    );
    scopeVars.push(name);
  };
  // All clusters is `.*`: it also matches series without the label (a single Prometheus).
  addVar(CLUSTER_LABEL, 'Cluster', 'ds_exporter_build_info', CLUSTER_LABEL, '.*');
  addVar('job', 'Job', 'ds_exporter_build_info', 'job');
  addVar('instance', 'Instance', 'ds_exporter_build_info', 'instance');
  for (const f of opts.filters) {
    const src = FILTER_SOURCE[f];
    addVar(f, src.title, src.metric, src.label);
  }
  return b;
}

/**
 * Explains the two utilization readings, on every panel that shows one.
 * The counter is exact over any window; the gauge is one driver reading.
 */
export const UTILIZATION_NOTE =
  'Computed from rate(ds_gpu_busy_seconds_total): seconds the GPU ran kernels per second, integrated by the exporter from the driver sample buffer (see ds_gpu_utilization_method: "samples" is lossless, "point" integrates point readings), so the average over any range is exact. ds_gpu_utilization_ratio is only the driver\'s last point reading and misses bursts between scrapes; it is used for "now" values only.';

/** What the per-pod panels say about where the pod comes from. */
export const POD_NOTE =
  'The pod is the one the kubelet assigned the GPU to (ds_gpu_allocation_info, joined on job, instance and uuid); GPUs assigned to no pod are left out, and the namespace and pod variables filter the allocation.';

/**
 * Attributes a per-GPU expression (one series per job, instance, uuid) to pods:
 * `ds_gpu_allocation_info{...} * on (job, instance, uuid) group_left () (expr)`. The allocation
 * is the "many" side, so a GPU shared by several pods (time-slicing) counts for each of
 * them instead of failing the join; the allocation series is 1, so values are kept. `job`
 * is the scrape job on both sides (pushed series keep theirs as exported_job).
 */
export function perPod(q: Q, expr: string): string {
  return `${q.s('ds_gpu_allocation_info')} * on (job, instance, uuid) group_left () (${ONE_PER_GPU}(${expr}))`;
}

/**
 * Collapses the copies `--kubelet.enrich-labels` makes of a shared GPU's series (one per pod,
 * same value) back to one series per GPU; a no-op without the flag.
 */
export const ONE_PER_GPU = 'max without (namespace, pod, container) ';

/**
 * Labels a per-process expression (several series per GPU) with the pod holding the GPU:
 * `expr * on (job, instance, uuid) group_left (namespace, pod) <allocations of GPUs held by
 * one pod>`. A process cannot be told apart between pods sharing its GPU, so shared GPUs
 * are left out rather than failing the join (many-to-many).
 */
export function byPodProcess(q: Q, expr: string): string {
  const alloc = q.s('ds_gpu_allocation_info');
  return `${ONE_PER_GPU}(${expr}) * on (job, instance, uuid) group_left (namespace, pod) (${alloc} and on (job, instance, uuid) (count by (job, instance, uuid) (${alloc}) == 1))`;
}

/** GPU busy time per pod: the busy fraction summed over the pod's GPUs. */
export function podBusyPanel(q: Q, opts: { w?: number } = {}): timeseries.PanelBuilder {
  return timeSeries({
    title: 'GPU busy by pod',
    description: `Busy fraction of the GPUs of each pod, summed over its GPUs (1 = one GPU busy all the time, so a pod holding 4 GPUs tops out at 400%); a GPU shared by several pods counts fully for each. ${POD_NOTE} ${UTILIZATION_NOTE}`,
    unit: 'percentunit', min: 0, w: opts.w,
    targets: [{ expr: `sum by (namespace, pod) (${perPod(q, `rate(${q.s('ds_gpu_busy_seconds_total')}[$__rate_interval])`)})`, legend: '{{namespace}}/{{pod}}' }],
  });
}

/** Device memory used per pod: the driver's used bytes summed over the pod's GPUs. */
export function podMemoryPanel(q: Q, opts: { w?: number } = {}): timeseries.PanelBuilder {
  return timeSeries({
    title: 'GPU memory used by pod',
    description: `Device memory in use on the GPUs of each pod (ds_gpu_memory_used_bytes, driver view: includes the allocator cache and the CUDA context), summed over its GPUs; a GPU shared by several pods counts fully for each. ${POD_NOTE}`,
    unit: 'bytes', min: 0, w: opts.w,
    targets: [{ expr: `sum by (namespace, pod) (${perPod(q, q.s('ds_gpu_memory_used_bytes'))})`, legend: '{{namespace}}/{{pod}}' }],
  });
}

/** Allocator fragmentation of every process, labeled with the pod holding its GPU. */
export function podFragmentationPanel(q: Q, opts: { w?: number } = {}): timeseries.PanelBuilder {
  return timeSeries({
    title: 'Fragmentation by pod',
    description: `(reserved - allocated) / reserved of the caching allocator of each process (ds_gpu_memory_fragmentation_ratio, one series per pid), labeled with the pod holding its GPU. ${POD_NOTE} Processes on a GPU shared by several pods are left out (the exporter cannot tell which pod a process belongs to); see Fragmentation per process. exported_job is the process's own job label, renamed by Prometheus beside the scrape job.`,
    unit: 'percentunit', min: 0, max: 1, w: opts.w,
    targets: [{ expr: byPodProcess(q, q.s('ds_gpu_memory_fragmentation_ratio')), legend: '{{namespace}}/{{pod}} {{instance}} GPU {{gpu}} pid {{pid}} {{exported_job}}' }],
  });
}

/**
 * Device memory per pod from the GPU processes themselves: each process's memory, labelled
 * with the pod its cgroup names (`ds_gpu_process_info`, one series per process, so the join is
 * one-to-one). A GPU shared by several pods is split by process instead of counting fully
 * for each.
 */
export function podProcessMemoryPanel(q: Q, opts: { w?: number } = {}): timeseries.PanelBuilder {
  return timeSeries({
    title: 'GPU memory by pod (processes)',
    description: 'Device memory used by the GPU processes of each pod (ds_gpu_process_memory_used_bytes, needs --nvml.process-memory), each process attributed to the pod its cgroup names (ds_gpu_process_info, needs --kubelet.process-attribution and hostPID; joined on job, instance, uuid and pid; also correct with --kubelet.enrich-labels). Unlike "GPU memory used by pod", a GPU shared by several pods is split between them by process, so the pods add up to the memory actually used; the CUDA context and memory of processes that could not be attributed (empty pod) are left out, and the namespace and pod variables filter the pods of the processes.',
    unit: 'bytes', min: 0, w: opts.w,
    // max by (…, pid) collapses the per-holder copies --kubelet.enrich-labels makes of a shared GPU's process series.
    targets: [{ expr: `sum by (namespace, pod) (max by (job, instance, uuid, pid) (${q.s('ds_gpu_process_memory_used_bytes')}) * on (job, instance, uuid, pid) group_left (namespace, pod) ${q.s('ds_gpu_process_info')})`, legend: '{{namespace}}/{{pod}}' }],
  });
}

/** Where the recording rules a dashboard reads come from, for the notes that say so. */
export const RULES_NOTE = 'alerts/ds-exporter-rules.yaml (load it with rule_files, or install the chart with prometheusRule.enabled: its PrometheusRule ships it)';

/**
 * A stat panel that says on the dashboard whether the recording rules it reads (`reads`, one of
 * them, for the description) are loaded: the share of exporters that have a series recorded per
 * exporter by the same rule file (instance:ds_gpu_info:count). Without the rules the numerator is
 * empty, and the panel shows what to load instead of a number.
 */
export function recordingRulesPanel(q: Q, reads: string): stat.PanelBuilder {
  const indicator = 'instance:ds_gpu_info:count';
  return statPanel({
    title: 'Recording rules',
    description: `This dashboard reads recorded series (${reads} and others) that only exist where the recording rules are evaluated: ${RULES_NOTE}. Shows the share of exporters that have ${indicator}, recorded by the same file (100% when loaded); "not loaded" means the panels reading recorded series stay empty.`,
    unit: 'percentunit', min: 0, max: 1, thresholds: [[null, 'red'], [1, 'green']],
    // Instant: whether the rules are loaded now; the denominator is one raw series per exporter.
    targets: [{ expr: `count(${q.s(indicator)}) / count(${q.s('ds_exporter_build_info')})`, instant: true }],
  }).noValue(`Not loaded: ${RULES_NOTE.split(' (')[0]}`);
}
