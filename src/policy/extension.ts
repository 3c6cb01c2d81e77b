/**
 * The delegation record in an X509-SVID: one non-critical extension (so SPIFFE validators that
 * do not know it still accept the SVID), its OID under the UUID arc 2.25 (ITU-T X.667: no
 * registration needed), its value the DER UTF8String of the record's canonical JSON (RFC 8785):
 *
 *   Extension ::= SEQUENCE { extnID DELEGATION_OID, extnValue OCTET STRING (UTF8String (json)) }
 *
 * The OID is 2.25.<UUID f93b55a9-bc87-445b-a7a9-0e02b353fdff as an integer>, generated once for
 * writ. Its second arc is a 128-bit number, which not every X.509 stack can hold:
 * - OpenSSL (so Node's X509Certificate and nginx) and writ's own parseX509Svid read it, and
 *   `openssl verify -x509_strict` accepts an SVID carrying it (tests); so does Python
 *   `cryptography` 48 (checked once by hand).
 * - Go's crypto/x509, by its source (parser.go parseExtension), refuses the whole certificate
 *   ("x509: malformed extension OID field"): cryptobyte's ReadASN1ObjectIdentifier allows arcs
 *   below 2^31 only. go-spiffe peers cannot parse such an SVID; if they matter, DELEGATION_OID
 *   must move to a small-arc OID (an IANA Private Enterprise Number), the only change here.
 * - @peculiar/x509 1.x `new Extension(oid, …)` silently writes "2.25" without the UUID arc:
 *   splice `DelegationExtension.der` into the TBS instead.
 */
import { X509Certificate } from 'node:crypto';
import { WritError } from '../errors.js';
import { DerError, DerReader, TAG } from '../svid/x509/der.js';
import { type DelegationRecord, MAX_DELEGATION_BYTES, delegationJson, parseDelegationJson } from './delegation.js';

/** UUID f93b55a9-bc87-445b-a7a9-0e02b353fdff under the 2.25 arc. */
export const DELEGATION_UUID = 'f93b55a9-bc87-445b-a7a9-0e02b353fdff';
export const DELEGATION_OID = '2.25.331285853917820092129506942700964019711';

const UTF8_STRING = 0x0c;

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/** DER content bytes of a dotted OID; arcs of any size (BigInt). */
export function encodeOidContent(oid: string): Buffer {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(oid)) throw new WritError('ERR_INPUT_INVALID', 'The OID is not in dotted decimal form.');
  const arcs = oid.split('.').map((a) => BigInt(a));
  const [first, second] = arcs as [bigint, bigint];
  if (first < 2n && second > 39n) throw new WritError('ERR_INPUT_INVALID', 'The OID second arc is out of range.');
  const out: number[] = [];
  for (const arc of [first * 40n + second, ...arcs.slice(2)]) {
    const group: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) group.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...group);
  }
  return Buffer.from(out);
}

const OID_CONTENT = encodeOidContent(DELEGATION_OID);

export interface DelegationExtension {
  oid: string;
  critical: false;
  /** The extension value (what extnValue's OCTET STRING holds): UTF8String of the canonical JSON. */
  valueDer: Buffer;
  /** The whole Extension SEQUENCE, ready to splice into a TBSCertificate's extensions. */
  der: Buffer;
}

/** Validates `record` and encodes it as the delegation extension. */
export function encodeDelegationExtension(record: DelegationRecord): DelegationExtension {
  const valueDer = tlv(UTF8_STRING, Buffer.from(delegationJson(record), 'utf8'));
  const der = tlv(TAG.SEQUENCE, Buffer.concat([tlv(TAG.OID, OID_CONTENT), tlv(TAG.OCTET_STRING, valueDer)]));
  return { oid: DELEGATION_OID, critical: false, valueDer, der };
}

/** Decodes an extension value (the UTF8String DER) into a validated record. */
export function decodeDelegationValue(valueDer: Uint8Array): DelegationRecord {
  const buf = Buffer.from(valueDer);
  let json: string;
  try {
    const r = new DerReader(buf);
    const n = r.expect(r.node(0), UTF8_STRING, 'a UTF8String');
    if (n.end !== buf.length) throw new DerError('trailing bytes');
    if (n.end - n.contentStart > MAX_DELEGATION_BYTES) throw new WritError('ERR_DELEGATION_TOO_LARGE', `The delegation extension is longer than ${MAX_DELEGATION_BYTES} bytes.`);
    json = new TextDecoder('utf-8', { fatal: true }).decode(r.content(n));
  } catch (e) {
    if (e instanceof WritError) throw e;
    throw new WritError('ERR_DELEGATION_EXTENSION', 'The delegation extension is not a DER UTF8String of UTF-8 text.', { cause: e });
  }
  return parseDelegationJson(json);
}

function toDer(cert: X509Certificate | Uint8Array | string): Buffer {
  if (cert instanceof X509Certificate) return cert.raw;
  if (typeof cert === 'string') return new X509Certificate(cert).raw;
  return Buffer.from(cert);
}

/** The raw value of the delegation extension of a certificate, or undefined when it has none. */
function findExtensionValue(der: Buffer): Buffer | undefined {
  const r = new DerReader(der);
  const root = r.expect(r.node(0), TAG.SEQUENCE, 'Certificate');
  const tbs = r.children(r.expect(r.children(root)[0], TAG.SEQUENCE, 'TBSCertificate'));
  let found: Buffer | undefined;
  for (const n of tbs) {
    if (n.tag !== 0xa3) continue; // [3] EXPLICIT Extensions
    const [list] = r.children(n);
    for (const ext of r.children(r.expect(list, TAG.SEQUENCE, 'Extensions'))) {
      const parts = r.children(r.expect(ext, TAG.SEQUENCE, 'Extension'));
      const id = r.expect(parts[0], TAG.OID, 'extnID');
      if (!r.content(id).equals(OID_CONTENT)) continue;
      if (found) throw new DerError('the delegation extension appears twice');
      const value = parts[parts.length - 1];
      found = r.content(r.expect(value, TAG.OCTET_STRING, 'extnValue'));
    }
  }
  return found;
}

/**
 * The delegation record carried by a certificate (DER bytes, PEM text or X509Certificate), or
 * undefined when it carries none. A malformed extension is ERR_DELEGATION_EXTENSION, an invalid
 * record ERR_DELEGATION_INVALID: a certificate that tries to carry one and fails is not ignored.
 */
export function decodeDelegationFromCertificate(cert: X509Certificate | Uint8Array | string): DelegationRecord | undefined {
  let value: Buffer | undefined;
  try {
    value = findExtensionValue(toDer(cert));
  } catch (e) {
    throw new WritError('ERR_DELEGATION_EXTENSION', 'The certificate could not be read for its delegation extension.', { cause: e });
  }
  return value === undefined ? undefined : decodeDelegationValue(value);
}
