/**
 * A small strict DER reader for the parts of certificates and CRLs that node:crypto does not
 * expose: extensions (basicConstraints, keyUsage, extKeyUsage, subjectAltName URIs), validity,
 * names and serials, and the signed parts of a CRL. Throws DerError on malformed input.
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export interface DerNode {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the element. */
  end: number;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
} as const;

export class DerReader {
  constructor(readonly buf: Buffer) {}

  node(pos: number, limit: number = this.buf.length): DerNode {
    const b = this.buf;
    if (pos + 2 > limit) throw new DerError('truncated element');
    const tag = b[pos]!;
    if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
    const first = b[pos + 1]!;
    let p = pos + 2;
    let length = first;
    if (first >= 0x80) {
      const n = first & 0x7f;
      if (n === 0 || n > 4 || p + n > limit) throw new DerError('bad length');
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + b[p + i]!;
      if (length < 0x80 || (n > 1 && b[p] === 0)) throw new DerError('non-minimal length');
      p += n;
    }
    if (p + length > limit) throw new DerError('element overruns its container');
    return { tag, start: pos, contentStart: p, end: p + length };
  }

  /** The children of a constructed element, which must exactly fill it. */
  children(parent: DerNode): DerNode[] {
    const out: DerNode[] = [];
    let p = parent.contentStart;
    while (p < parent.end) {
      const n = this.node(p, parent.end);
      out.push(n);
      p = n.end;
    }
    return out;
  }

  expect(n: DerNode | undefined, tag: number, what: string): DerNode {
    if (!n || n.tag !== tag) throw new DerError(`expected ${what}`);
    return n;
  }

  content(n: DerNode): Buffer {
    return this.buf.subarray(n.contentStart, n.end);
  }

  whole(n: DerNode): Buffer {
    return this.buf.subarray(n.start, n.end);
  }

  oid(n: DerNode): string {
    this.expect(n, TAG.OID, 'an OBJECT IDENTIFIER');
    return decodeOid(this.content(n));
  }

  time(n: DerNode): Date {
    if (n.tag !== TAG.UTC_TIME && n.tag !== TAG.GENERALIZED_TIME) throw new DerError('expected a time');
    return decodeTime(this.content(n).toString('latin1'), n.tag === TAG.UTC_TIME);
  }

  boolean(n: DerNode): boolean {
    this.expect(n, TAG.BOOLEAN, 'a BOOLEAN');
    const c = this.content(n);
    if (c.length !== 1) throw new DerError('bad BOOLEAN');
    return c[0] !== 0;
  }

  /** A non-negative INTEGER small enough for a JS number. */
  smallInt(n: DerNode): number {
    this.expect(n, TAG.INTEGER, 'an INTEGER');
    const c = this.content(n);
    if (c.length === 0 || c.length > 6 || (c[0]! & 0x80) !== 0) throw new DerError('INTEGER out of range');
    return c.reduce((acc, x) => acc * 256 + x, 0);
  }
}

/** Longest arc accepted, in encoded bytes (20 bytes hold 140 bits: a 2.25 UUID arc needs 19). */
const MAX_ARC_BYTES = 20;

/** Dotted form of OID content. Arcs above 2^53 (the 128-bit UUID arcs of 2.25) are decoded as BigInt. */
export function decodeOid(c: Buffer): string {
  if (c.length === 0) throw new DerError('empty OID');
  const arcs: Array<number | bigint> = [];
  let v = 0;
  let big: bigint | undefined;
  let len = 0;
  for (let i = 0; i < c.length; i++) {
    const byte = c[i]!;
    if (++len > MAX_ARC_BYTES) throw new DerError('OID arc too large');
    if (big !== undefined) big = big * 128n + BigInt(byte & 0x7f);
    else if (v > (Number.MAX_SAFE_INTEGER - 127) / 128) big = BigInt(v) * 128n + BigInt(byte & 0x7f);
    else v = v * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      const arc = big ?? v;
      if (arcs.length === 0) {
        const first = arc < 40 ? 0 : arc < 80 ? 1 : 2;
        arcs.push(first, typeof arc === 'bigint' ? arc - BigInt(first * 40) : arc - first * 40);
      } else {
        arcs.push(arc);
      }
      v = 0;
      big = undefined;
      len = 0;
    } else if (i === c.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return arcs.join('.');
}

const UTC = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const GENERALIZED = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/;

export function decodeTime(s: string, utc: boolean): Date {
  const m = (utc ? UTC : GENERALIZED).exec(s);
  if (!m) throw new DerError('bad time');
  let year = Number(m[1]);
  if (utc) year += year >= 50 ? 1900 : 2000; // RFC 5280 4.1.2.5.1
  const t = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Number.isNaN(t)) throw new DerError('bad time');
  return new Date(t);
}
