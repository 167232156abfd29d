import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { catalog } from '../../catalog/index.js';
import { autoPanel, bucketHeatmap, dashboardShell, queries, row, seriesHeatmap, tablePanel, timeSeries } from './common.js';

/** Catalog families from NCCL (textfile collector); panels appear when the catalog has them. */
function ncclMetrics() {
  return catalog.filter((m) => m.source === 'textfile' || m.name.includes('_nccl_'));
}

/** Communication: peer RTT matrix, loss, collective latency, NVLink/PCIe, NCCL when present. */
export function commDashboard(): dashboard.Dashboard {
  const q = queries(['peer']);
  const s = q.s;
  const peerRate = `rate(${s('ds_comm_peer_latency_seconds_bucket')}[$__rate_interval])`;
  const peerQ = (quantile: number) => `histogram_quantile(${quantile}, sum by (instance, peer, le) (${peerRate}))`;
  const collQ = (quantile: number) => `histogram_quantile(${quantile}, sum by (exported_job, op, le) (rate(${s('ds_comm_collective_latency_seconds_bucket')}[$__rate_interval])))`;
  const matrix: dashboard.DataTransformerConfig = { id: 'groupingToMatrix', options: { columnField: 'peer', rowField: 'instance', valueField: 'Value', emptyValue: 'null' } };
  const b = dashboardShell({
    uid: 'ds-exporter-comm',
    title: 'ds-exporter / Communication',
    description: 'Node-to-node round-trip times from the active peer prober, probe loss, collective operation latency, and NVLink/PCIe traffic.',
    tags: ['communication', 'network'],
    filters: ['peer'],
  })
    .withRow(row('Peer latency matrix'));
  for (const quantile of [0.5, 0.99]) {
    b.withPanel(
      tablePanel({
        title: `Peer RTT matrix p${quantile * 100}`,
        description: `p${quantile * 100} round-trip time from each exporter (rows) to each peer (columns), from the ds_comm_peer_latency_seconds histogram over the rate interval.`,
        unit: 's', columns: ['instance', 'peer'],
        targets: [{ expr: peerQ(quantile), format: 'table', instant: true }],
      }).withTransformation(matrix),
    );
  }
  b.withPanel(seriesHeatmap({ title: 'Peer RTT p99 by pair', description: 'p99 round-trip time per exporter -> peer pair over time, one row per pair; a bright row is a slow link.', unit: 's', w: 24, targets: [{ expr: peerQ(0.99), legend: '{{instance}} -> {{peer}}' }] }))
    .withPanel(bucketHeatmap({ title: 'RTT distribution', description: 'All probe round-trip times of the selection as a histogram over time (ds_comm_peer_latency_seconds buckets).', unit: 's', targets: [{ expr: `sum by (le) (${peerRate})`, legend: '{{le}}', format: 'heatmap' }] }))
    .withPanel(timeSeries({ title: 'Peer RTT p50 / p99', description: 'Median and p99 round-trip time per pair.', unit: 's', targets: [{ expr: peerQ(0.5), legend: '{{instance}} -> {{peer}} p50' }, { expr: peerQ(0.99), legend: '{{instance}} -> {{peer}} p99' }] }))
    .withRow(row('Reachability'))
    .withPanel(timeSeries({ title: 'Probe loss', description: 'Fraction of probes lost per pair over the prober\'s loss window.', unit: 'percentunit', min: 0, max: 1, w: 8, targets: [{ expr: s('ds_comm_peer_loss_ratio'), legend: '{{instance}} -> {{peer}}' }] }))
    .withPanel(timeSeries({ title: 'Peers unreachable', description: 'Peers that did not answer a recent probe (ds_comm_peer_up == 0), counted per exporter.', unit: 'short', min: 0, w: 8, targets: [{ expr: `count by (instance) (${s('ds_comm_peer_up')} == 0) or sum by (instance) (${s('ds_comm_peer_up')}) * 0`, legend: '{{instance}}' }] }))
    .withPanel(timeSeries({ title: 'Last RTT', description: 'Round-trip time of the last answered probe per pair (point reading; the histogram panels are exact).', unit: 's', w: 8, targets: [{ expr: s('ds_comm_peer_last_rtt_seconds'), legend: '{{instance}} -> {{peer}}' }] }))
    .withRow(row('Collectives'))
    .withPanel(timeSeries({ title: 'Collective latency percentiles', description: 'p50, p90 and p99 duration of collective operations (all_reduce, all_gather, reduce_scatter, ...) per training job (exported_job) and op, reported by the process.', unit: 's', targets: [0.5, 0.9, 0.99].map((quantile) => ({ expr: collQ(quantile), legend: `{{exported_job}} {{op}} p${quantile * 100}` })) }))
    .withPanel(timeSeries({ title: 'Collectives per second', description: 'Collective operations per second per op.', unit: 'ops', targets: [{ expr: `sum by (exported_job, op) (rate(${s('ds_comm_collective_latency_seconds_count')}[$__rate_interval]))`, legend: '{{exported_job}} {{op}}' }] }))
    .withRow(row('NVLink and PCIe'))
    .withPanel(timeSeries({ title: 'NVLink throughput by host', description: 'NVLink bytes per second summed over the GPUs of each host, by direction (rate of ds_gpu_nvlink_bytes_total).', unit: 'Bps', targets: [{ expr: `sum by (instance, direction) (rate(${s('ds_gpu_nvlink_bytes_total')}[$__rate_interval]))`, legend: '{{instance}} {{direction}}' }] }))
    .withPanel(timeSeries({ title: 'PCIe throughput by host', description: 'PCIe bytes per second summed over the GPUs of each host, by direction.', unit: 'Bps', targets: [{ expr: `sum by (instance, direction) (${s('ds_gpu_pcie_throughput_bytes_per_second')})`, legend: '{{instance}} {{direction}}' }] }));
  const nccl = ncclMetrics();
  if (nccl.length > 0) {
    b.withRow(row('NCCL'));
    for (const m of nccl) b.withPanel(autoPanel(m, q));
  }
  return b.build();
}
