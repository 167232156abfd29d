import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { CollectorDefinition } from '../../core/collector.js';
import { ConfigError, SourceError } from '../../core/errors.js';
import { type DeviceAllocation, gpuAllocations, type KnownGpu } from './match.js';
import { ProcessAttribution } from './processes.js';
import { fresh, SHARED_ALLOCATIONS, SHARED_GPU_PROCESSES, type SharedAllocations, type SharedGpuProcesses } from './shared.js';

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

/** Which pod holds which GPU, from the kubelet's pod-resources API over its unix socket. */
export const kubeletCollector: CollectorDefinition = {
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
  validate(flags, enabled) {
    if (flags.bool('kubelet.enrich-labels') && !enabled.has('kubelet')) throw new ConfigError('--kubelet.enrich-labels needs --collector.kubelet (the pod labels come from the kubelet)');
    if (flags.bool('kubelet.process-attribution')) {
      const missing = [enabled.has('kubelet') ? '' : '--collector.kubelet', flags.bool('nvml.process-memory') ? '' : '--nvml.process-memory'].filter(Boolean);
      if (missing.length > 0) throw new ConfigError(`--kubelet.process-attribution needs ${missing.join(' and ')} (the processes come from NVML, their pods from the kubelet)`);
    }
  },
  create(deps, flags) {
    const socket = flags.string('kubelet.pod-resources-socket') ?? '/var/lib/kubelet/pod-resources/kubelet.sock';
    const extra = flags.list('kubelet.resource-names');
    const timeoutMs = flags.number('kubelet.timeout') ?? 2000;
    const intervalMs = flags.number('kubelet.interval') ?? 5000;
    const processes = flags.bool('kubelet.process-attribution') ? new ProcessAttribution(flags.string('kubelet.proc-path') ?? '/proc', deps.logger) : undefined;
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
        const gpus = (deps.shared.get('gpu.devices') as KnownGpu[] | undefined) ?? [];
        const allocations = gpuAllocations(flattenList(res), gpus, extra);
        for (const a of allocations) batch.info('ds_gpu_allocation_info', { ...a });
        // The GPU collector labels its series with these (--kubelet.enrich-labels) while they are fresh.
        deps.shared.set(SHARED_ALLOCATIONS, { allocations, readAtMs: deps.now(), maxAgeMs: 3 * intervalMs } satisfies SharedAllocations);
        if (processes) {
          // The processes of the GPU collector's last sample, while it keeps succeeding.
          const listed = fresh(deps.shared.get(SHARED_GPU_PROCESSES) as SharedGpuProcesses | undefined, deps.now());
          if (listed) await processes.write(batch, listed, allocations);
        }
      },
      async close() {
        client.close();
      },
    };
  },
};
