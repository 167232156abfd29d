import { CLUSTER_LABEL, selector, type Scope } from '../promql.js';
import type { RulesConfig } from './config.js';
import { allocatedIdleAlert, efficiencyAlertGroups } from './efficiency.js';
import { ttftErrorRecord } from './recording.js';
import { healthAlerts } from './health-alerts.js';

export type Severity = 'critical' | 'warning' | 'info';

/** One alerting rule in monitoring-mixin form. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly severity: Severity;
  /** Static one-liner. */
  readonly summary: string;
  /** Templated with $labels / $value. */
  readonly description: string;
}

export interface AlertGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

// The cluster label (absent on a single Prometheus) is kept, so alerts of different clusters
// evaluated in one store stay apart.
const T = `${CLUSTER_LABEL}, job, instance`;
const GPU = `${T}, gpu, uuid`;
const where = 'on {{ $labels.instance }}';
const gpuAt = 'GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }}';

/**
 * ` (held by namespace/pod)` when the kubelet assigned the alert's GPU to a pod, nothing
 * otherwise: the description queries ds_gpu_allocation_info for the alert's instance and
 * uuid (Prometheus template `query`, read when the alert is evaluated) and lists every pod
 * found, sorted. The query goes through the selector helper, so it names a catalog
 * series and carries the configured selector; a Go raw string keeps its quotes intact.
 */
export function heldBy(s: Scope): string {
  const q = selector('ds_gpu_allocation_info', s, ['instance=%q', 'uuid=%q']);
  if (q.includes('`')) throw new Error(`heldBy: the selector ${q} cannot be written in a template raw string`);
  const fmt = q.replace(/%(?!q)/g, '%%');
  return '{{ with printf `' + fmt + '` $labels.instance $labels.uuid | query | sortByLabel "pod" }}'
    + ' (held by {{ range $i, $a := . }}{{ if $i }}, {{ end }}{{ $a.Labels.namespace }}/{{ $a.Labels.pod }}{{ end }}){{ end }}';
}

