/**
 * The few protobuf wire-format primitives the exposition needs (varints, zigzag, doubles,
 * strings, nested messages), written into one growing buffer. Integers are JavaScript
 * numbers: exact up to 2^53, which every count and delta the exporter writes stays below.
 */

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;

/** Bytes of a varint holding `n` (a non-negative integer below 2^53). */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A protobuf message under construction; nested messages are opened with `fork` and closed with `join`. */
export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;
  /** Start offsets of the nested messages still open, with their field numbers. */
  private readonly open: number[] = [];

  constructor(initialSize = 4096) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A bare varint of a non-negative integer below 2^53. */
  varint(n: number): this {
    this.ensure(8);
    if (n < 0x80000000) {
      // The 32-bit path: shifts are exact here.
      while (n >= 0x80) {
        this.buf[this.pos++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
      this.buf[this.pos++] = n;
      return this;
    }
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
    return this;
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** An unsigned integer field (uint32, uint64, enum, bool). */
  uint(field: number, n: number): this {
    this.tag(field, WIRE_VARINT);
    return this.varint(n);
  }

  /** A zigzag-encoded signed integer field (sint32, sint64). */
  sint(field: number, n: number): this {
    this.tag(field, WIRE_VARINT);
    return this.varint(zigzag(n));
  }

  /** A double field. */
  double(field: number, v: number): this {
    this.tag(field, WIRE_FIXED64);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** A string field, UTF-8 encoded (lone surrogates become U+FFFD, so the bytes are always valid UTF-8). */
  string(field: number, s: string): this {
    this.tag(field, WIRE_LENGTH);
    const len = s.length;
    // Short ASCII strings (label names and most values) are copied here: a call into
    // Buffer#write costs more than the loop.
    if (len < 128) {
      this.ensure(len + 1);
      const buf = this.buf;
      const at = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + i] = c;
      }
      if (i === len) {
        buf[this.pos] = len;
        this.pos = at + len;
        return this;
      }
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
    return this;
  }

  /** Raw bytes copied as they are (an already encoded run of fields). */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** Opens a nested message (or a packed repeated field) as `field`; close it with `join`. */
  fork(field: number): this {
    this.tag(field, WIRE_LENGTH);
    this.open.push(this.pos);
    return this;
  }

  /** Closes the innermost `fork`: its length goes in front of its content. */
  join(): this {
    const start = this.open.pop();
    if (start === undefined) throw new Error('ProtoWriter.join without fork');
    const len = this.pos - start;
    const size = varintSize(len);
    this.ensure(size);
    this.buf.copyWithin(start + size, start, this.pos);
    let n = len;
    let p = start;
    while (n >= 0x80) {
      this.buf[p++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[p] = n;
    this.pos += size;
    return this;
  }

  /** A length prefix for a delimited stream: the varint length of everything written since `from`, inserted at `from`. */
  delimit(from: number): this {
    this.open.push(from);
    return this.join();
  }

  /** The bytes written, copied out; the writer can be reused after `reset`. */
  finish(): Buffer {
    if (this.open.length) throw new Error('ProtoWriter.finish with an open fork');
    return Buffer.from(this.buf.subarray(0, this.pos));
  }

  /** The bytes written from `from` on, copied into a plain byte array (cheaper than a Buffer for many small ones). */
  copy(from = 0): Uint8Array {
    const out = new Uint8Array(this.pos - from);
    out.set(this.buf.subarray(from, this.pos));
    return out;
  }

  /** A field holding an already encoded message of `len` bytes (its length is known: no `fork`/`join`). */
  header(field: number, len: number): this {
    this.tag(field, WIRE_LENGTH);
    return this.varint(len);
  }

  /** Forgets everything written. */
  reset(): this {
    this.pos = 0;
    this.open.length = 0;
    return this;
  }
}

/** Zigzag mapping of a signed integer (|n| < 2^52) onto an unsigned one: 0, -1, 1, -2 → 0, 1, 2, 3. */
export function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}
