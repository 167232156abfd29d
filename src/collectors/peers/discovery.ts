import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ConfigError, describeError } from '../../core/errors.js';

/** One peer exporter to probe. */
export interface PeerTarget {
  /** The `peer` label: `host:port` as configured, or `address:port` for DNS discovery. */
  readonly id: string;
  /** The address probes go to. */
  readonly address: string;
  readonly port: number;
}

/** Name → addresses; the default follows the system resolver (`/etc/hosts`, DNS). */
export type Resolver = (name: string) => Promise<string[]>;

export const systemResolver: Resolver = async (name) => (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);

/** Where this exporter itself listens (to skip itself in the peer list). */
export interface SelfAddress {
  readonly host: string;
  readonly port: number;
}

/** Splits `host:port` / `[v6]:port`. */
export function parseHostPort(s: string, defaultPort?: number): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+))(?::(\d{1,5}))?$/.exec(s.trim());
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || port === undefined || !(port > 0 && port < 65536)) throw new ConfigError(`peer "${s}": expected host:port`);
  return { host: (m[1] ?? m[2])!, port };
}

const unmap = (a: string) => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
const hostPort = (a: string, port: number) => (isIP(a) === 6 ? `[${a}]:${port}` : `${a}:${port}`);

/** Addresses that reach this exporter: its listen host, or every interface address when it listens on all. */
export function ownAddresses(self: SelfAddress, interfaces: () => string[] = () => Object.values(networkInterfaces()).flat().map((i) => i!.address)): Set<string> {
  if (self.host === '0.0.0.0' || self.host === '::' || self.host === '') return new Set(interfaces().map(unmap));
  return new Set([unmap(self.host)]);
}

/** True when `address:port` is this exporter. A wildcard listener also answers on all of 127.0.0.0/8. */
export function isSelf(address: string, port: number, self: SelfAddress, own: Set<string>): boolean {
  if (port !== self.port) return false;
  const a = unmap(address);
  if (own.has(a)) return true;
  const wildcard = self.host === '0.0.0.0' || self.host === '::' || self.host === '';
  return wildcard && (a.startsWith('127.') || a === '::1');
}

export interface DiscoveryOptions {
  /** `--peers`: host:port entries. */
  readonly statics: readonly string[];
  /** `--peers.dns`: NAME or NAME:port (a headless Service); the port defaults to our own. */
  readonly dnsName?: string;
  readonly resolver: Resolver;
  readonly self: () => SelfAddress;
  readonly interfaces?: () => string[];
  readonly onError?: (what: string, err: string) => void;
}

/**
 * Resolves the configured peers into targets, without this exporter itself. A name that
 * fails to resolve keeps its previous addresses (a DNS hiccup does not empty the mesh).
 */
export class Discovery {
  private readonly last = new Map<string, PeerTarget[]>();
  constructor(private readonly opts: DiscoveryOptions) {
    for (const s of opts.statics) parseHostPort(s);
    if (opts.dnsName) parseHostPort(opts.dnsName, 1);
  }

  async resolve(): Promise<PeerTarget[]> {
    const self = this.opts.self();
    const own = ownAddresses(self, this.opts.interfaces);
    const out = new Map<string, PeerTarget>();
    const add = (t: PeerTarget) => {
      if (!isSelf(t.address, t.port, self, own) && !out.has(t.id)) out.set(t.id, t);
    };
    for (const s of this.opts.statics) {
      const { host, port } = parseHostPort(s);
      if (isIP(host)) {
        add({ id: hostPort(host, port), address: host, port });
        continue;
      }
      for (const t of await this.lookup(s, host, (addrs) => (addrs.length ? [{ id: `${host}:${port}`, address: addrs[0], port }] : []))) add(t);
    }
    if (this.opts.dnsName) {
      const { host, port } = parseHostPort(this.opts.dnsName, self.port);
      for (const t of await this.lookup(this.opts.dnsName, host, (addrs) => addrs.map((a) => ({ id: hostPort(unmap(a), port), address: unmap(a), port })))) add(t);
    }
    return [...out.values()];
  }

  private async lookup(key: string, host: string, toTargets: (addrs: string[]) => PeerTarget[]): Promise<PeerTarget[]> {
    try {
      const addrs = [...new Set(await this.opts.resolver(host))].sort();
      const targets = toTargets(addrs);
      this.last.set(key, targets);
      return targets;
    } catch (err) {
      this.opts.onError?.(host, describeError(err));
      return this.last.get(key) ?? [];
    }
  }
}
