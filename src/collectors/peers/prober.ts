import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { describeError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Discovery, PeerTarget } from './discovery.js';
import { decodeProbe, encodeProbe, KIND_REPLY, KIND_REQUEST, PROBE_BYTES } from '../../probe/protocol.js';

export type ProbeProtocol = 'udp' | 'http';

export interface ProberOptions {
  readonly protocol: ProbeProtocol;
  /** One round: every known peer gets at most one probe per round (suspects first, then round-robin). */
  readonly intervalMs: number;
  /** A probe not answered within this is lost (clamped to 80 % of the interval). */
  readonly timeoutMs: number;
  /** Probes per round at most; the rest of the mesh is covered in the following rounds. */
  readonly maxPerInterval: number;
  /** Loss ratio over the last this-many finished probes of a peer. */
  readonly lossWindow: number;
  /** Re-resolve the peer list this often. */
  readonly refreshMs: number;
  /** Relative jitter of the round length (0.1 = ±10 %), so a cluster started at once does not probe in lockstep. */
  readonly jitter?: number;
  readonly discovery: Discovery;
  readonly logger: Logger;
  /** Monotonic nanoseconds (test seam). */
  readonly hrtime?: () => bigint;
  readonly random?: () => number;
}

/** What the prober knows about one peer. */
export interface PeerState {
  readonly target: PeerTarget;
  /** RTTs (seconds) measured since the last `drain`. */
  pending: number[];
  lastRttSeconds?: number;
  /** Finished probes, newest last: true answered, false lost. */
  outcomes: boolean[];
  consecutiveLost: number;
  answered: number;
  lost: number;
  /** Lost its last probe: probed first in the next round. */
  suspect: boolean;
}

interface InFlight {
  readonly peer: string;
  readonly sentNs: bigint;
  readonly target: PeerTarget;
  timer: NodeJS.Timeout;
}

/** Counters of what the prober did (tests, benchmark). */
export interface ProberStats {
  sent: number;
  answered: number;
  lost: number;
  /** Replies ignored: unknown or finished nonce (late, duplicate), another prober's, wrong source, wrong timestamp. */
  ignored: number;
  bytesSent: number;
  bytesReceived: number;
}

const MAX_PENDING = 1000;

/**
 * Measures the round-trip time to every peer exporter. Rounds run on their own timer,
 * independent of sampling; probes of a round are spread over the round. Replies are
 * matched by prober id + sequence number, source address and echoed send time; anything
 * else (late after the timeout, duplicate, foreign) is ignored.
 */
