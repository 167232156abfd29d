import type { Collector, CollectorDefinition, CollectorDeps } from '../../core/collector.js';
import type { FlagValues } from '../../core/flags.js';
import type { Batch } from '../../core/store.js';
import type { Ports } from '../../ports/index.js';
import { Discovery, type Resolver, systemResolver } from './discovery.js';
import { peerUp, PeerProber, type ProbeProtocol } from './prober.js';

/** The peers flags, read once. */
export interface PeersConfig {
  /** `--peers`: host:port of static peers. */
  readonly statics: readonly string[];
  /** `--peers.dns`: a name whose addresses are the peers; undefined: none. */
  readonly dnsName?: string;
  readonly dnsRefreshMs: number;
  readonly protocol: ProbeProtocol;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Probes per round at most. */
  readonly max: number;
  readonly lossWindow: number;
  /** `--peers.echo`: answer UDP probes on the web port number (read by the HTTP probe endpoint). */
  readonly echo: boolean;
}

/** The ports the peers collector uses: the exporter's own address (to skip itself, and the default peer port). */
export type PeersDeps = CollectorDeps & Pick<Ports, 'self'>;

/** Writes the prober's current view into a batch. */
export function writePeers(batch: Batch, prober: PeerProber, onState?: (peer: string, up: boolean, lossRatio: number) => void): void {
  batch.gauge('ds_comm_peer_targets', {}, prober.peers.length);
  for (const s of prober.drain()) {
    const l = { peer: s.target.id };
    for (const rtt of s.pendingRtts) batch.observe('ds_comm_peer_latency_seconds', l, rtt);
    if (s.pendingRtts.length === 0 && s.answered > 0) batch.keep('ds_comm_peer_latency_seconds', l);
    if (s.outcomes.length === 0) continue;
    const up = peerUp(s);
    const loss = s.outcomes.filter((o) => !o).length / s.outcomes.length;
    batch.gauge('ds_comm_peer_up', l, up ? 1 : 0);
    batch.gauge('ds_comm_peer_loss_ratio', l, loss);
    onState?.(s.target.id, up, loss);
    if (s.lastRttSeconds !== undefined) batch.gauge('ds_comm_peer_last_rtt_seconds', l, s.lastRttSeconds);
  }
}

/** Test seams of the peers collector. */
export interface PeersSeams {
  readonly resolver?: Resolver;
  readonly interfaces?: () => string[];
}

/** The peers collector from its config; a no-op when no peer is configured. */
export function createPeersCollector(deps: PeersDeps, config: PeersConfig, seams: PeersSeams = {}): Collector & { prober?: PeerProber } {
  const { statics, dnsName } = config;
  if (statics.length === 0 && !dnsName) return { async sample() {} };
  const discovery = new Discovery({
    statics,
    dnsName,
    resolver: seams.resolver ?? systemResolver,
    interfaces: seams.interfaces,
    self: () => deps.self.get(),
    onError: (name, err) => deps.logger.warn('peer name did not resolve; keeping its last addresses', { name, err }),
  });
  const prober = new PeerProber({
    protocol: config.protocol,
    intervalMs: config.intervalMs,
    timeoutMs: config.timeoutMs,
    maxPerInterval: config.max,
    lossWindow: config.lossWindow,
    refreshMs: config.dnsRefreshMs,
    discovery,
    logger: deps.logger,
  });
  prober.start();
  // Log reachability when it changes, not on every sample.
  const lastUp = new Map<string, boolean>();
  const onState = (peer: string, up: boolean, loss: number) => {
    const prev = lastUp.get(peer);
    lastUp.set(peer, up);
    if (prev === undefined ? !up : prev !== up) {
      if (up) deps.logger.info('peer up', { peer });
      else deps.logger.warn('peer down', { peer, loss_ratio: Number(loss.toFixed(3)) });
    }
  };
  return {
    prober,
    async sample(batch) {
      writePeers(batch, prober, onState);
    },
    close: () => prober.close(),
  };
}

/** Round-trip latency to the other exporters of the cluster. */
export const peersCollector: CollectorDefinition<PeersConfig, PeersDeps> = {
  name: 'peers',
  description: 'round-trip latency, reachability and loss to the peer exporters (--peers, --peers.dns)',
  defaultEnabled: true,
  flags: [
    { name: 'peers', type: 'list', help: 'Peer exporters to probe: host:port,... (repeatable).' },
    { name: 'peers.dns', type: 'string', help: 'Name whose addresses are the peer exporters (e.g. a headless Service), NAME or NAME:port; the port defaults to ours. Re-resolved every --peers.dns.refresh.' },
    { name: 'peers.dns.refresh', type: 'duration', default: '30s', min: 1000, help: 'How often peer names are re-resolved.' },
    { name: 'peers.protocol', type: 'enum', choices: ['udp', 'http'], default: 'udp', help: 'udp: 32-byte datagrams to the peer\'s web port number over UDP; http: POST /api/v1/probe (where UDP is blocked).' },
    { name: 'peers.interval', type: 'duration', default: '5s', min: 100, help: 'Length of a probe round (jittered by ±10 %); each peer gets at most one probe per round.' },
    { name: 'peers.timeout', type: 'duration', default: '1s', min: 1, help: 'A probe not answered within this is lost (at most 80 % of --peers.interval).' },
    { name: 'peers.max', type: 'int', default: '100', min: 1, max: 100_000, help: 'Probes per round at most; larger meshes are covered round-robin over several rounds (lost peers are re-probed first).' },
    { name: 'peers.loss-window', type: 'int', default: '20', min: 1, max: 10_000, help: 'ds_comm_peer_loss_ratio is computed over this many last probes of a peer.' },
    { name: 'peers.echo', type: 'bool', default: true, help: 'Answer UDP probes on the web listen port number (the HTTP probe endpoint is always served).' },
  ],
  configure(flags: FlagValues): PeersConfig {
    return {
      statics: flags.list('peers'),
      dnsName: flags.string('peers.dns') || undefined,
      dnsRefreshMs: flags.requireNumber('peers.dns.refresh'),
      protocol: flags.requireString('peers.protocol') as ProbeProtocol,
      intervalMs: flags.requireNumber('peers.interval'),
      timeoutMs: flags.requireNumber('peers.timeout'),
      max: flags.requireNumber('peers.max'),
      lossWindow: flags.requireNumber('peers.loss-window'),
      echo: flags.bool('peers.echo'),
    };
  },
  create(deps, config) {
    return createPeersCollector(deps, config);
  },
};
