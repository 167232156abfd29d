import { ITL_BUCKETS, REQUEST_BUCKETS, TTFT_BUCKETS } from '../catalog/serving.js';
import { hash01, mulberry32, smoothNoise } from './random.js';
import type { RecoveryAction } from '../collectors/gpu/health.js';
import type { SimFault } from './faults.js';

/** A simulated latency histogram: observation mass per catalog bucket (+Inf last), cumulative form on read. */
export class SimHistogram {
  private readonly mass: Float64Array;
  /** Share of the observations per bucket (+Inf last) for `shareMedian`/`shareSigma`: the spread is worked out again only when they change. */
  private readonly share: Float64Array;
  private shareMedian = NaN;
  private shareSigma = NaN;
  sum = 0;
  constructor(readonly bounds: readonly number[]) {
    this.mass = new Float64Array(bounds.length + 1);
    this.share = new Float64Array(bounds.length + 1);
  }

  /** Adds `count` observations log-normally spread around `median` (sigma in natural-log units). */
  add(count: number, median: number, sigma: number): void {
    if (!(count > 0)) return;
    const share = this.share;
    if (median !== this.shareMedian || sigma !== this.shareSigma) {
      let prev = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        const cdf = 0.5 * (1 + erf(Math.log(this.bounds[i] / median) / (sigma * Math.SQRT2)));
        share[i] = cdf - prev;
        prev = cdf;
      }
      share[this.bounds.length] = 1 - prev;
      this.shareMedian = median;
      this.shareSigma = sigma;
    }
    for (let i = 0; i < share.length; i++) this.mass[i] += count * share[i];
    this.sum += count * median * Math.exp((sigma * sigma) / 2);
  }

  /** Whole observations at or below each bound, +Inf last (non-decreasing). */
  cumulative(): number[] {
    const out = new Array<number>(this.mass.length);
    let c = 0;
    for (let i = 0; i < this.mass.length; i++) {
      c += this.mass[i];
      out[i] = Math.floor(c + 1e-9);
    }
    return out;
  }
}

/** Abramowitz-Stegun 7.1.26: |error| < 1.5e-7, plenty for a simulation. */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

/** One simulated GPU's state at the current simulated time. */
export interface SimGpu {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  readonly pciBusId: string;
  readonly memoryTotalBytes: number;
  readonly powerLimitWatts: number;
  utilization: number;
  memoryControllerUtilization: number;
  memoryUsedBytes: number;
  powerWatts: number;
  temperatureCelsius: number;
  memoryTemperatureCelsius: number;
  smClockHz: number;
  memoryClockHz: number;
  throttle: Record<string, boolean>;
  throttleSeconds: Record<string, number>;
  busySeconds: number;
  memoryBusySeconds: number;
  energyJoules: number;
  nvlinkTxBytes: number;
  nvlinkRxBytes: number;
  pcieTxBytesPerSecond: number;
  pcieRxBytesPerSecond: number;
  eccCorrected: number;
  eccUncorrected: number;
  xid: Map<number, number>;
  /** Health signals; changed only by injected faults (--simulate.fault). */
  readonly health: SimGpuHealth;
  /** Profiling (GPM-like) integrals since the start, by SIM_PROFILE_KEYS index: seconds active, bytes for PCIe. */
  readonly profiling: Float64Array;
  /** Allocator of the serving process on this GPU. */
  allocReserved: number;
  allocAllocated: number;
  allocInactiveSplit: number;
  allocLargestFree: number;
  allocRetries: number;
  allocOoms: number;
  readonly pid: number;
  readonly pod: { namespace: string; pod: string; container: string } | undefined;
}

/** NVLink links of a simulated H100. */
export const SIM_NVLINK_LINKS = 18;
/** Temperature at which a simulated H100 starts slowing down (its thermal margin is measured to it). */
export const SIM_SLOWDOWN_CELSIUS = 87;