/** The alert groups, from the catalog (through the selector helper) and the config. */
export function alertGroups(cfg: RulesConfig): AlertGroup[] {
  const s: Scope = { always: cfg.selector, byLabel: {} };
  const m = (metric: string, extra: string[] = []) => selector(metric, s, extra);
  // An XID counter series is born at its first event, already at 1: increase() needs a point
  // before the event and would miss the first XID of each code. A series younger than the
  // window (with or without the action label, which an upgrade added) counts as risen too.
  const risen = (sel: string) => `increase(${sel}[${w}]) > 0 or (count_over_time(${sel}[${w}]) unless ignoring (action) count_over_time(${sel}[${w}] offset ${w}))`;
  const w = cfg.rateWindow;
  const xids = cfg.criticalXids.join('|');
  const pct = (r: number) => `${Math.round(r * 100)}%`;
  // The GPU and, when a pod holds it, the pod: for alerts whose labels carry instance and uuid.
  const gpuHeld = gpuAt + heldBy(s);
  return [
    {
      name: 'ds-exporter-exporter',
      rules: [
        {
          alert: 'DsExporterDown', for: cfg.exporterDownFor, severity: 'critical',
          expr: `${m('up')} == 0`,
          summary: 'A ds-exporter target is down.',
          description: 'Prometheus could not scrape {{ $labels.instance }} (job {{ $labels.job }}) for ' + cfg.exporterDownFor + '; nothing from this host is monitored.',
        },
        {
          alert: 'DsExporterCollectorFailing', for: '10m', severity: 'warning',
          expr: `${m('ds_exporter_collector_success')} == 0`,
          summary: 'A ds-exporter collector keeps failing.',
          description: 'Collector {{ $labels.collector }} ' + where + ' has failed every sample for 10 minutes; its series are going stale.',
        },
        {
          alert: 'DsExporterCollectorStale', for: '5m', severity: 'warning',
          expr: `time() - ${m('ds_exporter_collector_last_success_timestamp_seconds')} > ${cfg.collectorStaleSeconds}`,
          summary: 'A ds-exporter collector has not succeeded for a long time.',
          description: 'Collector {{ $labels.collector }} ' + where + ' last succeeded {{ $value | humanizeDuration }} ago.',
        },
      ],
    },
    {
      name: 'ds-exporter-gpu',
      rules: [
        ...healthAlerts(m, w, gpuHeld),
        {
          alert: 'DsGpuLost', for: '1m', severity: 'critical',
          expr: `${m('ds_gpu_up')} == 0`,
          summary: 'A GPU stopped answering the driver.',
          description: gpuHeld + ' does not answer NVML; workloads on it are failing or hung.',
        },
        {
          alert: 'DsGpuCountDropped', for: '5m', severity: 'critical',
          expr: `count by (${T}) (${m('ds_gpu_info')}) < count by (${T}) (${m('ds_gpu_info')} offset 1h)`,
          summary: 'A host sees fewer GPUs than an hour ago.',
          description: '{{ $labels.instance }} sees {{ $value }} GPUs, fewer than an hour ago; a GPU fell off the bus or the driver lost it.',
        },
        {
          alert: 'DsGpuXidCritical', for: '0m', severity: 'critical',
          expr: risen(m('ds_gpu_xid_errors_total', [`xid=~"${xids}"`])),
          summary: 'A GPU reported a critical XID error.',
          description: gpuHeld + ' reported XID {{ $labels.xid }} in the last ' + w + '; see the runbook for what this XID means and whether the GPU must be drained and reset.',
        },
        {
          alert: 'DsGpuXidErrors', for: '0m', severity: 'info',
          expr: risen(m('ds_gpu_xid_errors_total', [`xid!~"${xids}"`])),
          summary: 'A GPU reported an XID error.',
          description: gpuHeld + ' reported XID {{ $labels.xid }}; usually an application fault (e.g. 13, 31, 43), worth a look when it repeats.',
        },
        {
          alert: 'DsGpuEccUncorrectable', for: '0m', severity: 'critical',
          expr: `increase(${m('ds_gpu_ecc_errors_total', ['type="uncorrected"'])}[${w}]) > 0`,
          summary: 'A GPU had uncorrectable ECC errors.',
          description: gpuHeld + ' counted {{ $value | printf "%.0f" }} uncorrectable ECC errors in ' + w + '; data on it may be corrupt.',
        },
        {
          alert: 'DsGpuThermalThrottling', for: cfg.thermalThrottleFor, severity: 'warning',
          expr: `sum by (${GPU}) (rate(${m('ds_gpu_throttle_seconds_total', ['reason=~"hw_slowdown|sw_thermal_slowdown|hw_thermal_slowdown"'])}[${w}])) > ${cfg.throttleRatio}`,
          summary: 'A GPU is throttled for heat.',
          description: gpuHeld + ' spent {{ $value | humanizePercentage }} of the time in thermal slowdown for ' + cfg.thermalThrottleFor + '.',
        },
        {
          alert: 'DsGpuPowerThrottling', for: cfg.powerThrottleFor, severity: 'info',
          expr: `sum by (${GPU}) (rate(${m('ds_gpu_throttle_seconds_total', ['reason=~"sw_power_cap|hw_power_brake_slowdown"'])}[${w}])) > ${cfg.throttleRatio}`,
          summary: 'A GPU is held at its power limit.',
          description: gpuHeld + ' spent {{ $value | humanizePercentage }} of the time power-capped for ' + cfg.powerThrottleFor + '.',
        },
        {
          alert: 'DsGpuMemoryNearlyFull', for: '15m', severity: 'warning',
          expr: `${m('ds_gpu_memory_utilization_ratio')} > ${cfg.memoryFullRatio}`,
          summary: 'GPU memory is nearly full.',
          description: gpuHeld + ' has {{ $value | humanizePercentage }} of its memory in use (threshold ' + pct(cfg.memoryFullRatio) + ').',
        },
        {
          alert: 'DsGpuMemoryFragmentationHigh', for: '15m', severity: 'warning',
          expr: `${m('ds_gpu_memory_fragmentation_ratio')} > ${cfg.fragmentationRatio} and on (${GPU}, pid) increase(${m('ds_allocator_alloc_retries_total')}[${w}]) > 0`,
          summary: 'A process allocator is fragmented and retrying allocations.',
          description: 'Process {{ $labels.pid }} on ' + gpuHeld + ' keeps {{ $value | humanizePercentage }} of its reserved memory unused and its allocations are being retried.',
        },
        // Reads the per-pod recorded busy ratio, like the dashboard table of who holds GPUs and uses them least.
        allocatedIdleAlert(cfg),
        {
          // Busy by the driver's duty cycle ("a kernel ran") while the profiling counters see few SMs
          // doing anything: a stalled job (spinning kernels, waits on the host or the network) or a
          // host-bound one. Only GPUs with profiling (GPM) have ds_gpu_sm_active_seconds_total.
          alert: 'DsGpuBusyLowSmActivity', for: cfg.smLowFor, severity: 'warning',
          expr: `max without (namespace, pod, container) (rate(${m('ds_gpu_sm_active_seconds_total')}[${cfg.smLowWindow}])) < ${cfg.smLowActiveRatio}`
            + ` and on (${GPU}) max without (namespace, pod, container) (rate(${m('ds_gpu_busy_seconds_total')}[${cfg.smLowWindow}])) > ${cfg.smLowBusyRatio}`,
          summary: 'A GPU is busy but its SMs are nearly idle.',
          description: gpuHeld + ' ran kernels more than ' + pct(cfg.smLowBusyRatio) + ' of the time over ' + cfg.smLowWindow + ' but only {{ $value | humanizePercentage }} of its SMs were active: a stalled or host-bound job.',
        },
      ],
    },
    {
      name: 'ds-exporter-serving',
      rules: [
        {
          alert: 'DsServingThroughputDropped', for: '15m', severity: 'warning',
          expr: `sum by (${T}, engine, model) (rate(${m('ds_serving_tokens_total', ['phase="generation"'])}[10m]))`
            + ` < ${cfg.throughputDropRatio} * sum by (${T}, engine, model) (rate(${m('ds_serving_tokens_total', ['phase="generation"'])}[10m] offset 1h))`
            + ` and sum by (${T}, engine, model) (rate(${m('ds_serving_tokens_total', ['phase="generation"'])}[10m] offset 1h)) > ${cfg.throughputMinTokensPerSecond}`,
          summary: 'Serving throughput dropped against an hour ago.',
          description: 'Generation throughput of {{ $labels.model }} ({{ $labels.engine }}) ' + where + ' is {{ $value | humanize }} tokens/s, under ' + pct(cfg.throughputDropRatio) + ' of an hour ago.',
        },
        {
          // Requests wait and nothing is generated: a hung engine (dead worker, NCCL hang, deadlocked scheduler).
          alert: 'DsServingStalled', for: cfg.stalledFor, severity: 'critical',
          expr: `sum by (${T}, engine, model) (${m('ds_serving_requests_waiting')}) > 0`
            + ` and on (${T}, engine, model) sum by (${T}, engine, model) (rate(${m('ds_serving_tokens_total', ['phase="generation"'])}[${cfg.stalledFor}])) == 0`,
          summary: 'An engine has requests waiting and generates nothing.',
          description: '{{ $value }} requests wait for {{ $labels.model }} ({{ $labels.engine }}) ' + where + ' and no token was generated for ' + cfg.stalledFor + '.',
        },
        ...ttftBurnAlerts(cfg),
        {
          alert: 'DsServingRequestFailures', for: '10m', severity: 'warning',
          expr: `sum by (${T}, engine, model) (rate(${m('ds_serving_requests_total', [`outcome=~"${cfg.failureOutcomes}"`])}[${w}])) / sum by (${T}, engine, model) (rate(${m('ds_serving_requests_total')}[${w}])) > ${cfg.failureRatio}`,
          summary: 'Many serving requests fail.',
          description: '{{ $value | humanizePercentage }} of requests to {{ $labels.model }} ({{ $labels.engine }}) ' + where + ' failed over ' + w + '.',
        },
        {
          alert: 'DsServingKvCacheSaturated', for: '10m', severity: 'warning',
          expr: `${m('ds_serving_kv_cache_usage_ratio')} > ${cfg.kvCacheRatio} and on (${T}, engine, model) delta(${m('ds_serving_requests_waiting')}[10m]) > 0`,
          summary: 'KV cache is full and the request queue grows.',
          description: 'KV cache of {{ $labels.model }} ({{ $labels.engine }}) ' + where + ' is {{ $value | humanizePercentage }} full while waiting requests keep growing; the engine is preempting or queueing.',
        },
        {
          // Preempted requests are recomputed: the KV cache is too small for the load.
          alert: 'DsServingKvCacheThrashing', for: '10m', severity: 'warning',
          expr: `sum by (${T}, engine, model) (rate(${m('ds_serving_preemptions_total')}[${w}])) > ${cfg.preemptionsPerSecond}`,
          summary: 'The engine keeps preempting requests: the KV cache thrashes.',
          description: '{{ $labels.model }} ({{ $labels.engine }}) ' + where + ' preempts {{ $value | printf "%.2f" }} requests/s; their prefill is recomputed and latency suffers.',
        },
      ],
    },
    {
      name: 'ds-exporter-comm',
      rules: [
        {
          alert: 'DsCommPeerUnreachable', for: '2m', severity: 'warning',
          expr: `${m('ds_comm_peer_up')} == 0`,
          summary: 'A peer exporter does not answer probes.',
          description: '{{ $labels.instance }} cannot reach peer {{ $labels.peer }}.',
        },
        {
          alert: 'DsCommPeerPacketLoss', for: '10m', severity: 'warning',
          expr: `${m('ds_comm_peer_loss_ratio')} > ${cfg.peerLossRatio}`,
          summary: 'Probes to a peer are being lost.',
          description: '{{ $value | humanizePercentage }} of probes from {{ $labels.instance }} to {{ $labels.peer }} are lost.',
        },
        {
          alert: 'DsCommPeerLatencyHigh', for: '10m', severity: 'warning',
          expr: `histogram_quantile(0.99, sum by (${T}, peer, le) (rate(${m('ds_comm_peer_latency_seconds_bucket')}[${w}]))) > ${cfg.peerLatencyP99Seconds}`,
          summary: 'Round-trip time to a peer is high.',
          description: 'p99 RTT from {{ $labels.instance }} to {{ $labels.peer }} is {{ $value | humanizeDuration }}.',
        },
        {
          alert: 'DsCommCollectiveLatencyRegression', for: '15m', severity: 'warning',
          expr: `histogram_quantile(0.99, sum by (${T}, exported_job, op, le) (rate(${m('ds_comm_collective_latency_seconds_bucket')}[${w}])))`
            + ` > ${cfg.collectiveRegressionFactor} * histogram_quantile(0.99, sum by (${T}, exported_job, op, le) (rate(${m('ds_comm_collective_latency_seconds_bucket')}[${w}] offset ${cfg.collectiveBaselineOffset})))`,
          summary: 'Collective operations got slower than their baseline.',
          description: 'p99 of {{ $labels.op }} in job {{ $labels.exported_job }} ' + where + ' is {{ $value | humanizeDuration }}, over ' + cfg.collectiveRegressionFactor + 'x its value ' + cfg.collectiveBaselineOffset + ' ago.',
        },
      ],
    },
    ...efficiencyAlertGroups(cfg),
  ];
}

