import type { FlagDef, FlagValues } from './flags.js';
import type { Logger } from './logger.js';
import type { Batch, SampleStore } from './store.js';

/**
 * What every collector gets from the framework. Test seams are explicit here, never
 * globals. What a collector needs from other parts (the GPUs another collector found,
 * the pod allocations, the push ingest, ...) comes as a named, typed port that
 * `buildApp` adds to these deps for the collectors that declare it.
 */
export interface CollectorDeps {
  readonly logger: Logger;
  readonly store: SampleStore;
  readonly now: () => number;
  /** The global `--sample.interval`, in ms. */
  readonly intervalMs: number;
}

/** A running collector: samples into a batch when the scheduler asks. */
export interface Collector {
  /**
   * Writes the collector's complete current set of series into `batch`. Throwing marks
   * the sample failed (`ds_exporter_collector_success 0`) and commits nothing.
   */
  sample(batch: Batch, signal: AbortSignal): Promise<void>;
  /** Sampling interval in ms; the global `--sample.interval` when absent. */
  readonly intervalMs?: number;
  /** Releases handles, children, sockets. */
  close?(): Promise<void>;
}

/**
 * A collector kind, registered by name (node_exporter style). Its flags are read once, by
 * `configure`, into a typed readonly config `C`; `create` gets that config and the deps
 * `D` it declares (the framework's plus the ports it needs).
 */
export interface CollectorDefinition<C = unknown, D extends CollectorDeps = CollectorDeps> {
  readonly name: string;
  readonly description: string;
  readonly defaultEnabled: boolean;
  /** Flags this collector owns (`--<name>.*`); their defaults are written only here. */
  readonly flags?: readonly FlagDef[];
  /**
   * Reads this collector's flags into its config, whether or not it is enabled. Throws a
   * ConfigError naming the flag. Absent: the collector has no config (`undefined`).
   */
  configure?(flags: FlagValues): C;
  /**
   * Turns a collector that is off by default on when its config asks for it (e.g.
   * targets given), unless `--no-collector.<name>` is explicit.
   */
  autoEnable?(config: C): boolean;
  /**
   * Checks its config against the set of enabled collectors, whether or not it is enabled
   * itself. Throws a ConfigError naming the flags.
   */
  validate?(config: C, enabled: ReadonlySet<string>): void;
  create(deps: D, config: C): Promise<Collector> | Collector;
}
