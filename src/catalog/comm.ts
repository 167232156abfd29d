import { expBuckets, type MetricDef } from './types.js';

/** 25 µs to 10 s. */
export const PEER_BUCKETS = expBuckets(25e-6, 10, 2);
/** 10 µs to 10 s. */
export const COLLECTIVE_BUCKETS = expBuckets(10e-6, 10, 2);

/** Communication latency between hosts and inside collectives. */
export const commMetrics: readonly MetricDef[] = [
  { name: 'ds_comm_peer_latency_seconds', type: 'histogram', unit: 'seconds', source: 'peers', labels: ['peer'], buckets: PEER_BUCKETS, help: 'Round-trip time of probes to a peer exporter.' },
  { name: 'ds_comm_peer_up', type: 'gauge', unit: '', source: 'peers', labels: ['peer'], help: '1 when the peer answered a recent probe.' },
  { name: 'ds_comm_peer_loss_ratio', type: 'gauge', unit: 'ratio', source: 'peers', labels: ['peer'], help: 'Fraction of probes to the peer lost over the loss window.' },
  { name: 'ds_comm_peer_last_rtt_seconds', type: 'gauge', unit: 'seconds', source: 'peers', labels: ['peer'], help: 'Round-trip time of the last answered probe.' },
  { name: 'ds_comm_collective_latency_seconds', type: 'histogram', unit: 'seconds', source: 'push', labels: ['op', 'job'], buckets: COLLECTIVE_BUCKETS, help: 'Duration of collective operations (all_reduce, all_gather, ...) reported by the process.' },
  { name: 'ds_comm_collective_bytes_total', type: 'counter', unit: 'bytes', source: 'push', labels: ['op', 'job'], help: 'Message bytes of the collective operations reported by the processes of the job.' },
];
