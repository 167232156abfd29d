import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { commDashboard } from './comm.js';
import { exporterDashboard } from './exporter.js';
import { fleetDashboard } from './fleet.js';
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
  { file: 'node-detail', build: nodeDashboard },
  { file: 'serving', build: servingDashboard },
  { file: 'memory', build: memoryDashboard },
  { file: 'communication', build: commDashboard },
  { file: 'exporter-health', build: exporterDashboard },
];

/** Every generated dashboard, by file name (without .json). */
export const dashboards = all.map((d) => ({ file: d.file, build: () => numberPanels(d.build()) }));
