import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import { ConfigError, SourceError } from '../../core/errors.js';
import type { FlagValues } from '../../core/flags.js';
import { fresh, type Ports } from '../../ports/index.js';
import { type DeviceAllocation, gpuAllocations } from './match.js';
import { ProcessAttribution } from './processes.js';

const PROTO = fileURLToPath(new URL('../../../assets/kubelet/podresources.proto', import.meta.url));

interface ListResponse {
  pod_resources?: Array<{ name?: string; namespace?: string; containers?: Array<{ name?: string; devices?: Array<{ resource_name?: string; device_ids?: string[] }> }> }>;
}

type ListerClient = grpc.Client & {
  List(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: ListResponse) => void): grpc.ClientUnaryCall;
};

/** Flattens a List response into one row per container device. Pure. */
export function flattenList(res: ListResponse): DeviceAllocation[] {
  const out: DeviceAllocation[] = [];
  for (const p of res.pod_resources ?? []) {
    for (const c of p.containers ?? []) {
      for (const d of c.devices ?? []) {
        for (const id of d.device_ids ?? []) {
          out.push({ namespace: p.namespace ?? '', pod: p.name ?? '', container: c.name ?? '', resourceName: d.resource_name ?? '', deviceId: id });
        }
      }
    }
  }
  return out;
}

/** The kubelet collector's flags, read once. */
export interface KubeletConfig {
  readonly socket: string;
  /** Extra resource names that hold GPUs. */
  readonly resourceNames: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** `--kubelet.process-attribution`: the proc filesystem to read the GPU processes' cgroups from, else undefined. */
  readonly processAttribution?: { readonly procPath: string };
  /** `--kubelet.enrich-labels`: GPU series carry the pod labels. */
  readonly enrichLabels: boolean;
}

/** The ports the kubelet collector uses: it writes the pod allocations, reads the GPU inventory. */
export type KubeletDeps = CollectorDeps & Pick<Ports, 'gpus' | 'pods'>;

/** Which pod holds which GPU, from the kubelet's pod-resources API over its unix socket. */
export const kubeletCollector: CollectorDefinition<KubeletConfig, KubeletDeps> = {
  name: 'kubelet',
  description: 'GPU-to-pod attribution from the kubelet pod-resources API (ds_gpu_allocation_info; ds_gpu_process_info with --kubelet.process-attribution)',
  defaultEnabled: false,
  flags: [
    { name: 'kubelet.pod-resources-socket', type: 'string', default: '/var/lib/kubelet/pod-resources/kubelet.sock', help: 'Unix socket of the kubelet pod-resources API.' },
    { name: 'kubelet.resource-names', type: 'list', help: 'Extra resource names that hold GPUs, besides nvidia.com/gpu and nvidia.com/mig-*.' },
    { name: 'kubelet.interval', type: 'duration', default: '5s', min: 100, help: 'How often to ask the kubelet which pod holds which GPU.' },
    { name: 'kubelet.timeout', type: 'duration', default: '2s', min: 100, help: 'Timeout of one List call.' },
    { name: 'kubelet.process-attribution', type: 'bool', default: false, help: 'Export ds_gpu_process_info: the pod and container of every GPU process, from /proc/<pid>/cgroup; needs hostPID, --nvml.process-memory and --collector.kubelet.' },
    { name: 'kubelet.proc-path', type: 'string', default: '/proc', help: 'Where the proc filesystem showing the GPU processes is mounted (with hostPID, the container\'s own /proc).' },
    { name: 'kubelet.enrich-labels', type: 'bool', default: false, help: 'Add namespace, pod and container of the pod holding the GPU to every GPU series keyed by uuid (one series per pod on a time-shared GPU); needs --collector.kubelet.' },
  ],
  configure(flags: FlagValues): KubeletConfig {
    return {
      socket: flags.requireString('kubelet.pod-resources-socket'),
      resourceNames: flags.list('kubelet.resource-names'),
      intervalMs: flags.requireNumber('kubelet.interval'),
      timeoutMs: flags.requireNumber('kubelet.timeout'),
      processAttribution: flags.bool('kubelet.process-attribution') ? { procPath: flags.requireString('kubelet.proc-path') } : undefined,
      enrichLabels: flags.bool('kubelet.enrich-labels'),
    };
  },
  validate(config, enabled) {
    if (config.enrichLabels && !enabled.has('kubelet')) throw new ConfigError('--kubelet.enrich-labels needs --collector.kubelet (the pod labels come from the kubelet)');
  },
  create(deps, config) {
    const { socket, timeoutMs, intervalMs } = config;
    const processes = config.processAttribution ? new ProcessAttribution(config.processAttribution.procPath, deps.logger) : undefined;
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: new (addr: string, creds: grpc.ChannelCredentials, opts?: object) => ListerClient } };
    const client = new pkg.v1.PodResourcesLister(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 << 20 });
    return {
      intervalMs,
      async sample(batch, signal) {
        const res = await new Promise<ListResponse>((resolve, reject) => {
          const call = client.List({}, { deadline: Date.now() + timeoutMs }, (err, r) => (err ? reject(new SourceError(`kubelet pod-resources List on ${socket}: ${err.details || err.message}`, { cause: err })) : resolve(r)));
          signal.addEventListener('abort', () => call.cancel(), { once: true });
        });
        const allocations = gpuAllocations(flattenList(res), deps.gpus.devices, config.resourceNames);
        for (const a of allocations) batch.info('ds_gpu_allocation_info', { ...a });
        // The GPU collector labels its series with these (--kubelet.enrich-labels) while they are fresh.
        deps.pods.latest = { allocations, readAtMs: deps.now(), maxAgeMs: 3 * intervalMs };
        if (processes) {
          // The processes of the GPU collector's last sample, while it keeps succeeding.
          const listed = fresh(deps.gpus.processes, deps.now());
          if (listed) await processes.write(batch, listed, allocations);
        }
      },
      async close() {
        client.close();
      },
    };
  },
};
