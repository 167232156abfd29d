import { expBuckets, type MetricDef } from './types.js';

/** 25 µs to 10 s. */
export const PEER_BUCKETS = expBuckets(25e-6, 10, 2);
/** 10 µs to 10 s. */
export const COLLECTIVE_BUCKETS = expBuckets(10e-6, 10, 2);

/** Labels of NCCL Inspector collective series (its `version` format label is dropped). */
export const NCCL_COLL_LABELS = ['node', 'gpu', 'comm_name', 'n_nodes', 'nranks', 'collective', 'message_size', 'algo_proto', 'slurm_job_id'] as const;
/** Labels of NCCL Inspector point-to-point series. */
export const NCCL_P2P_LABELS = ['node', 'gpu', 'comm_name', 'n_nodes', 'nranks', 'p2p_operation', 'message_size', 'slurm_job_id'] as const;
/** Labels of NCCL Inspector per-GPU totals. */
export const NCCL_DEVICE_LABELS = ['node', 'gpu', 'slurm_job_id'] as const;
/** Labels of an nccl-tests result row. */
export const NCCL_TEST_LABELS = ['op', 'size_bytes', 'in_place'] as const;

/** Communication latency between hosts and inside collectives. */
export const commMetrics: readonly MetricDef[] = [
  { name: 'ds_comm_peer_latency_seconds', type: 'histogram', unit: 'seconds', source: 'peers', labels: ['peer'], buckets: PEER_BUCKETS, help: 'Round-trip time of probes to a peer exporter.' },
  { name: 'ds_comm_peer_up', type: 'gauge', unit: '', source: 'peers', labels: ['peer'], help: '1 when the peer answered a recent probe.' },
  { name: 'ds_comm_peer_loss_ratio', type: 'gauge', unit: 'ratio', source: 'peers', labels: ['peer'], help: 'Fraction of probes to the peer lost over the loss window.' },
  { name: 'ds_comm_peer_last_rtt_seconds', type: 'gauge', unit: 'seconds', source: 'peers', labels: ['peer'], help: 'Round-trip time of the last answered probe.' },
  { name: 'ds_comm_peer_targets', type: 'gauge', unit: '', source: 'peers', labels: [], help: 'Number of peers the prober currently knows (static list plus DNS discovery, the exporter itself excluded).' },
  { name: 'ds_comm_collective_latency_seconds', type: 'histogram', unit: 'seconds', source: 'push', labels: ['op', 'job'], buckets: COLLECTIVE_BUCKETS, help: 'Duration of collective operations (all_reduce, all_gather, ...) reported by the process.' },
  { name: 'ds_comm_collective_bytes_total', type: 'counter', unit: 'bytes', source: 'push', labels: ['op', 'job'], help: 'Message bytes of the collective operations reported by the processes of the job.' },
  { name: 'ds_nccl_collective_exec_time_seconds', type: 'gauge', unit: 'seconds', source: 'textfile', labels: NCCL_COLL_LABELS, help: 'Mean execution time of NCCL collectives in the last NCCL Inspector dump window, by communicator, collective and message-size range.' },
  { name: 'ds_nccl_bus_bandwidth_bytes_per_second', type: 'gauge', unit: 'bytes_per_second', source: 'textfile', labels: NCCL_COLL_LABELS, help: 'Geometric-mean bus bandwidth of NCCL collectives in the last NCCL Inspector dump window (GB/s converted with 1 GB = 1e9 bytes).' },
  { name: 'ds_nccl_p2p_exec_time_seconds', type: 'gauge', unit: 'seconds', source: 'textfile', labels: NCCL_P2P_LABELS, help: 'Mean execution time of NCCL point-to-point operations (Send/Recv) in the last NCCL Inspector dump window.' },
  { name: 'ds_nccl_p2p_bus_bandwidth_bytes_per_second', type: 'gauge', unit: 'bytes_per_second', source: 'textfile', labels: NCCL_P2P_LABELS, help: 'Geometric-mean bus bandwidth of NCCL point-to-point operations in the last NCCL Inspector dump window.' },
  { name: 'ds_nccl_collectives_total', type: 'counter', unit: '', source: 'textfile', labels: NCCL_DEVICE_LABELS, help: 'NCCL collectives recorded by NCCL Inspector on the GPU (its optional per-device statistics).' },
  { name: 'ds_nccl_collectives_dropped_total', type: 'counter', unit: '', source: 'textfile', labels: NCCL_DEVICE_LABELS, help: 'NCCL collectives NCCL Inspector dropped before dumping them (its ring buffer overflowed); the dump windows under-count by this much.' },
  { name: 'ds_nccl_p2p_operations_total', type: 'counter', unit: '', source: 'textfile', labels: NCCL_DEVICE_LABELS, help: 'NCCL point-to-point operations recorded by NCCL Inspector on the GPU.' },
  { name: 'ds_nccl_p2p_operations_dropped_total', type: 'counter', unit: '', source: 'textfile', labels: NCCL_DEVICE_LABELS, help: 'NCCL point-to-point operations NCCL Inspector dropped before dumping them.' },
  { name: 'ds_nccl_test_latency_seconds', type: 'gauge', unit: 'seconds', source: 'textfile', labels: NCCL_TEST_LABELS, help: 'Time per operation measured by an imported nccl-tests run, by message size and in-place flag.' },
  { name: 'ds_nccl_test_bus_bandwidth_bytes_per_second', type: 'gauge', unit: 'bytes_per_second', source: 'textfile', labels: NCCL_TEST_LABELS, help: 'Bus bandwidth measured by an imported nccl-tests run, by message size and in-place flag.' },
  { name: 'ds_textfile_mtime_seconds', type: 'gauge', unit: 'seconds', source: 'textfile', labels: ['file'], help: 'Modification time of a textfile read by the textfile collector.' },
  { name: 'ds_textfile_scrape_error', type: 'gauge', unit: '', source: 'textfile', labels: [], help: '1 when at least one textfile could not be read or parsed (that file is skipped, the others are served).' },
  { name: 'ds_textfile_ignored_families', type: 'gauge', unit: '', source: 'textfile', labels: ['file'], help: 'Metric families in a textfile that are neither NCCL Inspector families nor catalog families, and were ignored.' },
];
