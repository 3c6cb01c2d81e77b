/**
 * A minimal DER writer: just what the leaf template and the CA's small extensions need
 * (lengths, SEQUENCE, INTEGER, OID, times, strings, bit strings). Every function returns a
 * complete TLV. Reading DER lives in svid/x509/der.ts.
 */

export function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  let n = 0;
  for (const c of content) n += c.length;
  const head = n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 0;
  if (head === 0) {
    const body = Buffer.concat(content);
    return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
  }
  const out = Buffer.allocUnsafe(head + n);
  out[0] = tag;
  if (head === 2) out[1] = n;
  else if (head === 3) {
    out[1] = 0x81;
    out[2] = n;
  } else {
    out[1] = 0x82;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  }
  let p = head;
  for (const c of content) {
    c.copy(out, p);
    p += c.length;
  }
  return out;
}

export const seq = (...content: Buffer[]): Buffer => tlv(0x30, ...content);
export const set = (...content: Buffer[]): Buffer => tlv(0x31, ...content);
export const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const printableString = (s: string): Buffer => tlv(0x13, Buffer.from(s, 'latin1'));
export const ia5String = (tag: number, s: string): Buffer => tlv(tag, Buffer.from(s, 'latin1'));
export const NULL = Buffer.from([0x05, 0x00]);
export const TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** A non-negative INTEGER from big-endian magnitude bytes, minimally encoded. */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  const body = m.length > 0 && (m[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), m]) : m.length === 0 ? Buffer.from([0]) : m;
  return tlv(0x02, body);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('smallInteger takes a non-negative safe integer');
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Buffer.from(bytes.length ? bytes : [0]));
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => Number(a));
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  const push = (v: number) => {
    const chunk: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift((x & 0x7f) | 0x80);
    out.push(...chunk);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(0x06, Buffer.from(out));
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, "Z". */
export function derTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const rest = `${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(`${pad(y % 100)}${rest}`, 'latin1'));
  return tlv(0x18, Buffer.from(`${pad(y, 4)}${rest}`, 'latin1'));
}

export function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.from([unusedBits]), bytes);
}

const oidCache = new Map<string, Buffer>();

/** OID TLVs of extensions, encoded once. */
function cachedOid(dotted: string): Buffer {
  let b = oidCache.get(dotted);
  if (!b) {
    b = oid(dotted);
    oidCache.set(dotted, b);
  }
  return b;
}

/** One X.509 extension: SEQUENCE { extnID, critical (only when TRUE), extnValue OCTET STRING }. */
export function extension(extnId: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(cachedOid(extnId), TRUE, octetString(value)) : seq(cachedOid(extnId), octetString(value));
}

/** One RelativeDistinguishedName holding one attribute. */
export function rdn(oidDotted: string, value: Buffer): Buffer {
  return set(seq(oid(oidDotted), value));
}

/** An X.501 Name with one attribute per RDN, in the given order. */
export function x501Name(attrs: ReadonlyArray<readonly [oidDotted: string, value: Buffer]>): Buffer {
  return seq(...attrs.map(([o, v]) => rdn(o, v)));
}

export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads the TLV at `pos` (single-byte tags, definite lengths); throws RangeError on malformed input. */
export function readTlv(buf: Buffer, pos: number, limit = buf.length): Tlv {
  if (pos + 2 > limit) throw new RangeError('truncated DER');
  const tag = buf[pos]!;
  let len = buf[pos + 1]!;
  let p = pos + 2;
  if (len >= 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new RangeError('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new RangeError('DER element overruns its container');
  return { tag, start: pos, contentStart: p, end: p + len };
}

/** The child TLVs of the constructed element `parent`. */
export function readChildren(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}
