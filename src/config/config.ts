import { collectorDefinitions } from '../collectors/index.js';
import type { CollectorDefinition } from '../core/collector.js';
import { ConfigError } from '../core/errors.js';
import type { LogLevel } from '../core/logger.js';
import { type FlagDef, type Flags, parseFlags } from './flags.js';
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

/** All flags, in --help order. */
export function allFlags(defs: readonly CollectorDefinition[] = collectorDefinitions): FlagDef[] {
  return [...coreFlags, ...collectorSwitches(defs), ...defs.flatMap((d) => d.flags ?? [])];
}

/** A validated configuration. */
export interface Config {
  readonly flags: Flags;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly intervalMs: number;
  readonly staleAfterMs: number;
  readonly logLevel: LogLevel;
  readonly collectors: readonly CollectorDefinition[];
}

/** Flags and environment → a validated Config. Throws ConfigError. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, defs: readonly CollectorDefinition[] = collectorDefinitions): Config {
  let flags = parseFlags(allFlags(defs), argv, env);
  if (flags.bool('simulate')) {
    const src = flags.string('gpu.source');
    if (flags.explicit.has('gpu.source') && src !== 'simulated') {
      throw new ConfigError(`--simulate conflicts with --gpu.source=${src}`);
    }
    flags = flags.with({ 'gpu.source': 'simulated', 'collector.sim': true });
  }
  const { host, port } = parseListenAddress(flags.string('web.listen-address') ?? ':9842');
  const collectors = defs.filter((d) => {
    const sw = `collector.${d.name}`;
    if (flags.explicit.has(sw)) return flags.bool(sw);
    return flags.bool(sw) || (d.autoEnable?.(flags) ?? false);
  });
  const enabled = new Set(collectors.map((d) => d.name));
  for (const d of defs) d.validate?.(flags, enabled);
  return {
    flags,
    listenHost: host,
    listenPort: port,
    intervalMs: flags.number('sample.interval') ?? 1000,
    staleAfterMs: flags.number('sample.stale-after') ?? 10_000,
    logLevel: (flags.string('log.level') ?? 'info') as LogLevel,
    collectors,
  };
}
