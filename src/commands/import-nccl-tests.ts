import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import client from 'prom-client';
import { findMetric } from '../catalog/index.js';
import { type FlagDef, formatHelp, parseFlags } from '../config/flags.js';
import { ConfigError, SourceError } from '../core/errors.js';
import { type NcclTestRow, parseNcclTests } from './nccl-tests-parse.js';

/** Flags of `ds-exporter import nccl-tests`. */
export const importFlags: readonly FlagDef[] = [
  { name: 'output', type: 'string', help: 'Textfile to write (atomically: a temporary file renamed into place), e.g. DIR/nccl-tests.prom in --textfile.directory. Unset: stdout.' },
  { name: 'op', type: 'string', help: 'Operation name when the output does not say it (e.g. all_reduce).' },
  { name: 'help', type: 'bool', default: false, help: 'Show this help.' },
];

const HELP_HEADER = `Usage: ds-exporter import nccl-tests [FILE|-] [--output FILE] [--op NAME]

Reads the output of an nccl-tests binary (the text table, or the JSON report written
with -J) from FILE or stdin and writes a textfile with, per message size and in-place
flag, ds_nccl_test_latency_seconds and ds_nccl_test_bus_bandwidth_bytes_per_second.`;

/** The exposition of `rows`, written by prom-client from the catalog entries. */
export async function renderNcclTests(rows: readonly NcclTestRow[]): Promise<string> {
  const registry = new client.Registry();
  const gauge = (name: string) => {
    const def = findMetric(name)!;
    return new client.Gauge({ name, help: def.help, labelNames: [...def.labels], registers: [registry] });
  };
  const latency = gauge('ds_nccl_test_latency_seconds');
  const bus = gauge('ds_nccl_test_bus_bandwidth_bytes_per_second');
  for (const r of rows) {
    const labels = { op: r.op, size_bytes: String(r.sizeBytes), in_place: r.inPlace ? 'true' : 'false' };
    latency.set(labels, r.timeSeconds);
    bus.set(labels, r.busBandwidthBytesPerSecond);
  }
  return registry.metrics();
}

/** Writes `text` to `path` through a temporary file in the same directory and a rename. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new SourceError(`cannot write ${path}`, { cause: err });
  }
}

/** I/O of the command, injectable for tests. */
export interface CommandIo {
  readonly stdin: () => Promise<string>;
  readonly stdout: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Default I/O: the process's stdin and stdout. */
export const processIo: CommandIo = { stdin: readStdin, stdout: (t) => process.stdout.write(t), env: process.env };

/**
 * `ds-exporter import nccl-tests [FILE|-]`: parse, render, write. Returns the exit code;
 * throws ConfigError for bad arguments and SourceError for unreadable input.
 */
export async function importNcclTests(argv: readonly string[], io: CommandIo = processIo): Promise<number> {
  const flags = parseFlags(importFlags, argv, {});
  if (flags.bool('help')) {
    io.stdout(formatHelp(importFlags, HELP_HEADER));
    return 0;
  }
  if (flags.positional.length > 1) throw new ConfigError(`import nccl-tests: one input at most, got ${flags.positional.length}`);
  const input = flags.positional[0] ?? '-';
  let text: string;
  try {
    text = input === '-' ? await io.stdin() : await readFile(input, 'utf8');
  } catch (err) {
    throw new SourceError(`cannot read ${input === '-' ? 'stdin' : input}`, { cause: err });
  }
  const rows = parseNcclTests(text, flags.string('op'));
  const out = await renderNcclTests(rows);
  const output = flags.string('output');
  if (output) await writeAtomic(output, out);
  else io.stdout(out);
  return 0;
}

/** `ds-exporter import <kind> ...`. */
export async function runImport(argv: readonly string[], io: CommandIo = processIo): Promise<number> {
  const [kind, ...rest] = argv;
  if (kind === 'nccl-tests') return importNcclTests(rest, io);
  throw new ConfigError(`import: unknown kind "${kind ?? ''}" (known: nccl-tests)`);
}
