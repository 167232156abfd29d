import { findMetric } from '../../catalog/index.js';
import { CLUSTER_LABEL, declareRecorded, selector, type Scope } from '../promql.js';
import type { AlertGroup, AlertRule } from './alerts.js';
import type { RulesConfig } from './config.js';
import { GPU_PEAKS } from './gpu-peak.js';

/** One recording rule. */
interface Rec {
  readonly record: string;
  readonly expr: string;
}

/**
 * Recorded series of the efficiency rules: cost per token, allocated and wasted GPU time
 * per pod, model FLOPs utilization, step time against the job median, and the peer mesh.
 * The push `job` label is `exported_job` once Prometheus scraped it (the target's `job`
 * wins), so training series group by both.
 */
export const EFF = {
  peak: 'gpu:ds_gpu_peak_flops_per_second:datasheet',
  engineGpus: 'engine_model:ds_serving_gpus:count',
  engineEnergy: 'engine_model:ds_serving_gpu_energy_joules:rate5m',
  engineBusy: 'engine_model:ds_serving_gpu_busy_seconds:rate5m',
  engineTokens: 'engine_model:ds_serving_tokens:rate5m',
  joulesPerToken: 'engine_model:ds_serving_energy_joules_per_token:ratio_rate5m',
  gpuSecondsPer1k: 'engine_model:ds_serving_gpu_seconds_per_1k_tokens:ratio_rate5m',
  busySecondsPer1k: 'engine_model:ds_serving_busy_gpu_seconds_per_1k_tokens:ratio_rate5m',
  podAllocated: 'namespace_pod:ds_gpu_allocated:count',
  podBusy: 'namespace_pod:ds_gpu_busy_seconds:rate5m',
  podSmActive: 'namespace_pod:ds_gpu_sm_active_seconds:rate5m',
  podIdle: 'namespace_pod:ds_gpu_idle_seconds:rate5m',
  podBusyRatio: 'namespace_pod:ds_gpu_busy:ratio_rate5m',
  rankPeak: 'rank:ds_training_peak_flops_per_second:sum',
  rankMfu: 'rank:ds_training_mfu:ratio_rate5m',
  jobMfu: 'training_job:ds_training_mfu:ratio_rate5m',
  rankStep: 'rank:ds_training_step_seconds:mean_rate5m',
  jobStepMedian: 'training_job:ds_training_step_seconds:median_mean_rate5m',
  rankStepRatio: 'rank:ds_training_step_seconds:ratio_job_median',
  linkRtt: 'instance_peer:ds_comm_peer_latency_seconds:p50_rate5m',
  meshRtt: 'mesh:ds_comm_peer_latency_seconds:median_p50_rate5m',
} as const;

// The cluster label (absent on a single Prometheus) stays in every aggregation and match, like the fleet rules'.
const T = [CLUSTER_LABEL, 'job', 'instance'];
const JOB = `${CLUSTER_LABEL}, job, exported_job`;
const MESH = `${CLUSTER_LABEL}, job`;
const EM = ['engine', 'model'];
const POD = ['namespace', 'pod'];
const RANK = ['exported_job', 'rank'];
declareRecorded(EFF.peak, ['gpu', 'uuid', 'dtype']);
for (const n of [EFF.engineGpus, EFF.engineEnergy, EFF.engineBusy]) declareRecorded(n, EM);
for (const n of [EFF.engineTokens, EFF.joulesPerToken, EFF.gpuSecondsPer1k, EFF.busySecondsPer1k]) declareRecorded(n, [...EM, 'phase']);
for (const n of [EFF.podAllocated, EFF.podBusy, EFF.podSmActive, EFF.podIdle, EFF.podBusyRatio]) declareRecorded(n, POD);
for (const n of [EFF.rankPeak, EFF.rankMfu]) declareRecorded(n, [...RANK, 'dtype']);
declareRecorded(EFF.jobMfu, ['exported_job']);
for (const n of [EFF.rankStep, EFF.rankStepRatio]) declareRecorded(n, RANK);
declareRecorded(EFF.jobStepMedian, ['exported_job']);
declareRecorded(EFF.linkRtt, ['peer']);
declareRecorded(EFF.meshRtt, []);

