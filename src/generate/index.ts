import { pushSchema } from '../push/schema.js';
import { buildDashboards } from './dashboards/index.js';
import { flagsDoc } from './flags-doc.js';
import { metricsDoc } from './metrics-doc.js';
import { defaultRulesConfig, type RulesConfig } from './rules/config.js';
import { alertRuleFile, recordingRuleFile } from './rules/index.js';

/** Where the Helm chart embeds copies of the dashboards and rule files from. */
export const HELM_FILES = 'helm/ds-exporter/files';

/** JSON with object keys sorted at every level, two-space indented, trailing newline. */
export function stableJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return JSON.stringify(sort(value), null, 2) + '\n';
}

/** Every generated file: repository-relative path -> content. Pure: same catalog, same bytes. */
export function generateAll(cfg: RulesConfig = defaultRulesConfig): Map<string, string> {
  const out = new Map<string, string>();
  // Recording rules first: the dashboards select their recorded series.
  const rules = recordingRuleFile(cfg);
  const alerts = alertRuleFile(cfg);
  for (const d of buildDashboards()) {
    const json = stableJson(d.dashboard);
    out.set(`dashboards/${d.file}.json`, json);
    out.set(`${HELM_FILES}/dashboards/${d.file}.json`, json);
  }
  for (const [name, text] of [['ds-exporter-rules.yaml', rules], ['ds-exporter-alerts.yaml', alerts]] as const) {
    out.set(`alerts/${name}`, text);
    out.set(`${HELM_FILES}/alerts/${name}`, text);
  }
  out.set('docs/metrics.md', metricsDoc());
  out.set('docs/flags.md', flagsDoc());
  out.set('docs/push-api.schema.json', JSON.stringify(pushSchema, null, 2) + '\n');
  return out;
}

/** Directories whose files are all generated (a file there that the generator does not produce is stale). */
export const GENERATED_DIRS = ['dashboards', 'alerts', `${HELM_FILES}/dashboards`, `${HELM_FILES}/alerts`] as const;
