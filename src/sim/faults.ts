/**
 * GPU faults the simulator can inject (`--simulate.fault`), so that dashboards, alerts and
 * tests see each health signal without broken hardware. Syntax, comma-separated or
 * repeated: `gpu<N>:<fault>[@<delay>]`, e.g. `gpu3:xid79,gpu1:reset@30s`.
 */
import { ConfigError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';

/** The faults, and what each does to the simulated GPU. */
export const SIM_FAULTS = {
  lost: 'falls off the bus: reports XID 79, then stops answering (verdict lost)',
  reset: 'the driver asks for a GPU reset (recovery action gpu_reset)',
  reboot: 'the driver asks for a node reboot (recovery action node_reboot)',
  drain_p2p: 'the driver asks to drain peer-to-peer traffic (recovery action drain_p2p)',
  drain_and_reset: 'the driver asks to drain and reset (recovery action drain_and_reset)',
  recover_imex: 'the driver asks to recover the IMEX domain (recovery action recover_imex_domain)',
  row_remap_pending: 'an uncorrectable error remapped a row; the remap waits for a GPU reset',
  row_remap_failed: 'a row remapping failed (RMA)',
  retired_pages_pending: 'a double-bit error retired a page; the retirement waits for a reboot',
  nvlink_errors: 'CRC and replay errors keep rising on NVLink link 0',
  pcie_replays: 'the PCIe replay counter keeps rising',
  hot: 'runs past its slowdown temperature (thermal margin below 0, HW thermal slowdown)',
  'xid<N>': 'reports XID N once (any code 1-65535, listed in the XID catalog or not)',
} as const;

export type SimFaultKind = Exclude<keyof typeof SIM_FAULTS, 'xid<N>'> | 'xid';

/** One fault: which GPU, what, from which simulated second. */
export interface SimFault {
  readonly gpu: number;
  readonly kind: SimFaultKind;
  /** The XID of an `xid` fault. */
  readonly xid?: number;
  readonly atSeconds: number;
}

const SPEC = /^gpu(\d{1,4}):([a-z_0-9]+)(?:@(.+))?$/;

/**
 * Parses `--simulate.fault` values. Throws a ConfigError naming the bad entry and what is
 * allowed: a malformed entry, an unknown fault, a GPU the host does not have, a bad delay.
 */
export function parseSimFaults(specs: readonly string[], gpus: number): SimFault[] {
  const out: SimFault[] = [];
  const known = Object.keys(SIM_FAULTS).join(', ');
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === '') continue;
    const bad = (why: string) => new ConfigError(`--simulate.fault ${JSON.stringify(spec.slice(0, 80))}: ${why}`);
    const m = SPEC.exec(spec);
    if (!m) throw bad('expected gpu<N>:<fault>[@<delay>], e.g. gpu3:xid79 or gpu1:reset@30s');
    const gpu = Number(m[1]);
    if (gpu >= gpus) throw bad(`GPU ${gpu} does not exist (--simulate.gpus=${gpus}: GPUs 0-${gpus - 1})`);
    let kind: SimFaultKind;
    let xid: number | undefined;
    const x = /^xid(\d+)$/.exec(m[2]);
    if (x) {
      xid = Number(x[1]);
      if (!(xid >= 1 && xid <= 65535)) throw bad(`XID ${x[1]} is out of range 1-65535`);
      kind = 'xid';
    } else if (m[2] in SIM_FAULTS && m[2] !== 'xid<N>') kind = m[2] as SimFaultKind;
    else throw bad(`unknown fault ${JSON.stringify(m[2])} (known: ${known})`);
    let atSeconds = 0;
    if (m[3] !== undefined) {
      let ms: number;
      try {
        ms = parseDuration(m[3]);
      } catch (err) {
        throw bad(`delay ${JSON.stringify(m[3])} is not a duration like 30s or 5m (${(err as Error).message})`);
      }
      if (!(ms >= 0) || ms > 7 * 24 * 3600 * 1000) throw bad(`delay ${m[3]} is out of range 0s-7d (168h)`);
      atSeconds = ms / 1000;
    }
    out.push({ gpu, kind, xid, atSeconds });
  }
  return out;
}
