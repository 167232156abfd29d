import { buildApp, type BuiltApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { type Logger, silentLogger } from '../../src/core/logger.js';

/** A built exporter for `app.inject()` tests, with a controllable clock. */
export async function testApp(argv: string[], opts: { now?: () => number; logger?: Logger } = {}): Promise<BuiltApp> {
  const config = loadConfig(argv, {});
  return buildApp(config, { logger: opts.logger ?? silentLogger, now: opts.now, processMetrics: false, minRenderIntervalMs: 0 });
}

/** Parses Prometheus text exposition into family names → sample lines (test-side helper). */
export function families(text: string): Map<string, { type: string; samples: string[] }> {
  const out = new Map<string, { type: string; samples: string[] }>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) out.set(t[1], { type: t[2], samples: [] });
  }
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0];
    const fam = out.get(name) ?? out.get(name.replace(/_(bucket|sum|count|total|created)$/, ''));
    fam?.samples.push(line);
  }
  return out;
}

/** Value of the first sample line matching `re`. */
export function valueOf(text: string, re: RegExp): number | undefined {
  for (const line of text.split('\n')) if (!line.startsWith('#') && re.test(line)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  return undefined;
}
