import type { CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import type { FlagValues } from '../../core/flags.js';
import type { Batch, Labels } from '../../core/store.js';
import type { Ports } from '../../ports/index.js';
import { SIM_FLOPS_PER_SAMPLE, type SimHost } from '../../sim/host.js';
import type { RealSources, SimHostShape } from '../../sim/plan.js';
import { hash01 } from '../../sim/random.js';
import { parseSimFaults, SIM_FAULTS } from '../../sim/faults.js';

/** What the simulator leaves to real collectors running beside it (see src/sim/plan.ts). */
export type SimHostOptions = Partial<RealSources>;

/** `digits` hex digits that depend only on the seed and the text. */
function simHex(seed: number, text: string, digits: number): string {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  let out = '';
  for (let k = 0; out.length < digits; k++) out += Math.floor(hash01(seed, h, k) * 0x10000).toString(16).padStart(4, '0');
  return out.slice(0, digits);
}

/** A pod UID and container ID as the cgroup of the simulated serving process would show them (made once per seed and pod). */
function simCgroupIds(seed: number, pod: { namespace: string; pod: string; container: string }): { pod_uid: string; container_id: string } {
  const key = `${seed}/${pod.namespace}/${pod.pod}/${pod.container}`;
  let ids = CGROUP_IDS.get(key);
  if (!ids) {
    const u = simHex(seed, `${pod.namespace}/${pod.pod}`, 32);
    ids = { pod_uid: `${u.slice(0, 8)}-${u.slice(8, 12)}-4${u.slice(13, 16)}-8${u.slice(17, 20)}-${u.slice(20)}`, container_id: simHex(seed, `${pod.namespace}/${pod.pod}/${pod.container}`, 64) };
    if (CGROUP_IDS.size >= 1024) CGROUP_IDS.clear();
    CGROUP_IDS.set(key, ids);
  }
  return ids;
}
const CGROUP_IDS = new Map<string, { pod_uid: string; container_id: string }>();

/**
 * The label objects of a simulated host's series, made on its first sample and reused by every
 * later one (the store recognises an unchanged series by its label object). Each list is indexed
 * by a position that names one series for the host's life (a GPU, a rank, an operation, ...).
 */
interface SimLabels {
  readonly engine: Labels[];
  readonly gpu: Labels[][];
  readonly rank: Labels[][];
  readonly op: Labels[][];
  readonly peer: Labels[];
  readonly nccl: Labels[];
}
const LABELS = new WeakMap<SimHost, SimLabels>();
function labelsOf(host: SimHost): SimLabels {
  let l = LABELS.get(host);
  if (!l) LABELS.set(host, (l = { engine: [], gpu: [], rank: [], op: [], peer: [], nccl: [] }));
  return l;
}
/** The list at `i` of `lists`, made empty on first use. */
const row = (lists: Labels[][], i: number): Labels[] => (lists[i] ??= []);
const OPS = ['all_reduce', 'all_gather', 'reduce_scatter'] as const;

/** Everything but the GPUs of a simulated host: engine, allocator, training, peers, collectives, pods; less what `opts` leaves to real sources. */
export function writeSimHost(batch: Batch, host: SimHost, opts: SimHostOptions = {}): void {
  if (!opts.engine) writeSimEngine(batch, host);
  writeSimReporters(batch, host, opts);
  if (!opts.peers) writeSimPeers(batch, host);
  if (!opts.textfile) writeSimNccl(batch, host);
}

/** The simulated engine, as the engine collector would normalize a vLLM target; its target is sim://. */
function writeSimEngine(batch: Batch, host: SimHost): void {
  const engine = 'vllm';
  const model = host.model;
  const L = labelsOf(host).engine;
  // Label sets by position in L: 0 the target, 1 its scrape errors, 2 the model, 3–4 token phases, 5– request outcomes.
  const em = (L[2] ??= { engine, model });
  batch.gauge('ds_engine_up', (L[0] ??= { target: 'sim://vllm/metrics', engine }), 1);
  // The GPUs the engine runs on: every GPU but the idle notebook's.
  for (const g of host.gpus) if (g.pod?.container === 'vllm') batch.info('ds_engine_gpu_info', (row(labelsOf(host).gpu, g.index)[0] ??= { target: 'sim://vllm/metrics', engine, model, gpu: String(g.index), uuid: g.uuid, source: 'simulated' }));
  batch.counter('ds_engine_scrape_errors_total', (L[1] ??= { target: 'sim://vllm/metrics', reason: 'timeout' }), host.engineScrapeTimeouts);
  const prompt = (L[3] ??= { engine, model, phase: 'prompt' });
  const generation = (L[4] ??= { engine, model, phase: 'generation' });
  batch.counter('ds_serving_tokens_total', prompt, Math.floor(host.promptTokens));
  batch.counter('ds_serving_tokens_total', generation, Math.floor(host.generationTokens));
  batch.counter('ds_serving_prompt_cached_tokens_total', em, Math.floor(host.cachedTokens));
  batch.gauge('ds_serving_throughput_tokens_per_second', prompt, host.tokensPerSecond.prompt);
  batch.gauge('ds_serving_throughput_tokens_per_second', generation, host.tokensPerSecond.generation);
  batch.counter('ds_serving_requests_total', (L[5] ??= { engine, model, outcome: 'success' }), Math.floor(host.requests.success));
  batch.counter('ds_serving_requests_total', (L[6] ??= { engine, model, outcome: 'error' }), Math.floor(host.requests.error));
  batch.counter('ds_serving_requests_total', (L[7] ??= { engine, model, outcome: 'aborted' }), Math.floor(host.requests.aborted));
  batch.gauge('ds_serving_requests_running', em, host.running);
  batch.gauge('ds_serving_requests_waiting', em, host.waiting);
  batch.gauge('ds_serving_kv_cache_usage_ratio', em, host.kvCache);
  batch.counter('ds_serving_prefill_seconds_total', em, host.prefillSeconds);
  batch.counter('ds_serving_decode_seconds_total', em, host.decodeSeconds);
  batch.counter('ds_serving_preemptions_total', em, Math.floor(host.preemptions));
  batch.counter('ds_serving_rejected_requests_total', em, Math.floor(host.rejectedRequests));
  batch.counter('ds_serving_spec_decode_draft_tokens_total', em, Math.floor(host.specDraftTokens));
  batch.counter('ds_serving_spec_decode_accepted_tokens_total', em, Math.floor(host.specAcceptedTokens));
  const { ttft, itl, e2e, queue } = host.latency;
  batch.histogram('ds_serving_time_to_first_token_seconds', em, ttft.cumulative(), ttft.sum);
  batch.histogram('ds_serving_inter_token_latency_seconds', em, itl.cumulative(), itl.sum);
  batch.histogram('ds_serving_e2e_request_latency_seconds', em, e2e.cumulative(), e2e.sum);
  batch.histogram('ds_serving_queue_time_seconds', em, queue.cumulative(), queue.sum);
}

/** What the reporter in the serving and training processes would push, and the pods holding the GPUs. */
function writeSimReporters(batch: Batch, host: SimHost, opts: SimHostOptions): void {
  const L = labelsOf(host);
  for (const g of host.gpus) {
    // Per GPU, by position: 0 its engine (above), 1 its allocator, 2 its pod, 3 its process.
    const G = row(L.gpu, g.index);
    const l = (G[1] ??= { gpu: String(g.index), uuid: g.uuid, pid: String(g.pid), job: g.pod?.container === 'jupyter' ? 'notebook' : 'vllm-serve' });
    batch.gauge('ds_allocator_reserved_bytes', l, g.allocReserved);
    batch.gauge('ds_allocator_allocated_bytes', l, g.allocAllocated);
    batch.gauge('ds_allocator_inactive_split_bytes', l, g.allocInactiveSplit);
    batch.gauge('ds_allocator_largest_free_block_bytes', l, g.allocLargestFree);
    batch.gauge('ds_gpu_memory_fragmentation_ratio', l, g.allocReserved > 0 ? (g.allocReserved - g.allocAllocated) / g.allocReserved : 0);
    batch.counter('ds_allocator_alloc_retries_total', l, g.allocRetries);
    batch.counter('ds_allocator_ooms_total', l, g.allocOoms);
    if (g.pod && !opts.kubelet) batch.info('ds_gpu_allocation_info', (G[2] ??= { gpu: String(g.index), uuid: g.uuid, ...g.pod }));
    // The serving process of each GPU (the simulated GPU source lists it with its memory), in its pod.
    if (g.pod && !opts.processAttribution) batch.info('ds_gpu_process_info', (G[3] ??= { gpu: String(g.index), uuid: g.uuid, pid: String(g.pid), ...g.pod, ...simCgroupIds(host.opts.seed, g.pod) }));
  }
  const ranks = host.ranks;
  const stepped = new Set<number>();
  // Per rank, by position: 0 the rank, 1 its model FLOPs, 2 its GPU.
  const rankLabels = (rank: number) => (row(L.rank, rank)[0] ??= { job: host.job, rank: String(rank) });
  for (const o of host.takeStepObservations()) {
    batch.observe('ds_training_step_seconds', rankLabels(o.rank), o.seconds);
    stepped.add(o.rank);
  }
  // The MIG-mode notebook GPU (the last) is left out.
  const usable = host.gpus.length > 1 ? host.gpus.length - 1 : host.gpus.length;
  for (let rank = 0; rank < ranks; rank++) {
    const l = rankLabels(rank);
    const R = row(L.rank, rank);
    const samples = Math.floor(host.trainingSamples / ranks);
    batch.gauge('ds_training_throughput_samples_per_second', l, host.trainingSamplesPerSecond / ranks);
    batch.counter('ds_training_samples_total', l, samples);
    batch.counter('ds_training_steps_total', l, host.trainingSteps);
    batch.counter('ds_training_model_flops_total', (R[1] ??= { ...l, dtype: 'bf16' }), samples * SIM_FLOPS_PER_SAMPLE);
    if (!stepped.has(rank)) batch.keep('ds_training_step_seconds', l);
    // One GPU per rank while there are enough; the others report no GPU (no model FLOPs utilization).
    const g = rank < usable ? host.gpus[rank] : undefined;
    if (g) batch.info('ds_training_device_info', (R[2] ??= { ...l, gpu: String(g.index), uuid: g.uuid }));
  }
  const opLabels = (op: (typeof OPS)[number]) => (row(L.op, OPS.indexOf(op))[0] ??= { op, job: host.job });
  const collectives = host.collectiveObservations();
  for (const c of collectives) batch.observe('ds_comm_collective_latency_seconds', opLabels(c.op as (typeof OPS)[number]), c.seconds);
  // A hung job still reports: its collective histograms stay, unchanged.
  if (collectives.length === 0) for (const op of OPS) batch.keep('ds_comm_collective_latency_seconds', opLabels(op));
  for (const op of OPS) batch.counter('ds_comm_collective_bytes_total', opLabels(op), host.trainingSteps * 2 * 256 * 1024 ** 2);
}

/** The peer prober's view of simulated peers. */
function writeSimPeers(batch: Batch, host: SimHost): void {
  const P = labelsOf(host).peer;
  host.peers.forEach((p, i) => {
    const l = (P[i] ??= { peer: p.peer });
    for (const rtt of host.peerObservations(p, 2)) batch.observe('ds_comm_peer_latency_seconds', l, rtt);
    batch.gauge('ds_comm_peer_up', l, p.up ? 1 : 0);
    batch.gauge('ds_comm_peer_loss_ratio', l, host.peerLoss(i));
    batch.gauge('ds_comm_peer_last_rtt_seconds', l, p.lastRttSeconds);
  });
  batch.gauge('ds_comm_peer_targets', {}, host.peers.length);
}

/** NCCL Inspector and nccl-tests series as the textfile collector would map them. */
function writeSimNccl(batch: Batch, host: SimHost): void {
  const common = { node: 'sim-node-0', comm_name: 'DP Group 0', n_nodes: '1', nranks: String(Math.max(1, host.gpus.length)), slurm_job_id: 'unknown' };
  // Every list below has the same length at every sample, so the k-th label set is always the same series.
  const L = labelsOf(host).nccl;
  let k = 0;
  for (const g of host.gpus.slice(0, 2)) {
    for (const c of host.ncclInspector()) {
      const l = (L[k++] ??= { ...common, gpu: String(g.index), collective: c.collective, message_size: c.messageSize, algo_proto: c.algoProto });
      batch.gauge('ds_nccl_collective_exec_time_seconds', l, c.seconds);
      batch.gauge('ds_nccl_bus_bandwidth_bytes_per_second', l, c.busBytesPerSecond);
    }
    for (const p of host.ncclInspectorP2p()) {
      const l = (L[k++] ??= { ...common, gpu: String(g.index), p2p_operation: p.operation, message_size: p.messageSize });
      batch.gauge('ds_nccl_p2p_exec_time_seconds', l, p.seconds);
      batch.gauge('ds_nccl_p2p_bus_bandwidth_bytes_per_second', l, p.busBytesPerSecond);
    }
  }
  for (const g of host.gpus.slice(0, 2)) {
    const l = (L[k++] ??= { node: common.node, gpu: String(g.index), slurm_job_id: common.slurm_job_id });
    const ops = Math.floor(host.elapsedSeconds * 240);
    batch.counter('ds_nccl_collectives_total', l, ops);
    batch.counter('ds_nccl_collectives_dropped_total', l, Math.floor(ops / 5000));
    batch.counter('ds_nccl_p2p_operations_total', l, Math.floor(ops / 4));
    batch.counter('ds_nccl_p2p_operations_dropped_total', l, 0);
  }
  for (const r of host.ncclTests()) {
    const l = (L[k++] ??= { op: 'all_reduce', size_bytes: String(r.sizeBytes), in_place: String(r.inPlace) });
    batch.gauge('ds_nccl_test_latency_seconds', l, r.seconds);
    batch.gauge('ds_nccl_test_bus_bandwidth_bytes_per_second', l, r.busBytesPerSecond);
  }
  for (const file of ['nccl_inspector_metrics_sim.prom', 'nccl-tests.prom']) {
    const l = (L[k++] ??= { file });
    batch.gauge('ds_textfile_mtime_seconds', l, host.textfileMtimeSeconds);
    batch.gauge('ds_textfile_ignored_families', l, 0);
  }
  batch.gauge('ds_textfile_scrape_error', (L[k++] ??= {}), 0);
}

/** The sim collector's flags, read once. */
export interface SimConfig extends SimHostShape {
  /** `--simulate`: the whole host simulated; implies `--gpu.source=simulated` and this collector. */
  readonly simulate: boolean;
}

/** The simulated rest of the host; on with --simulate. */
export const simCollector: CollectorDefinition<SimConfig, CollectorDeps & Pick<Ports, 'simulation'>> = {
  name: 'sim',
  description: 'simulated engine, allocator, training job, peers and collectives (--simulate)',
  defaultEnabled: false,
  flags: [
    { name: 'simulate', type: 'bool', default: false, help: 'Simulate the whole host (GPUs, engine, allocator, peers) for demos and tests; implies --gpu.source=simulated.' },
    { name: 'simulate.gpus', type: 'int', default: '8', min: 0, max: 1024, help: 'Number of simulated GPUs.' },
    { name: 'simulate.peers', type: 'int', default: '4', min: 0, max: 5000, help: 'Number of simulated peers.' },
    { name: 'simulate.seed', type: 'int', default: '1', help: 'Seed of the simulation; the same seed gives the same values.' },
    { name: 'simulate.fault', type: 'list', help: `Inject a GPU fault into the simulated host: gpu<N>:<fault>[@<delay>], repeatable or comma-separated (e.g. gpu3:xid79,gpu1:reset@30s). Faults: ${Object.keys(SIM_FAULTS).join(', ')}.` },
    { name: 'simulate.ranks', type: 'int', default: '4', min: 1, max: 1024, help: 'Ranks of the simulated training job.' },
    { name: 'simulate.slow-rank', type: 'int', min: 0, max: 1023, help: 'Simulate a straggler: this rank computes each step --simulate.slow-factor times slower.' },
    { name: 'simulate.slow-factor', type: 'float', default: '1.5', min: 1, max: 100, help: 'How much slower the --simulate.slow-rank rank is.' },
    { name: 'simulate.hang-after', type: 'duration', min: 0, help: 'Simulate a hung training job: no step and no collective after this much time, while its reporters keep pushing.' },
    { name: 'simulate.idle-gpus', type: 'int', min: 0, max: 1024, help: 'Simulate idle allocations: the last N GPUs are held by a notebook pod that leaves them idle (default 1 with 2 GPUs or more).' },
    { name: 'simulate.slow-peer', type: 'int', min: 0, max: 4999, help: 'Simulate a slow link: probes to this peer (by index) take 20 times longer.' },
    { name: 'simulate.lossy-peer', type: 'int', min: 0, max: 4999, help: 'Simulate a lossy link: this peer (by index) loses 20% of the probes.' },
  ],
  configure(flags: FlagValues): SimConfig {
    const gpus = flags.requireNumber('simulate.gpus');
    const hangMs = flags.number('simulate.hang-after');
    return {
      simulate: flags.bool('simulate'), gpus, peers: flags.requireNumber('simulate.peers'), seed: flags.requireNumber('simulate.seed'), faults: parseSimFaults(flags.list('simulate.fault'), gpus),
      scenario: {
        ranks: flags.requireNumber('simulate.ranks'),
        slowRank: flags.number('simulate.slow-rank'),
        slowFactor: flags.requireNumber('simulate.slow-factor'),
        hangAfterSeconds: hangMs === undefined ? undefined : hangMs / 1000,
        idleGpus: flags.number('simulate.idle-gpus'),
        slowPeer: flags.number('simulate.slow-peer'),
        lossyPeer: flags.number('simulate.lossy-peer'),
      },
    };
  },
  create(deps) {
    const host = deps.simulation.host();
    const opts = deps.simulation.plan.real;
    const left = (['engine', 'peers', 'textfile', 'kubelet'] as const).filter((k) => opts[k]);
    if (left.length) deps.logger.info('simulating the host except what is configured for real', { real: left.join(',') });
    return {
      async sample(batch) {
        host.advanceTo(deps.now());
        writeSimHost(batch, host, opts);
      },
    };
  },
};
