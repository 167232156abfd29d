import type { FastifyPluginAsync } from 'fastify';
import type { Labels } from '../core/series.js';
import type { SampleStore } from '../core/store.js';

/** JSON view of the current samples (`/api/v1/snapshot`). */
export interface Snapshot {
  readonly timestamp: number;
  readonly metrics: Record<string, Array<{ labels: Labels; value: number; count?: number; sum?: number }>>;
}

const cache = new WeakMap<SampleStore, { generation: number; snapshot: Snapshot }>();

/** Current values of `store` as JSON (a histogram's value is its mean), built at most once per change. */
export function snapshotOf(store: SampleStore): Snapshot {
  const hit = cache.get(store);
  if (hit?.generation === store.generation) return hit.snapshot;
  const metrics: Snapshot['metrics'] = {};
  for (const s of store.series()) {
    const list = (metrics[s.family.def.name] ??= []);
    list.push(s.family.def.type === 'histogram' ? { labels: s.labels, value: s.count ? s.sum / s.count : 0, count: s.count, sum: s.sum } : { labels: s.labels, value: s.value });
  }
  const snapshot = { timestamp: store.now() / 1000, metrics };
  cache.set(store, { generation: store.generation, snapshot });
  return snapshot;
}

/** `GET /api/v1/snapshot`: the current values as JSON, for the landing page's charts and readers without Prometheus. */
export const snapshotPlugin: FastifyPluginAsync<{ store: SampleStore }> = async (app, { store }) => {
  app.get('/api/v1/snapshot', async (_req, reply) => reply.header('cache-control', 'no-store').send(snapshotOf(store)));
};