export class PeerProber {
  private readonly states = new Map<string, PeerState>();
  private targets: PeerTarget[] = [];
  private readonly inFlight = new Map<bigint, InFlight>();
  private readonly id = randomBytes(8).readBigUInt64BE(0);
  private seq = 0n;
  private cursor = 0;
  private sock4?: Socket;
  private sock6?: Socket;
  private roundTimer?: NodeJS.Timeout;
  private readonly sendTimers = new Set<NodeJS.Timeout>();
  private refreshTimer?: NodeJS.Timeout;
  private closed = false;
  private readonly hrtime: () => bigint;
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private refreshing?: Promise<void>;
  readonly stats: ProberStats = { sent: 0, answered: 0, lost: 0, ignored: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(private readonly opts: ProberOptions) {
    this.hrtime = opts.hrtime ?? process.hrtime.bigint;
    this.random = opts.random ?? Math.random;
    this.timeoutMs = Math.max(1, Math.min(opts.timeoutMs, opts.intervalMs * 0.8));
  }

  /** Resolves the peers, then starts rounds (the first one at once). */
  start(): void {
    const loop = () => {
      if (this.closed) return;
      this.round();
      const j = this.opts.jitter ?? 0.1;
      this.roundTimer = setTimeout(loop, this.opts.intervalMs * (1 - j + 2 * j * this.random()));
    };
    void this.refresh().finally(loop);
    const refreshLoop = () => {
      this.refreshTimer = setTimeout(() => void this.refresh().finally(() => !this.closed && refreshLoop()), this.opts.refreshMs);
    };
    refreshLoop();
  }

  /** Re-resolves the peer list now. */
  refresh(): Promise<void> {
    this.refreshing ??= this.opts.discovery
      .resolve()
      .then((targets) => this.setTargets(targets))
      .catch((err) => this.opts.logger.warn('peer discovery failed', { err: describeError(err) }))
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Replaces the peer list; peers that left are forgotten (their series disappear). */
  setTargets(targets: PeerTarget[]): void {
    this.targets = targets;
    const ids = new Set(targets.map((t) => t.id));
    for (const id of this.states.keys()) if (!ids.has(id)) this.states.delete(id);
    for (const t of targets) {
      const s = this.states.get(t.id);
      // A peer whose address changed is a new peer.
      if (!s || s.target.address !== t.address || s.target.port !== t.port) this.states.set(t.id, newState(t));
    }
    if (this.cursor >= targets.length) this.cursor = 0;
  }

  /** Current peers. */
  get peers(): readonly PeerTarget[] {
    return this.targets;
  }

  /** Per-peer state; `pending` RTTs are handed over and cleared. */
  drain(): Array<Readonly<PeerState> & { pendingRtts: number[] }> {
    return [...this.states.values()].map((s) => {
      const pendingRtts = s.pending;
      s.pending = [];
      return { ...s, pendingRtts };
    });
  }

  /** One round: which peers get a probe now, spread over the round. */
  round(): void {
    const n = this.targets.length;
    if (n === 0) return;
    const max = Math.max(1, this.opts.maxPerInterval);
    const picked: PeerTarget[] = [];
    const ids = new Set<string>();
    for (const t of this.targets) {
      if (picked.length >= max) break;
      if (this.states.get(t.id)?.suspect) {
        picked.push(t);
        ids.add(t.id);
      }
    }
    const limit = Math.min(max, n);
    for (let scanned = 0; picked.length < limit && scanned < n; scanned++) {
      const t = this.targets[this.cursor];
      this.cursor = (this.cursor + 1) % n;
      if (ids.has(t.id)) continue;
      picked.push(t);
      ids.add(t.id);
    }
    const spread = (this.opts.intervalMs * 0.9) / picked.length;
    picked.forEach((t, i) => {
      if (i === 0) return void this.probe(t);
      const timer = setTimeout(() => {
        this.sendTimers.delete(timer);
        if (!this.closed && this.states.has(t.id)) this.probe(t);
      }, i * spread);
      this.sendTimers.add(timer);
    });
  }

  /** Sends one probe to `t` now. */
  probe(t: PeerTarget): void {
    if (this.closed) return;
    if (this.opts.protocol === 'http') return void this.probeHttp(t);
    const seq = ++this.seq;
    const sock = this.socket(isIP(t.address) === 6 ? 6 : 4);
    const sentNs = this.hrtime();
    const buf = encodeProbe({ kind: KIND_REQUEST, proberId: this.id, seq, sentNs });
    const timer = setTimeout(() => this.finish(seq, undefined), this.timeoutMs);
    this.inFlight.set(seq, { peer: t.id, sentNs, target: t, timer });
    this.stats.sent++;
    this.stats.bytesSent += PROBE_BYTES;
    sock.send(buf, t.port, t.address, (err) => {
      // An unreachable peer shows up as lost probes, which is what the metrics are for.
      if (err) this.opts.logger.debug('probe send failed', { peer: t.id, err: describeError(err) });
    });
  }

  private async probeHttp(t: PeerTarget): Promise<void> {
    const seq = ++this.seq;
    const nonce = `${this.id.toString(36)}-${seq.toString(36)}`;
    const sentNs = this.hrtime();
    const timer = setTimeout(() => this.finish(seq, undefined), this.timeoutMs);
    this.inFlight.set(seq, { peer: t.id, sentNs, target: t, timer });
    this.stats.sent++;
    const host = isIP(t.address) === 6 ? `[${t.address}]` : t.address;
    try {
      const body = JSON.stringify({ nonce, t: Number(sentNs) });
      this.stats.bytesSent += body.length;
      const res = await fetch(`http://${host}:${t.port}/api/v1/probe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(this.timeoutMs) });
      const text = await res.text();
      this.stats.bytesReceived += text.length;
      const now = this.hrtime();
      const j = JSON.parse(text) as { nonce?: unknown; t?: unknown };
      if (res.status !== 200 || j.nonce !== nonce || j.t !== Number(sentNs)) {
        this.stats.ignored++;
        return;
      }
      this.finish(seq, now);
    } catch {
      // Timeouts and refused connections are lost probes; the timer finishes them.
    }
  }

  private socket(family: 4 | 6): Socket {
    const existing = family === 6 ? this.sock6 : this.sock4;
    if (existing) return existing;
    const s = createSocket(family === 6 ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    s.on('error', (err) => this.opts.logger.debug('probe socket error', { err: describeError(err) }));
    if (family === 6) this.sock6 = s;
    else this.sock4 = s;
    return s;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const now = this.hrtime();
    this.stats.bytesReceived += msg.length;
    const p = decodeProbe(msg);
    const f = p && p.kind === KIND_REPLY && p.proberId === this.id ? this.inFlight.get(p.seq) : undefined;
    const from = rinfo.address.replace(/^::ffff:/, '');
    if (!p || !f || from !== f.target.address.replace(/^::ffff:/, '') || rinfo.port !== f.target.port || p.sentNs !== f.sentNs) {
      this.stats.ignored++;
      return;
    }
    this.finish(p.seq, now);
  }

  /** Ends a probe: answered at `receivedNs`, or lost when undefined. A second finish is a no-op. */
  private finish(seq: bigint, receivedNs: bigint | undefined): void {
    const f = this.inFlight.get(seq);
    if (!f) return;
    this.inFlight.delete(seq);
    clearTimeout(f.timer);
    const s = this.states.get(f.peer);
    if (!s || s.target.address !== f.target.address || s.target.port !== f.target.port) return;
    const ok = receivedNs !== undefined;
    s.outcomes.push(ok);
    if (s.outcomes.length > this.opts.lossWindow) s.outcomes.shift();
    if (ok) {
      const rtt = Number(receivedNs - f.sentNs) / 1e9;
      s.lastRttSeconds = rtt;
      if (s.pending.length < MAX_PENDING) s.pending.push(rtt);
      s.consecutiveLost = 0;
      s.answered++;
      s.suspect = false;
      this.stats.answered++;
    } else {
      s.consecutiveLost++;
      s.lost++;
      s.suspect = true;
      this.stats.lost++;
    }
  }

  /** Stops probing and closes the sockets. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.roundTimer);
    clearTimeout(this.refreshTimer);
    for (const t of this.sendTimers) clearTimeout(t);
    for (const f of this.inFlight.values()) clearTimeout(f.timer);
    this.inFlight.clear();
    await Promise.all([this.sock4, this.sock6].map((s) => s && new Promise<void>((r) => s.close(() => r()))));
  }
}

function newState(target: PeerTarget): PeerState {
  return { target, pending: [], outcomes: [], consecutiveLost: 0, answered: 0, lost: 0, suspect: false };
}

/**
 * 1 while the peer answers: it stays up after one lost probe (a dropped datagram) and goes
 * down after two in a row, or after its first probes were all lost.
 */
export function peerUp(s: Pick<PeerState, 'consecutiveLost' | 'answered'>): boolean {
  return s.answered > 0 ? s.consecutiveLost < 2 : s.consecutiveLost === 0;
}
