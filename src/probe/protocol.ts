/**
 * The probe datagram: 32 bytes, answered by flipping one byte, so a reply is never larger
 * than the request (no amplification) and costs the responder one copy.
 *
 *   0..3   magic "DSXP"
 *   4      version (1)
 *   5      kind: 1 request, 2 reply
 *   6..7   zero
 *   8..15  prober id (random per prober)
 *   16..23 sequence number
 *   24..31 send time, prober-local monotonic nanoseconds
 */
export const PROBE_BYTES = 32;
const MAGIC = 0x44535850; // "DSXP"
export const KIND_REQUEST = 1;
export const KIND_REPLY = 2;

/** A decoded probe datagram. */
export interface ProbePacket {
  readonly kind: number;
  readonly proberId: bigint;
  readonly seq: bigint;
  readonly sentNs: bigint;
}

/** Encodes a probe datagram. */
export function encodeProbe(p: ProbePacket): Buffer {
  const b = Buffer.alloc(PROBE_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt8(1, 4);
  b.writeUInt8(p.kind, 5);
  b.writeBigUInt64BE(p.proberId, 8);
  b.writeBigUInt64BE(p.seq, 16);
  b.writeBigUInt64BE(p.sentNs, 24);
  return b;
}

/** Decodes a datagram; undefined for anything that is not a well-formed probe. */
export function decodeProbe(b: Buffer): ProbePacket | undefined {
  if (b.length !== PROBE_BYTES || b.readUInt32BE(0) !== MAGIC || b.readUInt8(4) !== 1) return undefined;
  const kind = b.readUInt8(5);
  if (kind !== KIND_REQUEST && kind !== KIND_REPLY) return undefined;
  return { kind, proberId: b.readBigUInt64BE(8), seq: b.readBigUInt64BE(16), sentNs: b.readBigUInt64BE(24) };
}

/** The reply to a request datagram (a copy with the kind flipped), or undefined when `b` is not a request. */
export function replyTo(b: Buffer): Buffer | undefined {
  if (b.length !== PROBE_BYTES || b.readUInt32BE(0) !== MAGIC || b.readUInt8(4) !== 1 || b.readUInt8(5) !== KIND_REQUEST) return undefined;
  const r = Buffer.from(b);
  r.writeUInt8(KIND_REPLY, 5);
  return r;
}

/** A nonce for the HTTP probe: the same fields, as text. */
export const HTTP_NONCE = /^[A-Za-z0-9_-]{1,64}$/;