/** Health state of a simulated GPU. */
export interface SimGpuHealth {
  /** Fell off the bus: the GPU answers nothing. */
  lost: boolean;
  recoveryAction: RecoveryAction;
  rowRemapPending: boolean;
  rowRemapFailed: boolean;
  remappedRowsCorrectable: number;
  remappedRowsUncorrectable: number;
  /** Per link: CRC, replay and recovery error counters. */
  readonly nvlinkErrors: { crc: number[]; replay: number[]; recovery: number[] };
  pcieReplays: number;
  retiredPagesSingleBit: number;
  retiredPagesDoubleBit: number;
  retiredPagesPending: boolean;
  /** Running past its slowdown temperature. */
  hot: boolean;
  nvlinkRising: boolean;
  pcieRising: boolean;
}

export interface SimPeer {
  readonly peer: string;
  readonly baseRttSeconds: number;
  up: boolean;
  lastRttSeconds: number;
  sent: number;
  lost: number;
}

export interface SimHostOptions {
  readonly gpus: number;
  readonly seed: number;
  readonly peers: number;
  /** Simulated time origin, ms. */
  readonly startMs: number;
  /** Faults to inject (--simulate.fault). */
  readonly faults?: readonly SimFault[];
  /** Situations to simulate (`--simulate.*` flags); see SimScenario. */
  readonly scenario?: SimScenario;
}

/** Situations the simulator can produce, for demos and for the tests of the alerts that catch them. */
export interface SimScenario {
  /** Ranks of the simulated training job (default 4). */
  readonly ranks?: number;
  /** This rank computes each step `slowFactor` times slower than the others. */
  readonly slowRank?: number;
  readonly slowFactor?: number;
  /** The training job stops making progress (no step, no collective) after this many simulated seconds; its reporters keep pushing. */
  readonly hangAfterSeconds?: number;
  /** The last N GPUs are allocated to a notebook pod that leaves them idle (default 1 when there are 2 GPUs or more). */
  readonly idleGpus?: number;
  /** Probes to this peer take 20 times longer. */
  readonly slowPeer?: number;
  /** This peer loses 20 % of the probes. */
  readonly lossyPeer?: number;
}

/** Model FLOPs of one simulated training sample: 6 x 1.3e9 parameters x 410 tokens. */
export const SIM_FLOPS_PER_SAMPLE = 3.2e12;

export const THROTTLE_REASONS = ['gpu_idle', 'sw_power_cap', 'hw_slowdown', 'sw_thermal_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown', 'sync_boost', 'applications_clocks_setting'] as const;

const STEP_S = 0.1;
/** The profiling integrals of a simulated GPU (keys of PROFILING_SERIES), in exposition order. */
export const SIM_PROFILE_KEYS = ['graphics', 'sm', 'sm_occupancy', 'tensor_any', 'tensor_hmma', 'tensor_imma', 'tensor_dfma', 'tensor_dmma', 'pipe_fp16', 'pipe_fp32', 'pipe_fp64', 'pipe_integer', 'dram', 'pcie_tx', 'pcie_rx', 'nvdec', 'nvjpg', 'nvofa'] as const;
const PROFILE_RATES = new Float64Array(SIM_PROFILE_KEYS.length);
const GIB = 1024 ** 3;
const H100_MEM = 81559 * 1024 * 1024;

/**
 * A whole serving host, simulated: GPUs under a serving engine whose load drifts,
 * a training job, allocator state, peers and collectives. Time advances in fixed
 * 100 ms steps from the start, so the same seed and the same elapsed time give the
 * same values; every counter is the integral of its gauge.
 */
