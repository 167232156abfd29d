import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { buildApp, type BuiltApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/core/logger.js';

/** A port number free over TCP and UDP on every one of `hosts` (checked, then released). */
export async function freePort(hosts: string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (const host of hosts) {
      ok &&= await new Promise<boolean>((resolve) => {
        const srv = createServer();
        srv.once('error', () => resolve(false));
        srv.listen(port, host, () => srv.close(() => resolve(true)));
      });
      ok &&= await new Promise<boolean>((resolve) => {
        const s = createSocket('udp4');
        s.once('error', () => resolve(false));
        s.bind(port, host, () => s.close(() => resolve(true)));
      });
      if (!ok) break;
    }
    if (ok) return port;
  }
  throw new Error('no free port');
}

/** A real exporter listening on `host:port`, sampling in the background. */
export async function startExporter(host: string, port: number, flags: string[]): Promise<BuiltApp> {
  const config = loadConfig([`--web.listen-address=${host}:${port}`, '--no-collector.gpu', '--sample.interval=100ms', ...flags], {});
  const built = await buildApp(config, { logger: silentLogger, processMetrics: false });
  await built.app.listen({ host, port });
  built.start();
  return built;
}

/** Peer series of an exporter's /metrics, by peer. */
export async function peerView(b: BuiltApp): Promise<Map<string, { up?: number; loss?: number; count?: number; last?: number }>> {
  const text = (await b.app.inject({ url: '/metrics' })).body;
  const out = new Map<string, { up?: number; loss?: number; count?: number; last?: number }>();
  for (const line of text.split('\n')) {
    const m = /^(ds_comm_peer_up|ds_comm_peer_loss_ratio|ds_comm_peer_latency_seconds_count|ds_comm_peer_last_rtt_seconds)\{peer="([^"]+)"\} (\S+)$/.exec(line);
    if (!m) continue;
    const e = out.get(m[2]) ?? {};
    const key = { ds_comm_peer_up: 'up', ds_comm_peer_loss_ratio: 'loss', ds_comm_peer_latency_seconds_count: 'count', ds_comm_peer_last_rtt_seconds: 'last' }[m[1]] as 'up';
    e[key] = Number(m[3]);
    out.set(m[2], e);
  }
  return out;
}
