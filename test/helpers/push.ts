import type { BuiltApp } from '../../src/app.js';

/** POSTs `body` (JSON-encoded unless already a string) to the app's push endpoint. */
export function postPush(b: BuiltApp, body: unknown, headers: Record<string, string> = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  return b.app.inject({ method: 'POST', url: '/api/v1/push', payload, headers: { 'content-type': 'application/json', ...headers } });
}

/** Samples every collector once, then renders /metrics. */
export async function sampledMetrics(b: BuiltApp): Promise<string> {
  await b.scheduler.sampleAll();
  return (await b.app.inject({ url: '/metrics' })).body;
}

/** A settable clock starting at `t0` ms: `c.t` moves it, `c.now` reads it. */
export function settableClock(t0: number) {
  const c = { t: t0, now: () => c.t };
  return c;
}
