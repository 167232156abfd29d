/** Everything a deployment may want to tune in the generated rules. */
export interface RulesConfig {
  /** Matchers applied to every series the rules read (which scrape jobs are ds-exporter). */
  readonly selector: readonly string[];
  /**
   * Where an alert's runbook lives: `%s` is replaced by the alert's runbook anchor (its name in
   * lower case), as the monitoring mixins' `runbookURLPattern`. `npm run generate --
   * --runbook-url-pattern=URL` sets it; the default is the docs in the repository.
   */
  readonly runbookUrlPattern: string;
  /** Window of rate() in recording rules and short alert windows. */
  readonly rateWindow: string;
  readonly exporterDownFor: string;
  readonly collectorStaleSeconds: number;
  /** XID codes that mean the GPU or its memory needs attention (driver docs, "XID errors"). */
  readonly criticalXids: readonly number[];
  readonly throttleRatio: number;
  readonly thermalThrottleFor: string;
  readonly powerThrottleFor: string;
  readonly memoryFullRatio: number;
  readonly fragmentationRatio: number;
  readonly idleUtilization: number;
  readonly idleWindow: string;
  readonly idleFor: string;
  /** A GPU busy (duty cycle) above `smLowBusyRatio` whose SMs are active under `smLowActiveRatio` of the time, over `smLowWindow`, for `smLowFor`. */
  readonly smLowBusyRatio: number;
  readonly smLowActiveRatio: number;
  readonly smLowWindow: string;
  readonly smLowFor: string;
  readonly throughputDropRatio: number;
  /** Below this many generated tokens/s an hour ago, a drop is not worth a page. */
  readonly throughputMinTokensPerSecond: number;
  /**
   * TTFT service-level objective: this fraction of requests get their first token within
   * `ttftObjectiveSeconds`, which must be a bucket bound of ds_serving_time_to_first_token_seconds.
   */
  readonly ttftObjectiveSeconds: number;
  readonly ttftObjectiveRatio: number;
  /** Preemptions per second (sustained) that mean the KV cache thrashes. */
  readonly preemptionsPerSecond: number;
  /** How long requests may wait with no token generated before the engine counts as stalled. */
  readonly stalledFor: string;
  readonly failureOutcomes: string;
  readonly failureRatio: number;
  readonly kvCacheRatio: number;
  readonly peerLossRatio: number;
  readonly peerLatencyP99Seconds: number;
  readonly collectiveRegressionFactor: number;
  readonly collectiveBaselineOffset: string;
  /** A rank whose mean step time is this many times the job's median rank is a straggler. */
  readonly stragglerFactor: number;
  readonly stragglerFor: string;
  /** Jobs with fewer ranks reporting step times have no meaningful median. */
  readonly stragglerMinRanks: number;
  /** A job whose reporters push but which finished no step and no collective in this window is hung. */
  readonly trainingHungWindow: string;
  readonly trainingHungFor: string;
  /** A link whose median RTT is this many times the mesh's median link stands out... */
  readonly peerRttOutlierFactor: number;
  /** ...when it is also above this (sub-floor differences are noise on a fast fabric). */
  readonly peerRttOutlierFloorSeconds: number;
  /** A link whose probe loss exceeds the mesh's median link by this much stands out. */
  readonly peerLossOutlierMargin: number;
  readonly peerOutlierFor: string;
  /** Meshes with fewer links have no meaningful median. */
  readonly peerOutlierMinLinks: number;
}

export const defaultRulesConfig: RulesConfig = {
  selector: ['job="ds-exporter"'],
  runbookUrlPattern: 'https://github.com/ds-exporter/ds-exporter/blob/main/docs/runbooks.md#%s',
  rateWindow: '5m',
  exporterDownFor: '5m',
  collectorStaleSeconds: 300,
  criticalXids: [48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140],
  throttleRatio: 0.5,
  thermalThrottleFor: '15m',
  powerThrottleFor: '30m',
  memoryFullRatio: 0.97,
  fragmentationRatio: 0.3,
  idleUtilization: 0.05,
  idleWindow: '30m',
  idleFor: '1h',
  smLowBusyRatio: 0.5,
  smLowActiveRatio: 0.1,
  smLowWindow: '30m',
  smLowFor: '30m',
  throughputDropRatio: 0.5,
  throughputMinTokensPerSecond: 10,
  ttftObjectiveSeconds: 2.5,
  ttftObjectiveRatio: 0.99,
  preemptionsPerSecond: 0.1,
  stalledFor: '5m',
  failureOutcomes: 'error|failure|failed',
  failureRatio: 0.05,
  kvCacheRatio: 0.95,
  peerLossRatio: 0.05,
  peerLatencyP99Seconds: 0.002,
  collectiveRegressionFactor: 2,
  collectiveBaselineOffset: '1d',
  stragglerFactor: 1.2,
  stragglerFor: '15m',
  stragglerMinRanks: 3,
  trainingHungWindow: '10m',
  trainingHungFor: '5m',
  peerRttOutlierFactor: 3,
  peerRttOutlierFloorSeconds: 0.0005,
  peerLossOutlierMargin: 0.02,
  peerOutlierFor: '10m',
  peerOutlierMinLinks: 3,
};

/** The runbook link of `anchor` under `pattern` (one `%s`, see `runbookUrlPattern`). */
export function runbookUrl(pattern: string, anchor: string): string {
  return pattern.replace('%s', anchor);
}

/** Why `pattern` cannot be a runbook URL pattern, or undefined when it can. */
export function runbookPatternProblem(pattern: string): string | undefined {
  const count = pattern.split('%s').length - 1;
  if (count !== 1) return `the runbook URL pattern must hold %s exactly once (found ${count}): ${JSON.stringify(pattern)}`;
  if (/[\s"'<>]/.test(pattern)) return `the runbook URL pattern holds a space, quote or angle bracket: ${JSON.stringify(pattern)}`;
  let url: URL;
  try {
    url = new URL(pattern.replace('%s', 'anchor'));
  } catch {
    return `the runbook URL pattern is not an absolute URL: ${JSON.stringify(pattern)}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `the runbook URL pattern must be http(s): ${JSON.stringify(pattern)}`;
  return undefined;
}
