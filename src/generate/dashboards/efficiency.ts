import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as table from '@grafana/grafana-foundation-sdk/table';
import { findMetric } from '../../catalog/index.js';
import { EFF, SM_ACTIVE } from '../rules/efficiency.js';
import { dashboardShell, type PanelBase, queries, recordingRulesPanel, row, tablePanel, timeSeries } from './common.js';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import { DS } from './common.js';

const RANK = 'cluster, job, instance, exported_job, rank, dtype';

/**
 * A table of several instant queries merged on their labels, one column per query
 * (Grafana names them "Value #A", "Value #B", ...; renamed here), each with its own unit.
 */
function mergedTable(p: Omit<PanelBase, 'targets'> & { columns: readonly string[]; values: ReadonlyArray<{ title: string; expr: string; unit: string }>; sortBy: string }): table.PanelBuilder {
  const b = new table.PanelBuilder().title(p.title).description(p.description).datasource(DS).unit(p.unit).span(p.w ?? 24).height(p.h ?? 9);
  p.values.forEach((v, i) => {
    const refId = String.fromCharCode(65 + i);
    b.withTarget(new prometheus.DataqueryBuilder().datasource(DS).refId(refId).expr(v.expr).legendFormat('__auto').format(prometheus.PromQueryFormat.Table).instant());
  });
  b.withTransformation({ id: 'merge', options: {} });
  b.withTransformation({
    id: 'organize',
    options: {
      excludeByName: { Time: true },
      indexByName: Object.fromEntries([...p.columns, ...p.values.map((_, i) => `Value #${String.fromCharCode(65 + i)}`)].map((c, i) => [c, i])),
      renameByName: Object.fromEntries(p.values.map((v, i) => [`Value #${String.fromCharCode(65 + i)}`, v.title])),
    },
  });
  for (const v of p.values) b.overrideByName(v.title, [{ id: 'unit', value: v.unit }]);
  b.sortBy([new common.TableSortByFieldStateBuilder().displayName(p.sortBy).desc(false)]);
  return b.filterable(true);
}

