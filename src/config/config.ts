import { engineCollector, gpuCollector, kubeletCollector, peersCollector, simCollector, textfileCollector, collectorDefinitions } from '../collectors/index.js';
import type { CollectorDefinition } from '../core/collector.js';
import { ConfigError } from '../core/errors.js';
import type { LogLevel } from '../core/logger.js';
import { planSimulation, type RealSources, simulateImplies, type SimulationPlan } from '../sim/plan.js';
import { type FlagDef, Flags, parseFlags } from './flags.js';
import { parseListenAddress } from './listen.js';

export { parseListenAddress } from './listen.js';

/** Flags of the exporter itself; collectors bring their own. */
export const coreFlags: readonly FlagDef[] = [
  { name: 'web.listen-address', type: 'string', default: ':9842', help: 'Address to listen on for HTTP: [host]:port.' },
  { name: 'web.config.file', type: 'string', help: 'Path of an exporter-toolkit web config file (TLS, mTLS, bcrypt basic auth, headers); re-read when it changes.' },
  { name: 'web.max-requests', type: 'int', default: '40', min: 0, max: 100000, help: 'Concurrent HTTP requests served at most; more get 503 (0: no limit).' },
  { name: 'web.request-timeout', type: 'duration', default: '30s', min: 1000, help: 'Longest time a client may take to send a whole request (slow clients are cut off).' },
  { name: 'sample.interval', type: 'duration', default: '1s', min: 100, max: 3_600_000, help: 'How often collectors sample, in the background.' },
  { name: 'sample.stale-after', type: 'duration', default: '10s', min: 1000, help: 'Series of a collector that stopped succeeding are removed after this long (at least 3 of its intervals).' },
  { name: 'log.level', type: 'enum', choices: ['debug', 'info', 'warn', 'error'], default: 'info', help: 'Minimum level of log lines.' },
];

/** Collector switches, node_exporter style: `--collector.<name>` / `--no-collector.<name>`. */
function collectorSwitches(defs: readonly CollectorDefinition[]): FlagDef[] {
  return defs.map((d) => ({ name: `collector.${d.name}`, type: 'bool' as const, default: d.defaultEnabled, help: `Enable the ${d.name} collector: ${d.description}.` }));
}

/** Every flag declaration, grouped: the exporter's, the collector switches, each collector's own. */
export interface FlagDeclarations {
  readonly core: readonly FlagDef[];
  readonly switches: readonly FlagDef[];
  readonly collectors: ReadonlyArray<{ readonly name: string; readonly flags: readonly FlagDef[] }>;
}

/** The flag declarations of the exporter and of `defs` (for --help and docs/flags.md). */
export function flagDeclarations(defs: readonly CollectorDefinition[] = collectorDefinitions): FlagDeclarations {
  return { core: coreFlags, switches: collectorSwitches(defs), collectors: defs.map((d) => ({ name: d.name, flags: d.flags ?? [] })) };
}

/** All flags, in --help order. */
export function allFlags(defs: readonly CollectorDefinition[] = collectorDefinitions): FlagDef[] {
  const d = flagDeclarations(defs);
  return [...d.core, ...d.switches, ...d.collectors.flatMap((c) => c.flags)];
}

/** The HTTP server's settings. */
export interface WebSettings {
  /** `--web.config.file`: TLS and auth; undefined: plain HTTP, no auth. */
  readonly configFile?: string;
  /** Concurrent requests served at most (0: no limit). */
  readonly maxRequests: number;
  readonly requestTimeoutMs: number;
}

/** A validated configuration. */
export interface Config {
  /** The parsed flags, as given (for --help-like readers and tests); the exporter itself reads the typed values below. */
  readonly flags: Flags;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly web: WebSettings;
  readonly intervalMs: number;
  readonly staleAfterMs: number;
  readonly logLevel: LogLevel;
  /** The enabled collectors. */
  readonly collectors: readonly CollectorDefinition[];
  /** What is simulated (src/sim/plan.ts). */
  readonly simulation: SimulationPlan;
  /**
   * The typed config of a collector kind, read once from the flags (a kind not among
   * the loaded definitions gets its declared defaults).
   */
  configOf<C>(def: CollectorDefinition<C, never>): C;
}

/** Flags and environment → a validated Config. Throws ConfigError. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, defs: readonly CollectorDefinition[] = collectorDefinitions): Config {
  let flags = parseFlags(allFlags(defs), argv, env);
  // --simulate: what it implies and then simulates is decided in src/sim/plan.ts.
  if (flags.bool('simulate')) flags = flags.with(simulateImplies(flags.string('gpu.source'), flags.explicit.has('gpu.source')));
  const configs = new Map<CollectorDefinition<unknown, never>, unknown>();
  for (const d of defs) configs.set(d, d.configure?.(flags));
  const configOf = <C>(def: CollectorDefinition<C, never>): C => {
    if (configs.has(def)) return configs.get(def) as C;
    // Not loaded (a test's own definitions): the kind's declared defaults.
    const c = def.configure?.(parseFlags(def.flags ?? [], [])) as C;
    configs.set(def, c);
    return c;
  };
  const collectors = defs.filter((d) => {
    const sw = `collector.${d.name}`;
    if (flags.explicit.has(sw)) return flags.bool(sw);
    return flags.bool(sw) || (d.autoEnable?.(configs.get(d)) ?? false);
  });
  const enabled = new Set(collectors.map((d) => d.name));
  for (const d of defs) d.validate?.(configs.get(d), enabled);
  validateAcross(configOf, enabled);

  const kubelet = enabled.has(kubeletCollector.name);
  const peers = configOf(peersCollector);
  const real: RealSources = {
    engine: configOf(engineCollector).targets.length > 0,
    peers: peers.statics.some((t) => t.trim() !== '') || !!peers.dnsName,
    textfile: !!configOf(textfileCollector).directory,
    kubelet,
    processAttribution: kubelet && !!configOf(kubeletCollector).processAttribution,
  };
  const simulation = planSimulation({
    gpuSource: defs.includes(gpuCollector) ? configOf(gpuCollector).source : undefined,
    simEnabled: enabled.has(simCollector.name),
    simExplicit: flags.explicit.has(`collector.${simCollector.name}`),
    real,
  });

  const { host, port } = parseListenAddress(flags.requireString('web.listen-address'));
  return {
    flags,
    listenHost: host,
    listenPort: port,
    web: { configFile: flags.string('web.config.file') || undefined, maxRequests: flags.requireNumber('web.max-requests'), requestTimeoutMs: flags.requireNumber('web.request-timeout') },
    intervalMs: flags.requireNumber('sample.interval'),
    staleAfterMs: flags.requireNumber('sample.stale-after'),
    logLevel: flags.requireString('log.level') as LogLevel,
    collectors,
    simulation,
    configOf,
  };
}

/** Rules between the flags of different collectors. Throws ConfigError naming the flags. */
function validateAcross(configOf: Config['configOf'], enabled: ReadonlySet<string>): void {
  if (configOf(kubeletCollector).processAttribution) {
    const missing = [enabled.has(kubeletCollector.name) ? '' : '--collector.kubelet', configOf(gpuCollector).processMemory ? '' : '--nvml.process-memory'].filter(Boolean);
    if (missing.length > 0) throw new ConfigError(`--kubelet.process-attribution needs ${missing.join(' and ')} (the processes come from NVML, their pods from the kubelet)`);
  }
}
