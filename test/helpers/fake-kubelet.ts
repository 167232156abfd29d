import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ROOT } from './procs.js';

/** A List answer, or an error the fake kubelet answers with instead. */
export type FakeAnswer = object | { error: grpc.status; details: string };

/** A fake kubelet speaking the v1 pod-resources protocol on a unix socket. */
export interface FakeKubelet {
  readonly socket: string;
  /** A fresh socket path in the same temporary directory (for missing or foreign sockets). */
  path(name: string): string;
  /** List calls answered so far. */
  readonly calls: number;
  /** What the next List calls answer: a function of the call number, or one fixed answer. */
  answer(a: FakeAnswer | ((call: number) => FakeAnswer)): void;
  close(): Promise<void>;
}

export async function startFakeKubelet(): Promise<FakeKubelet> {
  const dir = mkdtempSync(join(tmpdir(), 'dsx-kubelet-'));
  const socket = join(dir, 'kubelet.sock');
  const def = protoLoader.loadSync(join(ROOT, 'assets/kubelet/podresources.proto'), { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: { service: grpc.ServiceDefinition } } };
  const server = new grpc.Server();
  let calls = 0;
  let answer: (call: number) => FakeAnswer = () => ({ pod_resources: [] });
  server.addService(pkg.v1.PodResourcesLister.service, {
    List: (_call: unknown, cb: grpc.sendUnaryData<object>) => {
      const a = answer(calls++);
      if ('error' in a) cb({ code: a.error, details: a.details } as grpc.ServiceError, null);
      else cb(null, a);
    },
  });
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  return {
    socket,
    path: (name) => join(dir, name),
    get calls() {
      return calls;
    },
    answer(a) {
      answer = typeof a === 'function' ? (a as (call: number) => FakeAnswer) : () => a;
    },
    async close() {
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One pod whose containers hold devices: `{ container: [resource, ids] }` or `{ container: ids }` (nvidia.com/gpu). */
export function fakePod(namespace: string, name: string, containers: Record<string, string[] | [string, string[]]>): object {
  return {
    name,
    namespace,
    containers: Object.entries(containers).map(([c, d]) => {
      const [resource_name, device_ids] = d.length === 2 && Array.isArray(d[1]) ? (d as [string, string[]]) : ['nvidia.com/gpu', d as string[]];
      return { name: c, devices: [{ resource_name, device_ids }] };
    }),
  };
}
