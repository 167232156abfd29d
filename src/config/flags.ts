import { parseDuration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';
import type { FlagDef, FlagValues } from '../core/flags.js';

export type { FlagDef, FlagType } from '../core/flags.js';

type Value = string | boolean | number | string[];

/** Environment variable that sets `flag`: `web.listen-address` → `DS_EXPORTER_WEB_LISTEN_ADDRESS`. */
export function envName(flag: string): string {
  return 'DS_EXPORTER_' + flag.toUpperCase().replace(/[.-]/g, '_');
}

function convert(def: FlagDef, raw: string, origin: string): Value {
  const fail = (why: string): never => {
    throw new ConfigError(`${origin}: ${why}`);
  };
  switch (def.type) {
    case 'string':
      return raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      return fail(`expected true or false, got "${raw}"`);
    case 'duration': {
      let ms: number;
      try {
        ms = parseDuration(raw);
      } catch (e) {
        return fail((e as Error).message);
      }
      if (def.min !== undefined && ms < def.min) fail(`must be at least ${def.min} ms, got "${raw}"`);
      if (def.max !== undefined && ms > def.max) fail(`must be at most ${def.max} ms, got "${raw}"`);
      return ms;
    }
    case 'int':
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || (def.type === 'int' && !Number.isInteger(n))) {
        return fail(`expected ${def.type === 'int' ? 'an integer' : 'a number'}, got "${raw}"`);
      }
      if (def.min !== undefined && n < def.min) fail(`must be at least ${def.min}, got ${n}`);
      if (def.max !== undefined && n > def.max) fail(`must be at most ${def.max}, got ${n}`);
      return n;
    }
    case 'enum':
      if (!def.choices?.includes(raw)) return fail(`expected one of ${def.choices?.join('|')}, got "${raw}"`);
      return raw;
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
  }
}

/** Parsed flag values with typed accessors. */
export class Flags implements FlagValues {
  constructor(
    private readonly values: Map<string, Value>,
    /** Positional arguments (sub-commands). */
    readonly positional: readonly string[] = [],
    /** Flags given explicitly on the command line or environment. */
    readonly explicit: ReadonlySet<string> = new Set(),
  ) {}

  private get(name: string): Value | undefined {
    return this.values.get(name);
  }
  has(name: string): boolean {
    return this.values.has(name);
  }
  string(name: string): string | undefined {
    const v = this.get(name);
    return v === undefined ? undefined : String(v);
  }
  bool(name: string): boolean {
    return this.get(name) === true;
  }
  number(name: string): number | undefined {
    const v = this.get(name);
    return typeof v === 'number' ? v : undefined;
  }
  list(name: string): string[] {
    const v = this.get(name);
    return Array.isArray(v) ? v : [];
  }
  requireString(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new Error(`flag --${name} has no value: declare it with a default`);
    return v;
  }
  requireNumber(name: string): number {
    const v = this.number(name);
    if (v === undefined) throw new Error(`flag --${name} has no number: declare it with a default`);
    return v;
  }
  /** A copy with some values replaced (e.g. `--simulate` implying `--gpu.source=simulated`). */
  with(overrides: Record<string, Value>): Flags {
    const m = new Map(this.values);
    for (const [k, v] of Object.entries(overrides)) m.set(k, v);
    return new Flags(m, this.positional, this.explicit);
  }
}

/**
 * Parses `argv` and `env` against `defs`, node_exporter style: `--name=value`,
 * `--name value`, `--flag`/`--no-flag` for booleans, repeatable lists. Flags win over
 * the environment, which wins over defaults. Throws ConfigError naming the flag.
 */
export function parseFlags(defs: readonly FlagDef[], argv: readonly string[], env: NodeJS.ProcessEnv = {}): Flags {
  const byName = new Map(defs.map((d) => [d.name, d]));
  const values = new Map<string, Value>();
  const explicit = new Set<string>();
  for (const d of defs) {
    if (d.default !== undefined) values.set(d.name, typeof d.default === 'boolean' ? d.default : convert(d, d.default, `default of --${d.name}`));
  }
  for (const d of defs) {
    const raw = env[envName(d.name)];
    if (raw === undefined || raw === '') continue;
    values.set(d.name, convert(d, raw, `${envName(d.name)} (--${d.name})`));
    explicit.add(d.name);
  }
  const fromArgs = new Map<string, Value>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new ConfigError(`unknown flag ${arg} (flags start with --)`);
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let def = byName.get(name);
    if (!def && name.startsWith('no-') && raw === undefined) {
      const neg = byName.get(name.slice(3));
      if (neg?.type === 'bool') {
        def = neg;
        name = neg.name;
        raw = 'false';
      }
    }
    if (!def) throw new ConfigError(`unknown flag --${name} (see --help)`);
    if (raw === undefined) {
      if (def.type === 'bool') raw = 'true';
      else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) raw = argv[++i];
      else throw new ConfigError(`--${name}: missing value`);
    }
    const v = convert(def, raw, `--${name}`);
    if (def.type === 'list') {
      const prev = fromArgs.get(name);
      fromArgs.set(name, [...(Array.isArray(prev) ? prev : []), ...(v as string[])]);
    } else {
      fromArgs.set(name, v);
    }
  }
  for (const [k, v] of fromArgs) {
    values.set(k, v);
    explicit.add(k);
  }
  return new Flags(values, positional, explicit);
}

/** `--help` text: one block per flag, grouped by the first name segment. */
export function formatHelp(defs: readonly FlagDef[], header: string): string {
  const lines = [header, '', 'Flags (each also settable as DS_EXPORTER_<FLAG>, e.g. DS_EXPORTER_WEB_LISTEN_ADDRESS):'];
  let group = '';
  for (const d of defs) {
    if (d.hidden) continue;
    const g = d.name.split('.')[0];
    if (g !== group) {
      lines.push('');
      group = g;
    }
    const value = d.type === 'bool' ? '' : d.type === 'enum' ? `=${d.choices?.join('|')}` : `=${d.type.toUpperCase()}`;
    const dflt = d.default !== undefined && d.default !== '' ? ` (default: ${d.default})` : '';
    const neg = d.type === 'bool' ? ` / --no-${d.name}` : '';
    lines.push(`  --${d.name}${value}${neg}`);
    lines.push(`      ${d.help}${dflt}`);
  }
  return lines.join('\n') + '\n';
}