/** The GPU-time counter of SM activity from profiling (GPM); the pod rule exists once the catalog has it. */
export const SM_ACTIVE = 'ds_gpu_sm_active_seconds_total';

/** Fixed like the fleet rules' window: the recorded names say 5m. */
const W = '5m';

/** A PromQL regex matching exactly these GPU names, and their simulated twins. */
function nameRegex(names: readonly string[]): string {
  const esc = (n: string) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return `(${names.map(esc).join('|')})( \\(simulated\\))?`.replace(/\\/g, '\\\\');
}

/** Labels that `--kubelet.enrich-labels` copies onto GPU series: collapsed before any join. */
const POD_COPIES = 'namespace, pod, container';

/** The recording rules of cost per token, GPU waste, MFU, stragglers and the peer mesh. */
export function efficiencyRecordingRules(cfg: RulesConfig): Rec[] {
  const s: Scope = { always: cfg.selector, byLabel: {} };
  const m = (metric: string, extra: string[] = []) => selector(metric, s, extra);
  const by = (...l: string[]) => [...T, ...l].join(', ');
  const gpuRate = (metric: string) => `max without (${POD_COPIES}) (rate(${m(metric)}[${W}]))`;
  // One row per (engine, model, GPU): several targets of one engine on the same GPU count it once.
  const engineGpu = `max by (${by('engine', 'model', 'uuid')}) (${m('ds_engine_gpu_info')})`;
  const podGpu = `max by (${by('namespace', 'pod', 'uuid')}) (${m('ds_gpu_allocation_info')})`;
  const rankStep = `sum by (${by(...RANK)}) (rate(${m('ds_training_step_seconds_sum')}[${W}]))`
    + ` / (sum by (${by(...RANK)}) (rate(${m('ds_training_step_seconds_count')}[${W}])) > 0)`;
  const rankFlops = `sum by (${by(...RANK, 'dtype')}) (rate(${m('ds_training_model_flops_total')}[${W}]))`;
  const rules: Rec[] = [
    // Peak dense FLOP/s by GPU model and precision, from the datasheet table; MIG devices and unknown models have none.
    {
      record: EFF.peak,
      expr: (['bf16', 'fp8'] as const).flatMap((dtype) => GPU_PEAKS.filter((p) => p[dtype] !== undefined).map((p) =>
        `label_replace(max by (${by('gpu', 'uuid')}) (${m('ds_gpu_info', ['mig_mode!="Enabled"', `name=~"${nameRegex(p.names)}"`])}) * ${p[dtype]!.toExponential()}, "dtype", "${dtype}", "", "")`)).join(' or '),
    },
    // Cost per token: the GPUs each engine runs on (ds_engine_gpu_info), their energy and busy time, and the engine's tokens.
    { record: EFF.engineGpus, expr: `count by (${by(...EM)}) (${engineGpu})` },
    { record: EFF.engineEnergy, expr: `sum by (${by(...EM)}) (${gpuRate('ds_gpu_energy_joules_total')} * on (${by('uuid')}) group_right () ${engineGpu})` },
    { record: EFF.engineBusy, expr: `sum by (${by(...EM)}) (${gpuRate('ds_gpu_busy_seconds_total')} * on (${by('uuid')}) group_right () ${engineGpu})` },
    { record: EFF.engineTokens, expr: `sum by (${by(...EM, 'phase')}) (rate(${m('ds_serving_tokens_total')}[${W}]))` },
    // No tokens in the window: no ratio (never a division by zero passed off as a cost).
    { record: EFF.joulesPerToken, expr: `${m(EFF.engineEnergy)} / on (${by(...EM)}) group_right () (${m(EFF.engineTokens)} > 0)` },
    { record: EFF.gpuSecondsPer1k, expr: `1000 * ${m(EFF.engineGpus)} / on (${by(...EM)}) group_right () (${m(EFF.engineTokens)} > 0)` },
    { record: EFF.busySecondsPer1k, expr: `1000 * ${m(EFF.engineBusy)} / on (${by(...EM)}) group_right () (${m(EFF.engineTokens)} > 0)` },
    // GPU time per pod: held (allocated), busy, idle. A GPU shared by several pods counts fully for each.
    { record: EFF.podAllocated, expr: `count by (${by(...POD)}) (${podGpu})` },
    { record: EFF.podBusy, expr: `sum by (${by(...POD)}) (${podGpu} * on (${by('uuid')}) group_left () ${gpuRate('ds_gpu_busy_seconds_total')})` },
    ...(findMetric(SM_ACTIVE) ? [{
      record: EFF.podSmActive,
      expr: `sum by (${by(...POD)}) (${podGpu} * on (${by('uuid')}) group_left () sum by (${by('uuid')}) (${gpuRate(SM_ACTIVE)}))`,
    }] : []),
    { record: EFF.podIdle, expr: `clamp_min(${m(EFF.podAllocated)} - ${m(EFF.podBusy)}, 0)` },
    { record: EFF.podBusyRatio, expr: `${m(EFF.podBusy)} / ${m(EFF.podAllocated)}` },
    // Model FLOPs utilization: the rank's model FLOPs over the peak of the GPUs it reported.
    {
      record: EFF.rankPeak,
      expr: (['bf16', 'fp8'] as const).map((dtype) =>
        `label_replace(sum by (${by(...RANK)}) (max by (${by(...RANK, 'uuid')}) (${m('ds_training_device_info')}) * on (${by('uuid')}) group_left () ${m(EFF.peak, [`dtype="${dtype}"`])}), "dtype", "${dtype}", "", "")`).join(' or '),
    },
    // Above 1 the declared FLOPs per sample cannot be right: no figure rather than a false one.
    { record: EFF.rankMfu, expr: `sum by (${by(...RANK, 'dtype')}) (rate(${m('ds_training_model_flops_total')}[${W}])) / on (${by(...RANK, 'dtype')}) (${m(EFF.rankPeak)} > 0) <= 1` },
    {
      record: EFF.jobMfu,
      // Inlined rather than read back from the rank rule: one recording step less for stores that read their own writes late.
      expr: `sum by (${JOB}) (${rankFlops} and on (${by(...RANK, 'dtype')}) (${rankFlops} / on (${by(...RANK, 'dtype')}) (${m(EFF.rankPeak)} > 0) <= 1))`
        + ` / sum by (${JOB}) (${m(EFF.rankPeak)} and on (${by(...RANK, 'dtype')}) (${rankFlops} / on (${by(...RANK, 'dtype')}) (${m(EFF.rankPeak)} > 0) <= 1))`,
    },
    // Stragglers: each rank's mean step time against the median rank of its job, across every host of the job.
    { record: EFF.rankStep, expr: rankStep },
    { record: EFF.jobStepMedian, expr: `quantile by (${JOB}) (0.5, ${m(EFF.rankStep)})` },
    {
      record: EFF.rankStepRatio,
      expr: `${m(EFF.rankStep)} / on (${JOB}) group_left () ${m(EFF.jobStepMedian)}`
        + ` and on (${JOB}) count by (${JOB}) (${m(EFF.rankStep)}) >= ${cfg.stragglerMinRanks}`,
    },
    // The peer mesh: each link's median RTT and the median link of the mesh.
    { record: EFF.linkRtt, expr: `histogram_quantile(0.5, sum by (${by('peer', 'le')}) (rate(${m('ds_comm_peer_latency_seconds_bucket')}[${W}])))` },
    { record: EFF.meshRtt, expr: `quantile by (${MESH}) (0.5, ${m(EFF.linkRtt)})` },
  ];
  return rules;
}

