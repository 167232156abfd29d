import { ConfigError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Prometheus-style duration ("500ms", "1s", "1m30s") into milliseconds. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) {
    throw new ConfigError(`invalid duration "${text}" (use e.g. 500ms, 1s, 2m)`);
  }
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNITS[m[2]];
  return total;
}
