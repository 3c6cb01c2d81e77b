/**
 * PKCS#10 certification requests, fast path: building the minimal CSR an agent sends for a
 * workload key (empty subject, no attributes, signed with the key), and checking one on the server
 * (structure, then the signature with the request's own key) with node:crypto. Only the key is
 * taken from a CSR. @peculiar/x509 parses CSRs too but at a few thousand a second; the server checks
 * a CSR for every SVID it signs, so this walks the DER itself (cross-checked in tests).
 */
import { type KeyObject, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { WritError } from '../errors.js';
import { NULL, bitString, oid, readChildren, readTlv, seq, tlv } from './asn1.js';
import { LeafKey } from './leaf.js';

export const MAX_CSR_BYTES = 16 * 1024;

/** Signature algorithms accepted on CSRs: OID → [hash, key types]. */
const CSR_ALGS: Record<string, { hash: string; keys: readonly string[]; pss?: boolean }> = {
  '1.2.840.10045.4.3.2': { hash: 'sha256', keys: ['ec'] },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keys: ['ec'] },
  '1.2.840.10045.4.3.4': { hash: 'sha512', keys: ['ec'] },
  '1.2.840.113549.1.1.11': { hash: 'sha256', keys: ['rsa'] },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keys: ['rsa'] },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keys: ['rsa'] },
};
const OID_BY_DER = new Map(Object.keys(CSR_ALGS).map((o) => [oid(o).toString('hex'), o]));
const PSS_OID = oid('1.2.840.113549.1.1.10').toString('hex');

function bad(why: string, cause?: unknown): WritError {
  return new WritError('ERR_CA_CSR', `The CSR ${why}.`, cause === undefined ? {} : { cause });
}

/** Checks the request's signature with its own key and returns that key; every other field is ignored. */
export function verifyCsrDer(der: Uint8Array): LeafKey {
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw bad(`must be 1 to ${MAX_CSR_BYTES} bytes of DER`);
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  let info: Buffer, spki: Buffer, algHex: string, sig: Buffer;
  try {
    const root = readTlv(buf, 0);
    if (root.tag !== 0x30 || root.end !== buf.length) throw new RangeError('not one SEQUENCE');
    const [infoT, algT, sigT, extra] = readChildren(buf, root);
    if (!infoT || !algT || !sigT || extra || infoT.tag !== 0x30 || algT.tag !== 0x30 || sigT.tag !== 0x03) throw new RangeError('bad shape');
    const parts = readChildren(buf, infoT);
    const version = parts[0];
    if (!version || version.tag !== 0x02 || version.end - version.contentStart !== 1 || buf[version.contentStart] !== 0) throw new RangeError('bad version');
    const spkiT = parts[2];
    if (!parts[1] || parts[1].tag !== 0x30 || !spkiT || spkiT.tag !== 0x30) throw new RangeError('bad info');
    info = buf.subarray(infoT.start, infoT.end);
    spki = buf.subarray(spkiT.start, spkiT.end);
    const algOid = readChildren(buf, algT)[0];
    if (!algOid || algOid.tag !== 0x06) throw new RangeError('bad algorithm');
    algHex = buf.subarray(algOid.start, algOid.end).toString('hex');
    if (buf[sigT.contentStart] !== 0) throw new RangeError('bad signature bits');
    sig = buf.subarray(sigT.contentStart + 1, sigT.end);
  } catch (cause) {
    throw bad('is not a DER PKCS#10 certification request', cause);
  }
  const { key, publicKey: pub } = LeafKey.parse(spki);
  if (algHex === PSS_OID) throw bad('is signed with RSASSA-PSS, which is not accepted for CSRs; use PKCS#1 v1.5 or ECDSA');
  const algName = OID_BY_DER.get(algHex);
  const alg = algName ? CSR_ALGS[algName] : undefined;
  if (!alg) throw bad('is signed with an algorithm that is not accepted (ECDSA or RSA PKCS#1 v1.5 with SHA-2)');
  if (!alg.keys.includes(pub.asymmetricKeyType ?? '')) throw bad('signature algorithm does not match its key type');
  let ok = false;
  try {
    ok = nodeVerify(alg.hash, info, pub, sig);
  } catch {
    ok = false;
  }
  if (!ok) throw bad('signature does not verify with its own public key');
  return key;
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const RSA_SHA256 = seq(oid('1.2.840.113549.1.1.11'), NULL);

/**
 * A minimal CSR for `spki` signed by `privateKey` (EC → ECDSA-SHA256, RSA → PKCS#1 v1.5 SHA-256):
 * version 0, empty subject, no attributes. What the agent sends; the server needs nothing more.
 */
export function buildCsrDer(spki: Buffer, privateKey: KeyObject): Buffer {
  const info = seq(Buffer.from([0x02, 0x01, 0x00]), seq(), spki, tlv(0xa0));
  const ec = privateKey.asymmetricKeyType === 'ec';
  const signature = nodeSign('sha256', info, privateKey);
  return seq(info, ec ? ECDSA_SHA256 : RSA_SHA256, bitString(signature));
}
