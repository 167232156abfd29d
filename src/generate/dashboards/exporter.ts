import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { dashboardShell, queries, row, statPanel, tablePanel, timeSeries } from './common.js';

/** Exporter health: scrapes, collectors, sample age, build. */
export function exporterDashboard(): dashboard.Dashboard {
  const q = queries([]);
  const s = q.s;
  return dashboardShell({
    uid: 'ds-exporter-health',
    title: 'ds-exporter / Exporter health',
    description: 'Is the exporter itself healthy: scrape success and duration, per-collector success, sample duration and sample age, build and GPU source.',
    tags: ['exporter'],
    filters: [],
  })
    .withRow(row('Scrapes'))
    .withPanel(statPanel({ title: 'Targets up', description: 'Exporters Prometheus scraped successfully at the last scrape (sum of up).', unit: 'short', targets: [{ expr: `sum(${s('up')})` }] }))
    .withPanel(statPanel({ title: 'Failing collectors', description: 'Collectors whose last sample failed, all exporters.', unit: 'short', thresholds: [[null, 'green'], [1, 'red']], targets: [{ expr: `count(${s('ds_exporter_collector_success')} == 0) or vector(0)` }] }))
    .withPanel(statPanel({ title: 'Oldest sample', description: 'Age of the oldest last-successful sample of any collector (time() - ds_exporter_collector_last_success_timestamp_seconds).', unit: 's', thresholds: [[null, 'green'], [30, 'orange'], [300, 'red']], targets: [{ expr: `max(time() - ${s('ds_exporter_collector_last_success_timestamp_seconds')})` }] }))
    .withPanel(statPanel({ title: 'Simulated GPU sources', description: 'Exporters reading the GPU simulator instead of NVML or nvidia-smi (ds_exporter_gpu_source_info{source="simulated"}); must be 0 in production.', unit: 'short', thresholds: [[null, 'green'], [1, 'orange']], targets: [{ expr: `count(${s('ds_exporter_gpu_source_info', 'source="simulated"')}) or vector(0)` }] }))
    .withPanel(timeSeries({ title: 'Scrape duration', description: 'Time Prometheus took to scrape each exporter (scrape_duration_seconds). Scrapes render stored samples only, so this does not grow with slow sources.', unit: 's', w: 8, h: 4, targets: [{ expr: s('scrape_duration_seconds'), legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Target up', description: 'Scrape success per exporter (up).', unit: 'short', min: 0, max: 1, targets: [{ expr: s('up'), legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Samples per scrape', description: 'Series returned per scrape (scrape_samples_scraped); jumps mean new GPUs, peers or processes, or a cardinality problem.', unit: 'short', targets: [{ expr: s('scrape_samples_scraped'), legend: '{{instance}}' }] }))
    .withRow(row('Collectors'))
    .withPanel(timeSeries({ title: 'Collector success', description: '1 when the last sample of the collector succeeded (ds_exporter_collector_success); a failing collector never fails the scrape, its series go stale instead.', unit: 'short', min: 0, max: 1, targets: [{ expr: s('ds_exporter_collector_success'), legend: '{{instance}} {{collector}}' }] }))
    .withPanel(timeSeries({ title: 'Collector duration', description: 'Duration of the last sample of each collector (ds_exporter_collector_duration_seconds).', unit: 's', targets: [{ expr: s('ds_exporter_collector_duration_seconds'), legend: '{{instance}} {{collector}}' }] }))
    .withPanel(timeSeries({ title: 'Sample age', description: 'Seconds since the last successful sample of each collector (time() - ds_exporter_collector_last_success_timestamp_seconds); grows without bound while a collector fails.', unit: 's', targets: [{ expr: `time() - ${s('ds_exporter_collector_last_success_timestamp_seconds')}`, legend: '{{instance}} {{collector}}' }] }))
    .withPanel(tablePanel({ title: 'Build and GPU source', description: 'Version and Node.js of each exporter (ds_exporter_build_info) and where it reads GPUs from (ds_exporter_gpu_source_info).', unit: 'short', columns: ['instance', 'version', 'node_version', 'source'], targets: [{ expr: `${s('ds_exporter_build_info')} * on (job, instance) group_left (source) ${s('ds_exporter_gpu_source_info')}`, format: 'table', instant: true }] }))
    .build();
}
