/** A bad flag, environment variable or config file: main prints it on one line and exits 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A data source (NVML, nvidia-smi, an engine, a file) failed or answered something unusable. */
export class SourceError extends Error {
  override name = 'SourceError';
}

/** Message of an unknown thrown value, with its cause chain, on one line. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.message);
      cur = (cur as Error & { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(': ');
}
