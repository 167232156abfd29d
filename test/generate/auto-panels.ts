import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { catalog, type MetricDef } from '../../src/catalog/index.js';
import { autoPanel, queries } from '../../src/generate/dashboards/common.js';

/** The panel the generator would add for each catalog family if no hand-written panel showed it. */
export function autoPanels(): Array<{ def: MetricDef; panel: dashboard.Panel }> {
  const q = queries(['gpu']);
  return catalog.map((def) => ({ def, panel: autoPanel(def, q).build() }));
}
