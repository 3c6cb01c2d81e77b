/**
 * The little DER reading the bundle layer needs: the extent of one element (to split concatenated
 * certificates) and the two integers of a PKCS#1 RSAPublicKey. Returns undefined on malformed input.
 */

export interface Tlv {
  tag: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the element. */
  end: number;
}

/** Reads the element at `offset` (single-byte tags, definite lengths up to 4 length bytes). */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv | undefined {
  if (offset + 2 > limit) return undefined;
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = buf[offset + 1]!;
  let pos = offset + 2;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || pos + n > limit) return undefined; // indefinite or absurd length
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos + i]!;
    pos += n;
    if (length < 0x80 || (n > 1 && buf[offset + 2] === 0)) return undefined; // not minimal: not DER
  }
  const end = pos + length;
  if (end > limit) return undefined;
  return { tag, contentStart: pos, end };
}

/** Splits concatenated top-level DER elements; undefined if the bytes are not exactly such a sequence. */
export function splitDer(buf: Uint8Array): Array<{ start: number; end: number; tag: number }> | undefined {
  const out: Array<{ start: number; end: number; tag: number }> = [];
  let pos = 0;
  while (pos < buf.length) {
    const tlv = readTlv(buf, pos);
    if (!tlv) return undefined;
    out.push({ start: pos, end: tlv.end, tag: tlv.tag });
    pos = tlv.end;
  }
  return out;
}

/** Reads RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } as unsigned big-endian bytes. */
export function readRsaPublicKey(der: Uint8Array): { n: Buffer; e: Buffer } | undefined {
  const seq = readTlv(der, 0);
  if (!seq || seq.tag !== 0x30 || seq.end !== der.length) return undefined;
  const n = readTlv(der, seq.contentStart, seq.end);
  if (!n || n.tag !== 0x02) return undefined;
  const e = readTlv(der, n.end, seq.end);
  if (!e || e.tag !== 0x02 || e.end !== seq.end) return undefined;
  return { n: unsigned(der, n.contentStart, n.end), e: unsigned(der, e.contentStart, e.end) };
}

function unsigned(der: Uint8Array, start: number, end: number): Buffer {
  let s = start;
  while (s < end - 1 && der[s] === 0) s++;
  return Buffer.from(der.subarray(s, end));
}