export class SimHost {
  readonly gpus: SimGpu[] = [];
  readonly peers: SimPeer[] = [];
  private steps = 0;
  /** The served model; its name says it is simulated, so no serving series passes for a real one. */
  readonly model = 'deepseek-ai/DeepSeek-V3 (simulated)';
  readonly job = 'sim-train';
  /** Engine counters. */
  promptTokens = 0;
  generationTokens = 0;
  requests: Record<'success' | 'error' | 'aborted', number> = { success: 0, error: 0, aborted: 0 };
  running = 0;
  waiting = 0;
  kvCache = 0;
  /** Prompt tokens served from the prefix cache (part of promptTokens). */
  cachedTokens = 0;
  prefillSeconds = 0;
  decodeSeconds = 0;
  preemptions = 0;
  rejectedRequests = 0;
  specDraftTokens = 0;
  specAcceptedTokens = 0;
  readonly latency = { ttft: new SimHistogram(TTFT_BUCKETS), itl: new SimHistogram(ITL_BUCKETS), e2e: new SimHistogram(REQUEST_BUCKETS), queue: new SimHistogram(REQUEST_BUCKETS) };
  tokensPerSecond = { prompt: 0, generation: 0 };
  trainingSamples = 0;
  trainingSteps = 0;
  /** Engine scrapes that timed out: a rare hiccup, about one every 15 simulated minutes. */
  get engineScrapeTimeouts(): number {
    return Math.floor((this.steps * STEP_S) / 900);
  }
  trainingSamplesPerSecond = 0;
  /** Steps already handed out as step-time observations. */
  private stepsObserved = 0;
  private readonly rand: () => number;
  /** Injected faults not yet started, earliest first. */
  private readonly pendingFaults: SimFault[];

