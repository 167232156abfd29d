import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { has, ROOT } from './procs.js';

// The servers that scripts/setup-go-tools.sh builds from their Go modules (versions in
// scripts/go-tools.tsv) into ${XDG_CACHE_HOME:-~/.cache}/ds-exporter/go-tools/<name>-<version>/.

export const GO_TOOLS_DIR = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ds-exporter', 'go-tools');

interface ToolRow {
  readonly module: string;
  readonly version: string;
  readonly binaries: readonly string[];
}

function readTable(): Map<string, ToolRow> {
  const rows = new Map<string, ToolRow>();
  for (const line of readFileSync(join(ROOT, 'scripts', 'go-tools.tsv'), 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [name, module, version, packages] = line.split('\t');
    rows.set(name, { module, version, binaries: packages.split(' ').map((p) => p.split('/').pop()!) });
  }
  return rows;
}

const TABLE = readTable();

/** A binary found, or why it cannot be used (for a test's `skip`). */
export type ToolLookup = { readonly path: string; readonly version: string; readonly skip: false } | { readonly path: undefined; readonly version: string; readonly skip: string };

/** Where `binary` of the Go tool `tool` (a name in scripts/go-tools.tsv) lies, or why it is missing. */
export function goTool(tool: string, binary: string = tool): ToolLookup {
  const row = TABLE.get(tool);
  if (!row) throw new Error(`${tool} is not in scripts/go-tools.tsv`);
  if (!row.binaries.includes(binary)) throw new Error(`${tool} builds ${row.binaries.join(', ')}, not ${binary}`);
  const dir = join(GO_TOOLS_DIR, `${tool}-${row.version}`);
  const path = join(dir, binary);
  try {
    accessSync(path, constants.X_OK);
    return { path, version: row.version, skip: false };
  } catch {
    let why: string;
    try {
      why = readFileSync(`${dir}.unavailable`, 'utf8').trim();
    } catch {
      why = 'run scripts/setup-go-tools.sh (npm test runs it)';
    }
    return { path: undefined, version: row.version, skip: `${binary} ${row.version} (${row.module}) is missing from ${dir}: ${why}` };
  }
}

/** One Prometheus server and its promtool, as the end-to-end tests run them. */
export interface PrometheusVersion {
  /** For test names: `2.42 (Debian)` or `3.16 (Go module v0.316.0)`. */
  readonly label: string;
  readonly major: 2 | 3;
  readonly prometheus: string;
  readonly promtool: string;
  /** false, or why this version cannot run here. */
  readonly skip: false | string;
}

function debianLabel(): string {
  try {
    const m = /version (\d+\.\d+)/.exec(execFileSync('prometheus', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    return m ? `${m[1]} (Debian)` : 'Debian';
  } catch {
    return 'Debian';
  }
}

function debian(): PrometheusVersion {
  const missing = ['prometheus', 'promtool'].filter((c) => !has(c));
  return {
    label: missing.length ? 'Debian' : debianLabel(),
    major: 2,
    prometheus: 'prometheus',
    promtool: 'promtool',
    skip: missing.length ? `${missing.join(' and ')} not installed (scripts/setup-test-tools.sh installs Debian's package)` : false,
  };
}

function fromModule(): PrometheusVersion {
  const server = goTool('prometheus', 'prometheus');
  const tool = goTool('prometheus', 'promtool');
  const m = /^v0\.(\d)(\d\d)\.(\d+)$/.exec(server.version);
  const semver = m ? `${m[1]}.${Number(m[2])}.${m[3]}` : server.version;
  return {
    label: `${semver} (Go module ${server.version})`,
    major: 3,
    prometheus: server.path ?? 'prometheus-3-missing',
    promtool: tool.path ?? 'promtool-3-missing',
    skip: server.skip || tool.skip,
  };
}

/** Debian's Prometheus 2 and Prometheus 3 from its Go module: every end-to-end check runs against both. */
export const PROMETHEUS_VERSIONS: readonly PrometheusVersion[] = [debian(), fromModule()];

/** Prometheus 3 (agent mode, remote write, the benchmark). */
export const PROMETHEUS_3 = PROMETHEUS_VERSIONS[1];