/** The runbook anchor of an alert (GitHub-style heading slug). */
export function runbookAnchor(alert: string): string {
  return alert.toLowerCase();
}

/**
 * Multi-window, multi-burn-rate alerts on the TTFT objective (the SRE workbook's): a
 * page when the error budget burns 14.4x too fast over 1 h (confirmed over 5 m: 2 % of a
 * 30-day budget gone in an hour), a ticket at 6x over 6 h (confirmed over 30 m).
 */
function ttftBurnAlerts(cfg: RulesConfig): AlertRule[] {
  const budget = Number((1 - cfg.ttftObjectiveRatio).toPrecision(6));
  const rec = (w: string) => selector(ttftErrorRecord(w), { always: cfg.selector, byLabel: {} });
  const objective = `${pct(cfg.ttftObjectiveRatio, 1)} of requests within ${cfg.ttftObjectiveSeconds}s`;
  const burn = (long: string, short: string, factor: number, severity: Severity): AlertRule => ({
    alert: severity === 'critical' ? 'DsServingTtftSloBurnFast' : 'DsServingTtftSloBurnSlow', for: severity === 'critical' ? '2m' : '15m', severity,
    expr: `${rec(long)} > ${factor} * ${budget} and ${rec(short)} > ${factor} * ${budget}`,
    summary: 'Time to first token burns its error budget too fast.',
    description: '{{ $value | humanizePercentage }} of requests to {{ $labels.model }} ({{ $labels.engine }}) ' + where + ` missed their first-token objective over ${long} (objective: ${objective}; ${factor}x the budget).`,
  });
  return [burn('1h', '5m', 14.4, 'critical'), burn('6h', '30m', 6, 'warning')];
}

function pct(r: number, digits = 0): string {
  return `${(r * 100).toFixed(digits)}%`;
}