/** Efficiency: what a token costs, who holds GPUs and wastes them, how well training uses them, stragglers and slow links. */
export function efficiencyDashboard(): dashboard.Dashboard {
  const q = queries(['engine', 'model', 'namespace', 'pod']);
  const s = q.s;
  // GPU-seconds per second averaged over the range, times the range: GPU-hours.
  const hours = (rec: string) => `sum by (namespace, pod) (avg_over_time(${s(rec)}[$__range])) * $__range_s / 3600`;
  const b = dashboardShell({
    uid: 'ds-exporter-efficiency',
    title: 'ds-exporter / Efficiency',
    description: 'Energy and GPU time per token, GPU-hours held and wasted by pod, model FLOPs utilization, stragglers, hung jobs and outlying peer links: the answers that need GPUs, engines, pods and training ranks in one view. Needs the recording rules: alerts/ds-exporter-rules.yaml (the chart\'s PrometheusRule ships them); the "Recording rules" panel says whether they are loaded.',
    tags: ['efficiency'],
    filters: ['engine', 'model', 'namespace', 'pod'],
  })
    .withRow(row('Cost per token'))
    .withPanel(recordingRulesPanel(q, EFF.joulesPerToken))
    .withPanel(timeSeries({
      title: 'Energy per generated token',
      description: `Joules the GPUs of each engine drew per generated token (recording rule ${EFF.joulesPerToken}: rate of ds_gpu_energy_joules_total over the engine's GPUs, ds_engine_gpu_info, divided by the rate of generated tokens; lossless counters, exact over the 5-minute window). All the energy is set against this phase: prompt and generation share the GPUs, so the two per-token figures are not additive. Absent for an engine whose GPUs could not be told and while no token was generated.`,
      unit: 'joule', min: 0,
      targets: [{ expr: s(EFF.joulesPerToken, 'phase="generation"'), legend: '{{instance}} {{engine}} {{model}}' }],
    }))
    .withPanel(timeSeries({
      title: 'Energy per prompt token',
      description: `Joules the GPUs of each engine drew per prompt token, prompt-cache hits included (recording rule ${EFF.joulesPerToken}, phase="prompt"); the same energy as the generated-token figure, set against the prompt tokens.`,
      unit: 'joule', min: 0,
      targets: [{ expr: s(EFF.joulesPerToken, 'phase="prompt"'), legend: '{{instance}} {{engine}} {{model}}' }],
    }))
    .withPanel(timeSeries({
      title: 'GPU-seconds per 1,000 generated tokens',
      description: `GPU time per 1,000 generated tokens: "held" counts every GPU the engine runs on for the whole time (${EFF.gpuSecondsPer1k}: what the tokens cost in GPU rental), "busy" only the time those GPUs ran kernels (${EFF.busySecondsPer1k}, from ds_gpu_busy_seconds_total). The gap between the two is GPU time the engine held but did not use.`,
      unit: 's', min: 0,
      targets: [
        { expr: s(EFF.gpuSecondsPer1k, 'phase="generation"'), legend: '{{instance}} {{engine}} {{model}} held' },
        { expr: s(EFF.busySecondsPer1k, 'phase="generation"'), legend: '{{instance}} {{engine}} {{model}} busy' },
      ],
    }))
    .withPanel(tablePanel({
      title: 'Engines and their GPUs',
      description: 'Which GPUs each engine target runs on (ds_engine_gpu_info) and how the exporter learned it: "flag" from #gpus= on --engine.target, "nvml_processes" from the engine process and its children in the GPU process lists, "kubelet" from the allocation of the pod named by #pod=, "simulated" from the simulator. An engine missing here has no cost per token: its GPUs could not be told.',
      unit: 'short', columns: ['instance', 'target', 'engine', 'model', 'gpu', 'uuid', 'source'],
      targets: [{ expr: s('ds_engine_gpu_info'), format: 'table', instant: true }],
    }))
    .withRow(row('GPU time by pod'))
    .withPanel(mergedTable({
      title: 'Who holds GPUs and uses them least',
      description: `Every pod holding GPUs (ds_gpu_allocation_info), least used first: the busy share of the GPU time it held over the dashboard's range, GPU-hours held, busy and idle over the range (from the recording rules ${EFF.podAllocated}, ${EFF.podBusy} and ${EFF.podIdle}, averaged over the range), and GPUs held now. A GPU shared by several pods counts fully for each. DsGpuAllocatedIdle fires on the same busy share (over 30 minutes).`,
      unit: 'short', columns: ['namespace', 'pod'], sortBy: 'Busy share',
      values: [
        { title: 'Busy share', unit: 'percentunit', expr: `sum by (namespace, pod) (avg_over_time(${s(EFF.podBusy)}[$__range])) / sum by (namespace, pod) (avg_over_time(${s(EFF.podAllocated)}[$__range]))` },
        { title: 'GPU-hours held', unit: 'short', expr: hours(EFF.podAllocated) },
        { title: 'GPU-hours busy', unit: 'short', expr: hours(EFF.podBusy) },
        { title: 'GPU-hours idle', unit: 'short', expr: hours(EFF.podIdle) },
        { title: 'GPUs held now', unit: 'short', expr: `sum by (namespace, pod) (${s(EFF.podAllocated)})` },
      ],
    }))
    .withPanel(timeSeries({
      title: 'Idle GPUs held, by pod',
      description: `GPU-seconds per second each pod held without using them (${EFF.podIdle}: GPUs held minus busy GPU time; 1 = one whole GPU idle).`,
      unit: 'short', min: 0, stack: true,
      targets: [{ expr: s(EFF.podIdle), legend: '{{namespace}}/{{pod}}' }],
    }))
    .withPanel(timeSeries({
      title: 'GPU busy share by pod',
      description: `Busy GPU time over GPU time held, per pod (${EFF.podBusyRatio}); "busy" means a kernel ran, not that the SMs were full.`,
      unit: 'percentunit', min: 0, max: 1,
      targets: [{ expr: s(EFF.podBusyRatio), legend: '{{namespace}}/{{pod}}' }],
    }));
  if (findMetric(SM_ACTIVE)) {
    b.withPanel(timeSeries({
      title: 'SM-active GPU time by pod',
      description: `SM-active GPU-seconds per second of each pod (${EFF.podSmActive}, from the profiling counters): how much of the held GPUs' compute actually ran, which busy time overstates.`,
      unit: 'short', min: 0,
      targets: [{ expr: s(EFF.podSmActive), legend: '{{namespace}}/{{pod}}' }],
    }));
  }
  return b
    .withRow(row('Training'))
    .withPanel(timeSeries({
      title: 'Model FLOPs utilization by job',
      description: `Model FLOPs per second of the job (ds_training_model_flops_total: samples times the FLOPs per sample the reporter declared) over the dense peak of its ranks' GPUs (${EFF.rankPeak}, from the datasheet table in docs/efficiency.md). Ranks whose GPU has no known peak, or whose figure would exceed the peak (wrong FLOPs per sample), are left out of both sides.`,
      unit: 'percentunit', min: 0, max: 1,
      targets: [{ expr: `sum by (exported_job, dtype) (${s(EFF.rankMfu)} * on (${RANK}) ${s(EFF.rankPeak)}) / sum by (exported_job, dtype) (${s(EFF.rankPeak)} and on (${RANK}) ${s(EFF.rankMfu)})`, legend: '{{exported_job}} ({{dtype}})' }],
    }))
    .withPanel(timeSeries({
      title: 'Model FLOPs utilization by rank',
      description: `Each rank's model FLOPs per second over the dense peak of the GPUs it reported (${EFF.rankMfu}); absent for ranks without a GPU UUID, on an unknown GPU model or a MIG device.`,
      unit: 'percentunit', min: 0, max: 1,
      targets: [{ expr: s(EFF.rankMfu), legend: '{{exported_job}} rank {{rank}} ({{instance}})' }],
    }))
    .withPanel(timeSeries({
      title: 'Step time by rank',
      description: 'Mean time per step of each rank (ds_training_step_seconds: rate of the sum over rate of the count) and its p99. In fully synchronous training the wall time between steps is the same on every rank; a straggler stands out in the compute time a rank reports (see docs/efficiency.md).',
      unit: 's', min: 0,
      targets: [
        { expr: s(EFF.rankStep), legend: '{{exported_job}} rank {{rank}} mean' },
        { expr: `histogram_quantile(0.99, sum by (instance, exported_job, rank, le) (rate(${s('ds_training_step_seconds_bucket')}[$__rate_interval])))`, legend: '{{exported_job}} rank {{rank}} p99' },
      ],
    }))
    .withPanel(tablePanel({
      title: 'Stragglers: step time against the job median',
      description: `Each rank's mean step time over the median rank of its job, across all hosts (${EFF.rankStepRatio}; jobs of 3 ranks or more), slowest first. DsTrainingStraggler fires above 1.2 for 15 minutes.`,
      unit: 'short', columns: ['exported_job', 'rank', 'instance'], sortBy: 'Value',
      targets: [{ expr: `sort_desc(${s(EFF.rankStepRatio)})`, format: 'table', instant: true }],
    }))
    .withPanel(timeSeries({
      title: 'Steps per second by job',
      description: 'Training steps per second of each job (ds_training_steps_total, summed over ranks and hosts). A line at zero while the job still reports is a hung job (DsTrainingHung: no step and no collective for 10 minutes).',
      unit: 'ops', min: 0,
      targets: [{ expr: `sum by (exported_job) (rate(${s('ds_training_steps_total')}[$__rate_interval]))`, legend: '{{exported_job}}' }],
    }))
    .withPanel(timeSeries({
      title: 'Collectives per second by job',
      description: 'Collective operations reported per second by each job (ds_comm_collective_latency_seconds count, by op). Steps and collectives both at zero: the job is stuck in a collective.',
      unit: 'ops', min: 0,
      targets: [{ expr: `sum by (exported_job, op) (rate(${s('ds_comm_collective_latency_seconds_count')}[$__rate_interval]))`, legend: '{{exported_job}} {{op}}' }],
    }))
    .withRow(row('Peer mesh'))
    .withPanel(timeSeries({
      title: 'Median RTT per link',
      description: `Median round-trip time of each peer link (${EFF.linkRtt}, from ds_comm_peer_latency_seconds). DsCommPeerRttOutlier fires for a link over 3x the median link of the mesh (and above 0.5 ms).`,
      unit: 's', min: 0,
      targets: [{ expr: s(EFF.linkRtt), legend: '{{instance}} -> {{peer}}' }],
    }))
    .withPanel(tablePanel({
      title: 'Outlying peer links',
      description: `Each link's median RTT over the median link of its mesh (the scrape job), slowest first; a link far above 1 is slow while the fabric is not.`,
      unit: 'short', columns: ['instance', 'peer'], sortBy: 'Value',
      targets: [{ expr: `sort_desc(${s(EFF.linkRtt)} / on (cluster, job) group_left () quantile by (cluster, job) (0.5, ${s(EFF.linkRtt)}))`, format: 'table', instant: true }],
    }))
    .withPanel(tablePanel({
      title: 'Probe loss per link',
      description: 'Fraction of probes lost on each peer link (ds_comm_peer_loss_ratio), worst first. DsCommPeerLossOutlier fires for a link 2 percentage points over the median link of the mesh.',
      unit: 'percentunit', columns: ['instance', 'peer'], sortBy: 'Value',
      targets: [{ expr: `sort_desc(${s('ds_comm_peer_loss_ratio')})`, format: 'table', instant: true }],
    }))
    .build();
}
