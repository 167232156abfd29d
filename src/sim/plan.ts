import { ConfigError } from '../core/errors.js';
import type { SimFault } from './faults.js';
import { SimHost, type SimScenario } from './host.js';

/**
 * What is simulated, decided in one place (`planSimulation`) from the configuration.
 * The rule: simulated data never stands beside a source the user configured. It fills in
 * only with `--simulate` (or `--gpu.source=simulated`), or in `--gpu.source=auto`'s
 * fallback when no GPU can be found; and then it leaves out every part configured for
 * real.
 */

/** The real sources the user configured, besides GPUs; the simulator leaves each of them out. */
export interface RealSources {
  /** An engine target is configured: serving series come from it only. */
  readonly engine: boolean;
  /** Peers are configured: peer probes come from the prober only. */
  readonly peers: boolean;
  /** A textfile directory is configured: NCCL series come from its files only. */
  readonly textfile: boolean;
  /** The kubelet collector runs: pod allocations come from it, not from the simulator. */
  readonly kubelet: boolean;
  /** The kubelet collector attributes GPU processes itself (--kubelet.process-attribution). */
  readonly processAttribution: boolean;
}

/** Nothing configured for real. */
export const NO_REAL_SOURCES: RealSources = { engine: false, peers: false, textfile: false, kubelet: false, processAttribution: false };

/** True when the user configured any real source besides GPUs. */
export function anyConfigured(real: RealSources): boolean {
  return real.engine || real.peers || real.textfile || real.kubelet;
}

/**
 * `--simulate` is short for `--gpu.source=simulated --collector.sim`: the flag values it
 * sets. Throws a ConfigError when a real GPU source was asked for too.
 */
export function simulateImplies(gpuSource: string | undefined, gpuSourceExplicit: boolean): Record<string, string | boolean> {
  if (gpuSourceExplicit && gpuSource !== 'simulated') throw new ConfigError(`--simulate conflicts with --gpu.source=${gpuSource}`);
  return { 'gpu.source': 'simulated', 'collector.sim': true };
}

/** The decision. */
export interface SimulationPlan {
  /**
   * Where the GPU collector's GPUs come from: `real` (the source asked for, or fail),
   * `simulated` (asked for), `real-else-simulated` (`auto`: NVML, then nvidia-smi, then
   * simulated GPUs with a loud warning).
   */
  readonly gpus: 'real' | 'simulated' | 'real-else-simulated';
  /**
   * The rest of a simulated host (engine, allocator, training, peers, collectives, pods):
   * `always` (the sim collector is on, e.g. `--simulate`), `with-simulated-gpus` (when
   * `auto` ends up simulating the GPUs and nothing else is configured, the exporter is a
   * demo of a whole host, not simulated GPUs beside empty panels), or `never`.
   */
  readonly rest: 'always' | 'with-simulated-gpus' | 'never';
  /** The parts configured for real, which the simulated rest leaves out. */
  readonly real: RealSources;
}

/** What `planSimulation` decides from. */
export interface SimulationInput {
  /** `--gpu.source` (after `--simulate`); undefined without a GPU collector. */
  readonly gpuSource?: 'auto' | 'nvml' | 'nvidia-smi' | 'simulated';
  /** The sim collector is enabled (`--simulate` turns it on). */
  readonly simEnabled: boolean;
  /** `--collector.sim` / `--no-collector.sim` was given: the user decided, the fallback does not. */
  readonly simExplicit: boolean;
  readonly real: RealSources;
}

/** The one place that decides what is simulated. Pure. */
export function planSimulation(input: SimulationInput): SimulationPlan {
  const gpus = input.gpuSource === 'simulated' ? 'simulated' : input.gpuSource === 'auto' ? 'real-else-simulated' : 'real';
  let rest: SimulationPlan['rest'] = 'never';
  if (input.simEnabled) rest = 'always';
  // Once the user configured a real source, nothing but the missing GPUs is simulated.
  else if (gpus === 'real-else-simulated' && !input.simExplicit && !anyConfigured(input.real)) rest = 'with-simulated-gpus';
  return { gpus, rest, real: input.real };
}

/** Shape of the simulated host (`--simulate.*`). */
export interface SimHostShape {
  readonly gpus: number;
  readonly peers: number;
  readonly seed: number;
  /** Faults to inject (`--simulate.fault`). */
  readonly faults?: readonly SimFault[];
  /** Training, allocation and mesh situations (`--simulate.ranks`, `.slow-rank`, `.hang-after`, ...). */
  readonly scenario?: SimScenario;
}

/**
 * The simulation port: the plan, and the one simulated host of this process, shared by
 * the simulated GPU source and the sim collector; made on first use.
 */
export class Simulation {
  private made?: SimHost;
  constructor(
    readonly plan: SimulationPlan,
    private readonly shape: SimHostShape,
    private readonly now: () => number,
  ) {}

  host(): SimHost {
    return (this.made ??= new SimHost({ gpus: this.shape.gpus, seed: this.shape.seed, peers: this.shape.peers, faults: this.shape.faults, scenario: this.shape.scenario, startMs: this.now() }));
  }
}
