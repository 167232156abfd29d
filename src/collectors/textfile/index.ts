import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Collector, CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import { describeError } from '../../core/errors.js';
import type { FlagValues } from '../../core/flags.js';
import type { Batch } from '../../core/store.js';
import { mapFamilies, type MappedSample } from './map.js';
import { parseExposition, type Exposition } from '../../parse/exposition.js';

/**
 * Files larger than this are skipped (a textfile is a few kilobytes; NCCL Inspector
 * dumps of large jobs stay well under it). Parsing runs on the event loop, so the bound
 * also bounds how long one changed file can hold up a scrape.
 */
export const MAX_TEXTFILE_BYTES = 4 * 1024 * 1024;

/** Parsed files by name, reused while their mtime and size stay the same. */
export type TextfileCache = Map<string, { mtimeMs: number; size: number; mapped?: ReturnType<typeof mapFamilies>; error?: string }>;

/**
 * Parses a textfile: the text format 0.0.4, strictly (see ParseOptions.strict), so a
 * broken file is refused whole rather than half-read. Throws ExpositionError naming the line.
 */
export function parseTextfile(text: string): Exposition {
  // The byte bound is the only one: a textfile's series count is its writer's business.
  return parseExposition(text, { strict: true, maxBytes: MAX_TEXTFILE_BYTES, maxSeries: Number.POSITIVE_INFINITY });
}

/** What one read of the directory produced (pure data; written to a batch by `writeTextfiles`). */
export interface TextfileRead {
  readonly files: Array<{ file: string; mtimeSeconds: number; ignored: string[] }>;
  readonly samples: MappedSample[];
  readonly errors: Array<{ file: string; error: string }>;
}

/**
 * Reads every `*.prom` file of `dir` (node_exporter's textfile convention: writers
 * write a temporary file and rename it into place). A file that cannot be read,
 * parsed or mapped is skipped whole and reported in `errors`; a series already
 * given by an earlier file (files in name order) makes the later file an error.
 */
export async function readTextfiles(dir: string, cache: TextfileCache = new Map()): Promise<TextfileRead> {
  const out: TextfileRead = { files: [], samples: [], errors: [] };
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.prom') && !n.startsWith('.')).sort();
  } catch (err) {
    out.errors.push({ file: dir, error: `cannot read directory: ${describeError(err)}` });
    return out;
  }
  const seen = new Set<string>();
  const live = new Set<string>();
  for (const name of names) {
    const path = join(dir, name);
    try {
      const st = await stat(path);
      if (!st.isFile()) continue;
      if (st.size > MAX_TEXTFILE_BYTES) throw new Error(`${st.size} bytes is more than ${MAX_TEXTFILE_BYTES}`);
      // Only a file that changed is read and parsed again.
      let entry = cache.get(name);
      live.add(name);
      if (!entry || entry.mtimeMs !== st.mtimeMs || entry.size !== st.size) {
        entry = { mtimeMs: st.mtimeMs, size: st.size };
        cache.set(name, entry);
        const text = await readFile(path, 'utf8');
        try {
          // A file being written in place (not renamed into place) usually ends mid-line.
          if (text.length > 0 && !text.endsWith('\n')) throw new Error('incomplete: the last line has no newline');
          entry.mapped = mapFamilies(parseTextfile(text));
        } catch (err) {
          entry.error = describeError(err);
        }
      }
      if (entry.error !== undefined || !entry.mapped) throw new Error(entry.error ?? 'not parsed');
      const mapped = entry;
      const keys = mapped.mapped!.samples.map((s) => s.name + JSON.stringify(Object.entries(s.labels).sort()));
      const dup = keys.find((k) => seen.has(k));
      if (dup !== undefined) throw new Error(`series ${dup} is already given by another file`);
      for (const k of keys) seen.add(k);
      out.samples.push(...mapped.mapped!.samples);
      out.files.push({ file: name, mtimeSeconds: st.mtimeMs / 1000, ignored: mapped.mapped!.ignored });
    } catch (err) {
      out.errors.push({ file: name, error: describeError(err) });
    }
  }
  for (const name of cache.keys()) if (!live.has(name)) cache.delete(name);
  return out;
}

/** Writes a directory read into a batch. */
export function writeTextfiles(batch: Batch, read: TextfileRead): void {
  for (const s of read.samples) {
    if (s.type === 'counter') batch.counter(s.name, s.labels, s.value);
    else batch.gauge(s.name, s.labels, s.value);
  }
  for (const f of read.files) {
    batch.gauge('ds_textfile_mtime_seconds', { file: f.file }, f.mtimeSeconds);
    batch.gauge('ds_textfile_ignored_families', { file: f.file }, f.ignored.length);
  }
  batch.gauge('ds_textfile_scrape_error', {}, read.errors.length > 0 ? 1 : 0);
}

/** The textfile collector, created for a directory. */
export function createTextfileCollector(deps: Pick<CollectorDeps, 'logger'>, dir: string | undefined): Collector {
  let lastErrors = '';
  const cache: TextfileCache = new Map();
  return {
    async sample(batch) {
      if (!dir) return;
      const read = await readTextfiles(dir, cache);
      const errs = read.errors.map((e) => `${e.file}: ${e.error}`).join('; ');
      // Log a broken file when it breaks or changes, not on every sample.
      if (errs !== lastErrors && errs) deps.logger.warn('textfile skipped', { directory: dir, errors: errs });
      lastErrors = errs;
      writeTextfiles(batch, read);
    },
  };
}

/** The textfile flags, read once. */
export interface TextfileConfig {
  /** `--textfile.directory`; undefined: nothing is read. */
  readonly directory?: string;
}

/** NCCL Inspector and `ds-exporter import` textfiles from a directory. */
export const textfileCollector: CollectorDefinition<TextfileConfig> = {
  name: 'textfile',
  description: 'NCCL Inspector and imported nccl-tests results from *.prom files in --textfile.directory',
  defaultEnabled: true,
  flags: [
    { name: 'textfile.directory', type: 'string', help: 'Directory of *.prom textfiles (NCCL Inspector output, `ds-exporter import` output). Unset: nothing is read.' },
  ],
  configure(flags: FlagValues): TextfileConfig {
    return { directory: flags.string('textfile.directory') || undefined };
  },
  create(deps, config) {
    return createTextfileCollector(deps, config.directory);
  },
};
