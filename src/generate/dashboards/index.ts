import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { usedByDashboards } from './common.js';
import { commDashboard } from './comm.js';
import { efficiencyDashboard } from './efficiency.js';
import { exporterDashboard } from './exporter.js';
import { fleetDashboard } from './fleet.js';
import { healthDashboard } from './health.js';
import { memoryDashboard } from './memory.js';
import { nodeDashboard } from './node.js';
import { servingDashboard } from './serving.js';

/** Numbers every panel (rows and nested panels too) 1..n in layout order: stable ids for links and provisioning. */
function numberPanels(d: dashboard.Dashboard): dashboard.Dashboard {
  let id = 0;
  const walk = (panels: Array<{ id?: number; panels?: unknown[] }> | undefined) => {
    for (const p of panels ?? []) {
      p.id = ++id;
      walk(p.panels as Array<{ id?: number; panels?: unknown[] }> | undefined);
    }
  };
  walk(d.panels as Array<{ id?: number; panels?: unknown[] }>);
  return d;
}

const all: ReadonlyArray<{ file: string; build: () => dashboard.Dashboard }> = [
  { file: 'fleet-overview', build: fleetDashboard },
  { file: 'fleet-health', build: healthDashboard },
  { file: 'node-detail', build: nodeDashboard },
  { file: 'serving', build: servingDashboard },
  { file: 'memory', build: memoryDashboard },
  { file: 'communication', build: commDashboard },
  { file: 'efficiency', build: efficiencyDashboard },
  { file: 'exporter-health', build: exporterDashboard },
];

/** File names of the generated dashboards (without .json), in presentation order. */
export const DASHBOARD_FILES: readonly string[] = all.map((d) => d.file);

/**
 * Builds every dashboard. The node detail dashboard is built last because it collects the
 * catalog families that no other dashboard shows; the result does not depend on call order.
 */
export function buildDashboards(): Array<{ file: string; dashboard: dashboard.Dashboard }> {
  usedByDashboards.clear();
  const order = [...all.filter((d) => d.file !== 'node-detail'), ...all.filter((d) => d.file === 'node-detail')];
  const built = new Map(order.map((d) => [d.file, numberPanels(d.build())]));
  return all.map((d) => ({ file: d.file, dashboard: built.get(d.file)! }));
}