  constructor(readonly opts: SimHostOptions) {
    this.pendingFaults = [...(opts.faults ?? [])].sort((a, b) => a.atSeconds - b.atSeconds);
    this.rand = mulberry32(opts.seed);
    const idleGpus = opts.scenario?.idleGpus ?? (opts.gpus > 1 ? 1 : 0);
    for (let i = 0; i < opts.gpus; i++) {
      const idle = i >= opts.gpus - idleGpus;
      const hex = Array.from({ length: 4 }, (_, k) => Math.floor(hash01(opts.seed, i, k) * 0x10000).toString(16).padStart(4, '0'));
      this.gpus.push({
        index: i,
        uuid: `GPU-${hex[0]}${hex[1]}-${hex[2]}-4${hex[3].slice(1)}-8000-${String(i).padStart(12, '0')}`,
        name: 'NVIDIA H100 80GB HBM3 (simulated)',
        pciBusId: `00000000:${(0x18 + i * 0x10).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
        memoryTotalBytes: H100_MEM,
        powerLimitWatts: 700,
        utilization: 0, memoryControllerUtilization: 0, memoryUsedBytes: 0, powerWatts: 70,
        temperatureCelsius: 32, memoryTemperatureCelsius: 30, smClockHz: 345e6, memoryClockHz: 2619e6,
        throttle: Object.fromEntries(THROTTLE_REASONS.map((r) => [r, false])),
        throttleSeconds: Object.fromEntries(THROTTLE_REASONS.map((r) => [r, 0])),
        busySeconds: 0, memoryBusySeconds: 0, energyJoules: 0, nvlinkTxBytes: 0, nvlinkRxBytes: 0,
        pcieTxBytesPerSecond: 0, pcieRxBytesPerSecond: 0, eccCorrected: 0, eccUncorrected: 0, xid: new Map(i === 0 ? [[31, 0]] : []),
        health: {
          lost: false, recoveryAction: 'none', rowRemapPending: false, rowRemapFailed: false, remappedRowsCorrectable: 0, remappedRowsUncorrectable: 0,
          nvlinkErrors: { crc: new Array(SIM_NVLINK_LINKS).fill(0), replay: new Array(SIM_NVLINK_LINKS).fill(0), recovery: new Array(SIM_NVLINK_LINKS).fill(0) },
          pcieReplays: 0, retiredPagesSingleBit: 0, retiredPagesDoubleBit: 0, retiredPagesPending: false, hot: false, nvlinkRising: false, pcieRising: false,
        },
        profiling: new Float64Array(SIM_PROFILE_KEYS.length),
        allocReserved: 0, allocAllocated: 0, allocInactiveSplit: 0, allocLargestFree: 0, allocRetries: 0, allocOoms: 0,
        pid: 4100 + i,
        // The last GPUs of a node are allocated to a notebook that forgot them: idle but allocated.
        pod: { namespace: 'inference', pod: idle ? 'notebook-7f9c' : 'vllm-deepseek-0', container: idle ? 'jupyter' : 'vllm' },
      });
    }
    for (let p = 0; p < opts.peers; p++) {
      this.peers.push({ peer: `10.0.${Math.floor(p / 250)}.${(p % 250) + 2}:9842`, baseRttSeconds: 80e-6 + hash01(opts.seed, 99, p) * 250e-6, up: true, lastRttSeconds: 0, sent: 0, lost: 0 });
    }
  }

  /** Simulated seconds since the start. */
  get elapsedSeconds(): number {
    return this.steps * STEP_S;
  }

  /** Advances the simulation to wall time `nowMs` (never backwards). */
  advanceTo(nowMs: number): void {
    const target = Math.floor((nowMs - this.opts.startMs) / (STEP_S * 1000));
    // Bound catch-up work after a long pause (e.g. a suspended process).
    if (target - this.steps > 6000) this.steps = target - 6000;
    while (this.steps < target) {
      this.steps++;
      this.step(this.steps * STEP_S);
    }
  }

  /** Ranks of the training job. */
  get ranks(): number {
    return Math.max(1, this.opts.scenario?.ranks ?? 4);
  }

  /** True once the simulated training job hangs (--simulate.hang-after). */
  get trainingHung(): boolean {
    const after = this.opts.scenario?.hangAfterSeconds;
    return after !== undefined && this.elapsedSeconds >= after;
  }

  /**
   * Step times of the steps finished since the last call, per rank: every rank finishes the
   * same steps (synchronous training), each with its own compute time; the slow rank's is
   * `slowFactor` times longer.
   */
  takeStepObservations(): Array<{ rank: number; seconds: number }> {
    const n = this.trainingSteps - this.stepsObserved;
    this.stepsObserved = this.trainingSteps;
    const out: Array<{ rank: number; seconds: number }> = [];
    const base = this.trainingSamplesPerSecond > 0 ? 1024 / this.trainingSamplesPerSecond : 2;
    const sc = this.opts.scenario;
    for (let i = 0; i < Math.min(n, 100); i++) {
      for (let rank = 0; rank < this.ranks; rank++) {
        const slow = rank === sc?.slowRank ? (sc.slowFactor ?? 1.5) : 1;
        out.push({ rank, seconds: base * 0.8 * slow * (0.95 + 0.1 * this.rand()) });
      }
    }
    return out;
  }

  private load(t: number): number {
    // Diurnal-ish wave (10 min period) with bursts.
    return 0.55 + 0.3 * Math.sin((2 * Math.PI * t) / 600) + 0.2 * smoothNoise(this.opts.seed, 1, t / 20);
  }

  /**
   * Profiling activity consistent with the busy ratio u: SMs active at most u (a decode-heavy
   * serving mix keeps 35–80 % of them busy while a kernel runs), tensor cores within SM activity,
   * HMMA (FP16/BF16/FP8) nearly all of it. Deterministic per seed; draws nothing from the shared
   * random stream, so the other simulated values do not change.
   */
  private profile(g: SimGpu, u: number, t: number, dt: number): void {
    const smFrac = 0.575 + 0.225 * smoothNoise(this.opts.seed, 700 + g.index, t / 30);
    const sm = u * smFrac;
    const tensor = sm * (0.65 + 0.1 * smoothNoise(this.opts.seed, 800 + g.index, t / 20));
    // Rates in SIM_PROFILE_KEYS order (an H100's media engines, last, are present and idle under
    // LLM serving); one scratch array, no object per GPU and step.
    const r = PROFILE_RATES;
    r[0] = u; r[1] = sm; r[2] = sm * 0.6;
    r[3] = tensor; r[4] = tensor * 0.96; r[5] = tensor * 0.04; r[6] = 0; r[7] = 0;
    r[8] = sm * 0.1; r[9] = sm * 0.25; r[10] = sm * 0.002; r[11] = sm * 0.15;
    r[12] = g.memoryControllerUtilization;
    r[13] = g.pcieTxBytesPerSecond; r[14] = g.pcieRxBytesPerSecond;
    r[15] = 0; r[16] = 0; r[17] = 0;
    const p = g.profiling;
    for (let i = 0; i < p.length; i++) p[i] += r[i] * dt;
  }

  private step(t: number): void {
    const seed = this.opts.seed;
    const dt = STEP_S;
    const load = Math.min(1, Math.max(0.05, this.load(t)));
    let utilSum = 0;
    let servingGpus = 0;
    for (const g of this.gpus) {
      const idle = g.pod?.container === 'jupyter';
      const u = idle ? 0 : Math.min(1, Math.max(0, load + 0.08 * smoothNoise(seed, 10 + g.index, t / 3)));
      g.utilization = u;
      g.memoryControllerUtilization = u * 0.62;
      const targetPower = 72 + (g.powerLimitWatts - 90) * u * (0.9 + 0.1 * smoothNoise(seed, 300 + g.index, t));
      g.powerWatts = targetPower;
      // Temperature lags power with a 30 s time constant.
      const targetTemp = 30 + targetPower * 0.085 + (g.index % 3);
      g.temperatureCelsius += (targetTemp - g.temperatureCelsius) * (dt / 30);
      g.memoryTemperatureCelsius += (targetTemp + 4 - g.memoryTemperatureCelsius) * (dt / 40);
      const powerCapped = targetPower > g.powerLimitWatts * 0.93;
      const hot = g.temperatureCelsius > 86;
      g.throttle.gpu_idle = u < 0.01;
      g.throttle.sw_power_cap = powerCapped;
      g.throttle.sw_thermal_slowdown = hot;
      for (const r of THROTTLE_REASONS) if (g.throttle[r]) g.throttleSeconds[r] += dt;
      g.smClockHz = u < 0.01 ? 345e6 : (powerCapped || hot ? 1590e6 : 1980e6);
      g.memoryClockHz = 2619e6;
      g.busySeconds += u * dt;
      g.memoryBusySeconds += g.memoryControllerUtilization * dt;
      g.energyJoules += g.powerWatts * dt;
      g.nvlinkTxBytes += u * 180e9 * dt;
      g.nvlinkRxBytes += u * 176e9 * dt;
      g.pcieTxBytesPerSecond = u * 2.1e9;
      g.pcieRxBytesPerSecond = u * 3.4e9;
      this.profile(g, u, t, dt);
      // Allocator: reserved grows with load, fragmentation drifts between 5 % and 35 %.
      const reserved = idle ? 1.2 * GIB : (62 + 10 * load) * GIB;
      const frag = idle ? 0.02 : 0.2 + 0.15 * smoothNoise(seed, 500 + g.index, t / 45);
      g.allocReserved = Math.round(reserved);
      g.allocAllocated = Math.round(reserved * (1 - frag));
      g.allocInactiveSplit = Math.round(reserved * frag * 0.6);
      g.allocLargestFree = Math.round(reserved * frag * 0.25);
      g.memoryUsedBytes = Math.min(g.memoryTotalBytes, g.allocReserved + 540 * 1024 * 1024);
      if (!idle && frag > 0.3 && this.rand() < 0.02) g.allocRetries++;
      if (this.rand() < 0.0002) g.eccCorrected++;
      if (!idle) {
        utilSum += u;
        servingGpus++;
      }
    }
    // Rare XID 31 (memory page fault in a user application) somewhere on the node.
    if (this.gpus.length > 0 && this.rand() < 0.0005) {
      const g = this.gpus[Math.floor(this.rand() * this.gpus.length)];
      g.xid.set(31, (g.xid.get(31) ?? 0) + 1);
    }
    const u = servingGpus ? utilSum / servingGpus : 0;
    this.tokensPerSecond = { prompt: 9000 * u * servingGpus / 8, generation: 2600 * u * servingGpus / 8 };
    this.promptTokens += this.tokensPerSecond.prompt * dt;
    this.generationTokens += this.tokensPerSecond.generation * dt;
    const rps = 6 * u * Math.max(1, servingGpus) / 8;
    this.requests.success += rps * dt * 0.985;
    this.requests.error += rps * dt * 0.01;
    this.requests.aborted += rps * dt * 0.005;
    this.running = Math.round(64 * u);
    this.waiting = Math.max(0, Math.round(40 * (load - 0.75)));
    this.kvCache = Math.min(0.99, 0.15 + 0.8 * u);
    // Latency grows when the engine runs hot; each request adds one TTFT, one e2e and one
    // queue observation, each generated token one inter-token observation.
    const q = 1 + 2 * Math.max(0, load - 0.7);
    const finished = rps * dt;
    const ttftMedian = 0.18 * q;
    const itlMedian = 0.021 * q;
    this.latency.ttft.add(finished, ttftMedian, 0.65);
    this.latency.itl.add(this.tokensPerSecond.generation * dt, itlMedian, 0.35);
    this.latency.e2e.add(finished, 6.5 * q, 0.6);
    this.latency.queue.add(finished, 0.02 + 0.4 * Math.max(0, load - 0.75), 0.8);
    this.cachedTokens += this.tokensPerSecond.prompt * dt * 0.35;
    this.prefillSeconds += finished * ttftMedian * 1.2;
    this.decodeSeconds += this.tokensPerSecond.generation * dt * itlMedian * 1.06;
    // The KV cache near full preempts requests; a long queue turns new ones away.
    if (this.kvCache > 0.95) this.preemptions += rps * dt * 0.05;
    if (this.waiting > 30) this.rejectedRequests += rps * dt * 0.02;
    this.specDraftTokens += this.tokensPerSecond.generation * dt * 0.6;
    this.specAcceptedTokens += this.tokensPerSecond.generation * dt * 0.6 * 0.72;
    this.trainingSamplesPerSecond = this.trainingHung ? 0 : 512 * (0.85 + 0.15 * smoothNoise(seed, 700, t / 10));
    this.trainingSamples += this.trainingSamplesPerSecond * dt;
    this.trainingSteps = Math.floor(this.trainingSamples / 1024);
    this.peers.forEach((p, i) => {
      const slow = i === this.opts.scenario?.slowPeer ? 20 : 1;
      p.lastRttSeconds = slow * p.baseRttSeconds * (1 + 0.3 * Math.abs(smoothNoise(seed, 800, t)));
    });
    this.applyFaults(t, dt);
  }

  /** Starts the injected faults that are due, then applies the lasting ones for this step. */
  private applyFaults(t: number, dt: number): void {
    while (this.pendingFaults.length && this.pendingFaults[0].atSeconds <= t) {
      const f = this.pendingFaults.shift()!;
      const g = this.gpus[f.gpu];
      if (!g) continue;
      const h = g.health;
      switch (f.kind) {
        case 'xid': g.xid.set(f.xid!, (g.xid.get(f.xid!) ?? 0) + 1); break;
        case 'lost': g.xid.set(79, (g.xid.get(79) ?? 0) + 1); h.lost = true; break;
        case 'reset': h.recoveryAction = 'gpu_reset'; break;
        case 'reboot': h.recoveryAction = 'node_reboot'; break;
        case 'drain_p2p': h.recoveryAction = 'drain_p2p'; break;
        case 'drain_and_reset': h.recoveryAction = 'drain_and_reset'; break;
        case 'recover_imex': h.recoveryAction = 'recover_imex_domain'; break;
        case 'row_remap_pending': h.rowRemapPending = true; h.remappedRowsUncorrectable++; break;
        case 'row_remap_failed': h.rowRemapFailed = true; break;
        case 'retired_pages_pending': h.retiredPagesPending = true; h.retiredPagesDoubleBit++; break;
        case 'nvlink_errors': h.nvlinkRising = true; break;
        case 'pcie_replays': h.pcieRising = true; break;
        case 'hot': h.hot = true; break;
      }
    }
    for (const g of this.gpus) {
      const h = g.health;
      // About 20 CRC and 2 replay errors a second on link 0: a marginal link.
      if (h.nvlinkRising && this.rand() < 20 * dt) h.nvlinkErrors.crc[0] += 1 + Math.floor(this.rand() * 2);
      if (h.nvlinkRising && this.rand() < 2 * dt) h.nvlinkErrors.replay[0]++;
      if (h.pcieRising && this.rand() < 5 * dt) h.pcieReplays++;
      if (h.hot) {
        g.temperatureCelsius = Math.max(g.temperatureCelsius, SIM_SLOWDOWN_CELSIUS + 3);
        g.throttle.hw_thermal_slowdown = true;
        g.throttleSeconds.hw_thermal_slowdown += dt;
      }
    }
  }

  /** `n` RTT observations for a peer this tick (jittered around its current RTT). */
  peerObservations(p: SimPeer, n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(p.lastRttSeconds * (0.85 + 0.3 * this.rand()));
    return out;
  }

  /** Unix seconds of the simulated textfiles: NCCL Inspector rewrites them every 30 s. */
  get textfileMtimeSeconds(): number {
    return (this.opts.startMs / 1000) + Math.floor(this.elapsedSeconds / 30) * 30;
  }

  /** NCCL Inspector collective buckets: mean time and bus bandwidth by message-size range. */
  ncclInspector(): Array<{ collective: string; messageSize: string; algoProto: string; seconds: number; busBytesPerSecond: number }> {
    const wobble = 1 + 0.05 * smoothNoise(this.opts.seed, 900, this.elapsedSeconds / 30);
    return [
      { collective: 'AllReduce', messageSize: '4-5GB', algoProto: 'Ring_Simple', bytes: 4.5e9, bus: 360e9 },
      { collective: 'AllReduce', messageSize: '1-2MB', algoProto: 'Ring_LL128', bytes: 1.5e6, bus: 95e9 },
      { collective: 'AllGather', messageSize: '64-65MB', algoProto: 'Ring_Simple', bytes: 64.5e6, bus: 310e9 },
    ].map((c) => {
      const n = Math.max(2, this.gpus.length);
      const busBytesPerSecond = c.bus / wobble;
      // busbw = algbw * 2(n-1)/n for all-reduce, (n-1)/n for all-gather.
      const factor = c.collective === 'AllReduce' ? (2 * (n - 1)) / n : (n - 1) / n;
      return { collective: c.collective, messageSize: c.messageSize, algoProto: c.algoProto, seconds: (c.bytes * factor) / busBytesPerSecond, busBytesPerSecond };
    });
  }

  /** NCCL Inspector point-to-point buckets. */
  ncclInspectorP2p(): Array<{ operation: string; messageSize: string; seconds: number; busBytesPerSecond: number }> {
    const wobble = 1 + 0.05 * smoothNoise(this.opts.seed, 901, this.elapsedSeconds / 30);
    return ['Send', 'Recv'].map((operation) => ({ operation, messageSize: '512-513MB', seconds: 512.5e6 / (440e9 / wobble), busBytesPerSecond: 440e9 / wobble }));
  }

  /** An imported nccl-tests all_reduce_perf run (8 B .. 128 MiB). */
  ncclTests(): Array<{ sizeBytes: number; inPlace: boolean; seconds: number; busBytesPerSecond: number }> {
    const n = Math.max(2, this.gpus.length);
    const out: Array<{ sizeBytes: number; inPlace: boolean; seconds: number; busBytesPerSecond: number }> = [];
    for (let size = 8; size <= 128 * 1024 * 1024; size *= 16) {
      for (const inPlace of [false, true]) {
        // Latency floor plus bandwidth term: ~20 µs + bytes / 180 GB/s of algorithm bandwidth.
        const seconds = 20e-6 + size / 180e9 + (inPlace ? -0.2e-6 : 0);
        out.push({ sizeBytes: size, inPlace, seconds, busBytesPerSecond: ((size / seconds) * 2 * (n - 1)) / n });
      }
    }
    return out;
  }

  /** Fraction of probes to a peer that are lost. */
  peerLoss(index: number): number {
    return index === this.opts.scenario?.lossyPeer ? 0.2 : 0;
  }

  /** Collective durations for this tick, by op; none while the job hangs. */
  collectiveObservations(): Array<{ op: string; seconds: number }> {
    const out: Array<{ op: string; seconds: number }> = [];
    if (this.trainingHung) return out;
    for (const [op, base] of [['all_reduce', 0.0042], ['all_gather', 0.0018], ['reduce_scatter', 0.0021]] as const) {
      for (let i = 0; i < 4; i++) out.push({ op, seconds: base * (0.8 + 0.5 * this.rand()) });
    }
    return out;
  }
}
