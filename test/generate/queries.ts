import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DASHBOARD_FILES as FILES } from '../../src/generate/dashboards/index.js';

export const ROOT = join(import.meta.dirname, '..', '..');

/** One PromQL expression of a generated dashboard. */
export interface PanelQuery {
  readonly dashboard: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
  readonly instant: boolean;
  readonly panelType: string;
  readonly unit: string | undefined;
  readonly description: string | undefined;
  readonly datasourceUid: string | undefined;
}

interface RawPanel {
  type: string;
  title?: string;
  description?: string;
  datasource?: { uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Array<{ expr?: string; refId?: string; instant?: boolean; datasource?: { uid?: string } }>;
  panels?: RawPanel[];
}

/** A committed dashboard JSON file, parsed. */
export function loadDashboard(file: string): { uid: string; title: string; panels: RawPanel[]; templating: { list: Array<Record<string, unknown>> }; [k: string]: unknown } {
  return JSON.parse(readFileSync(join(ROOT, 'dashboards', `${file}.json`), 'utf8'));
}

export const DASHBOARD_FILES = FILES;

/** Every panel (rows excluded) of a dashboard, nested ones included. */
export function panelsOf(d: { panels: RawPanel[] }): RawPanel[] {
  const out: RawPanel[] = [];
  const walk = (ps: RawPanel[] | undefined) => {
    for (const p of ps ?? []) {
      if (p.type === 'row') walk(p.panels);
      else out.push(p);
    }
  };
  walk(d.panels);
  return out;
}

/** Every target expression of every committed dashboard. */
export function dashboardQueries(): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const file of DASHBOARD_FILES) {
    const d = loadDashboard(file);
    for (const p of panelsOf(d)) {
      for (const t of p.targets ?? []) {
        out.push({
          dashboard: file, panel: p.title ?? '(untitled)', refId: t.refId ?? '?', expr: t.expr ?? '', instant: t.instant === true,
          panelType: p.type, unit: p.fieldConfig?.defaults?.unit, description: p.description, datasourceUid: t.datasource?.uid ?? p.datasource?.uid,
        });
      }
    }
  }
  return out;
}

/** Query template variables of every dashboard: `label_values(selector, label)`. */
export function variableQueries(): Array<{ dashboard: string; name: string; query: string }> {
  const out: Array<{ dashboard: string; name: string; query: string }> = [];
  for (const file of DASHBOARD_FILES) {
    for (const v of loadDashboard(file).templating.list) {
      if (v.type !== 'query') continue;
      const q = v.query as { query?: string } | string;
      out.push({ dashboard: file, name: String(v.name), query: typeof q === 'string' ? q : q.query ?? '' });
    }
  }
  return out;
}

export interface RuleEntry {
  readonly file: string;
  readonly group: string;
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export const RULE_FILES = ['ds-exporter-rules.yaml', 'ds-exporter-alerts.yaml'];

/** Every rule of the committed rule files. */
export function ruleEntries(): RuleEntry[] {
  const out: RuleEntry[] = [];
  for (const file of RULE_FILES) {
    const doc = parse(readFileSync(join(ROOT, 'alerts', file), 'utf8')) as { groups: Array<{ name: string; rules: Array<Omit<RuleEntry, 'file' | 'group'>> }> };
    for (const g of doc.groups) for (const r of g.rules) out.push({ file, group: g.name, ...r });
  }
  return out;
}

/** Substitutes Grafana's template variables the way a dashboard with "All" selected would. */
export function substitute(expr: string, rateInterval = '15s'): string {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, rateInterval)
    .replace(/\$__range_s|\$\{__range_s\}/g, String(parseInt(rateInterval, 10)))
    .replace(/\$__interval|\$\{__interval\}|\$__range|\$\{__range\}/g, rateInterval)
    .replace(/\$\{?cluster\}?/g, '.*')
    .replace(/\$\{?(job|instance|gpu|engine|model|peer|namespace|pod)\}?/g, '.+');
}
