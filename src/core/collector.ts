import type { Flags } from '../config/flags.js';
import type { FlagDef } from '../config/flags.js';
import type { Logger } from './logger.js';
import type { Batch, SampleStore } from './store.js';

/** What every collector gets from the framework. Test seams are explicit here, never globals. */
export interface CollectorDeps {
  readonly logger: Logger;
  readonly store: SampleStore;
  readonly now: () => number;
  /** Shared state between collectors and HTTP plugins (e.g. the push ingest buffer). */
  readonly shared: Map<string, unknown>;
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

/** A collector kind, registered by name (node_exporter style). */
export interface CollectorDefinition {
  readonly name: string;
  readonly description: string;
  readonly defaultEnabled: boolean;
  /** Flags this collector owns (`--<name>.*`). */
  readonly flags?: readonly FlagDef[];
  /**
   * Turns a collector that is off by default on when its own flags ask for it (e.g.
   * targets given), unless `--no-collector.<name>` is explicit. May throw ConfigError.
   */
  autoEnable?(flags: Flags): boolean;
  /**
   * Checks flags of this collector that depend on other flags or collectors, whether or
   * not it is enabled (`enabled` holds the names of the enabled collectors). Throws a
   * ConfigError naming the flags.
   */
  validate?(flags: Flags, enabled: ReadonlySet<string>): void;
  create(deps: CollectorDeps, flags: Flags): Promise<Collector> | Collector;
}