/** The idle-allocation alert, reading the per-pod recorded busy ratio. */
export function allocatedIdleAlert(cfg: RulesConfig): AlertRule {
  const s: Scope = { always: cfg.selector, byLabel: {} };
  return {
    alert: 'DsGpuAllocatedIdle', for: cfg.idleFor, severity: 'warning',
    expr: `avg_over_time(${selector(EFF.podBusyRatio, s)}[${cfg.idleWindow}]) < ${cfg.idleUtilization}`,
    summary: 'A pod holds GPUs and leaves them idle.',
    description: '{{ $labels.namespace }}/{{ $labels.pod }} on {{ $labels.instance }} holds '
      + '{{ with printf `' + selector(EFF.podAllocated, s, ['instance=%q', 'namespace=%q', 'pod=%q']).replace(/%(?!q)/g, '%%') + '` $labels.instance $labels.namespace $labels.pod | query }}{{ . | first | value | printf "%.0f" }}{{ end }}'
      + ` GPU(s) and kept them busy only {{ $value | humanizePercentage }} of the time over ${cfg.idleWindow}.`,
  };
}

/** Alerts on stragglers, hung jobs and outlying peer links. */
export function efficiencyAlertGroups(cfg: RulesConfig): AlertGroup[] {
  const s: Scope = { always: cfg.selector, byLabel: {} };
  const m = (metric: string, extra: string[] = []) => selector(metric, s, extra);
  const w = cfg.trainingHungWindow;
  const job = JOB;
  const links = (expr: string) => `count by (${MESH}) (${expr}) >= ${cfg.peerOutlierMinLinks}`;
  return [
    {
      name: 'ds-exporter-training',
      rules: [
        {
          alert: 'DsTrainingStraggler', for: cfg.stragglerFor, severity: 'warning',
          expr: `${m(EFF.rankStepRatio)} > ${cfg.stragglerFactor}`,
          summary: 'A training rank is slower than the rest of its job.',
          description: 'Rank {{ $labels.rank }} of job {{ $labels.exported_job }} on {{ $labels.instance }} takes {{ $value | printf "%.2f" }}x the median step time of the job'
            + ` (threshold ${cfg.stragglerFactor}x); every synchronous step of the job waits for it.`,
        },
        {
          // The reporter pushes (its series exist), but neither steps nor collectives move: the NCCL-hang symptom.
          alert: 'DsTrainingHung', for: cfg.trainingHungFor, severity: 'critical',
          expr: `sum by (${job}) (increase(${m('ds_training_steps_total')}[${w}])) == 0`
            + ` unless on (${job}) sum by (${job}) (increase(${m('ds_comm_collective_latency_seconds_count')}[${w}])) > 0`,
          summary: 'A training job reports but makes no progress.',
          description: `Job {{ $labels.exported_job }} has reporters alive but finished no step and no collective for ${w}; its ranks are probably stuck in a collective (NCCL hang) or a dead peer.`,
        },
      ],
    },
    {
      name: 'ds-exporter-mesh',
      rules: [
        {
          alert: 'DsCommPeerRttOutlier', for: cfg.peerOutlierFor, severity: 'warning',
          expr: `${m(EFF.linkRtt)} > on (${MESH}) group_left () (${cfg.peerRttOutlierFactor} * ${m(EFF.meshRtt)})`
            + ` and ${m(EFF.linkRtt)} > ${cfg.peerRttOutlierFloorSeconds}`
            + ` and on (${MESH}) ${links(m(EFF.linkRtt))}`,
          summary: 'One peer link is much slower than the rest of the mesh.',
          description: 'Median RTT from {{ $labels.instance }} to {{ $labels.peer }} is {{ $value | humanizeDuration }},'
            + ` over ${cfg.peerRttOutlierFactor}x the median link of the mesh; a cable, NIC, switch port or congested path on that link.`,
        },
        {
          alert: 'DsCommPeerLossOutlier', for: cfg.peerOutlierFor, severity: 'warning',
          expr: `${m('ds_comm_peer_loss_ratio')} > on (${MESH}) group_left () (quantile by (${MESH}) (0.5, ${m('ds_comm_peer_loss_ratio')}) + ${cfg.peerLossOutlierMargin})`
            + ` and on (${MESH}) ${links(m('ds_comm_peer_loss_ratio'))}`,
          summary: 'One peer link loses more probes than the rest of the mesh.',
          description: '{{ $value | humanizePercentage }} of probes from {{ $labels.instance }} to {{ $labels.peer }} are lost,'
            + ` more than ${cfg.peerLossOutlierMargin * 100} percentage points over the median link of the mesh.`,
        },
      ],
    },
  ];
}
