/** What the SVID rules need from a certificate, read from its DER once and cached per certificate object. */
import type { X509Certificate } from 'node:crypto';
import { DerError, DerReader, TAG } from './der.js';

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  certificatePolicies: '2.5.29.32',
  crlDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

/**
 * Extensions this verifier understands; a certificate with any other extension marked critical is
 * refused (RFC 5280 §4.2). Name constraints are not enforced, so a critical one is refused too.
 */
export const UNDERSTOOD_CRITICAL: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.certificatePolicies,
]);

export const KEY_USAGE_NAMES = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsageName = (typeof KEY_USAGE_NAMES)[number];

export interface CertInfo {
  /** DER INTEGER content bytes of the serial number. */
  serial: Buffer;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Map<string, { critical: boolean; value: Buffer }>;
  basicConstraints?: { ca: boolean; pathLen?: number };
  keyUsage?: Set<KeyUsageName>;
  extKeyUsage?: string[];
  /** URI SANs (absent extension: empty). */
  uris: string[];
}

const cache = new WeakMap<X509Certificate, CertInfo>();

/** Reads `cert` (cached); throws DerError if the DER does not have the shape RFC 5280 gives it. */
export function certInfo(cert: X509Certificate): CertInfo {
  let info = cache.get(cert);
  if (!info) {
    info = readCertificate(cert.raw);
    cache.set(cert, info);
  }
  return info;
}

export function readCertificate(der: Buffer): CertInfo {
  const r = new DerReader(der);
  const root = r.expect(r.node(0), TAG.SEQUENCE, 'Certificate');
  const [tbsNode] = r.children(root);
  const tbs = r.children(r.expect(tbsNode, TAG.SEQUENCE, 'TBSCertificate'));
  let i = 0;
  if (tbs[0]?.tag === 0xa0) i++; // [0] EXPLICIT version
  const serial = r.content(r.expect(tbs[i++], TAG.INTEGER, 'serialNumber'));
  r.expect(tbs[i++], TAG.SEQUENCE, 'signature');
  const issuer = r.whole(r.expect(tbs[i++], TAG.SEQUENCE, 'issuer'));
  const validity = r.children(r.expect(tbs[i++], TAG.SEQUENCE, 'validity'));
  if (validity.length !== 2) throw new DerError('bad validity');
  const subject = r.whole(r.expect(tbs[i++], TAG.SEQUENCE, 'subject'));
  r.expect(tbs[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const info: CertInfo = {
    serial,
    issuer,
    subject,
    notBefore: r.time(validity[0]!),
    notAfter: r.time(validity[1]!),
    extensions: new Map(),
    uris: [],
  };
  for (; i < tbs.length; i++) {
    const n = tbs[i]!;
    if (n.tag !== 0xa3) continue; // issuerUniqueID [1], subjectUniqueID [2]
    const [list] = r.children(n);
    for (const ext of r.children(r.expect(list, TAG.SEQUENCE, 'Extensions'))) {
      const parts = r.children(r.expect(ext, TAG.SEQUENCE, 'Extension'));
      const oid = r.oid(parts[0]!);
      let critical = false;
      let k = 1;
      if (parts[k]?.tag === TAG.BOOLEAN) critical = r.boolean(parts[k++]!);
      const value = r.content(r.expect(parts[k], TAG.OCTET_STRING, 'extnValue'));
      if (info.extensions.has(oid)) throw new DerError(`extension ${oid} appears twice`);
      info.extensions.set(oid, { critical, value });
    }
  }
  const bc = info.extensions.get(OID.basicConstraints);
  if (bc) info.basicConstraints = readBasicConstraints(bc.value);
  const ku = info.extensions.get(OID.keyUsage);
  if (ku) info.keyUsage = readKeyUsage(ku.value);
  const eku = info.extensions.get(OID.extKeyUsage);
  if (eku) info.extKeyUsage = readExtKeyUsage(eku.value);
  const san = info.extensions.get(OID.subjectAltName);
  if (san) info.uris = readSanUris(san.value);
  return info;
}

function readBasicConstraints(value: Buffer): { ca: boolean; pathLen?: number } {
  const r = new DerReader(value);
  const seq = r.expect(r.node(0), TAG.SEQUENCE, 'BasicConstraints');
  const parts = r.children(seq);
  let ca = false;
  let pathLen: number | undefined;
  let k = 0;
  if (parts[k]?.tag === TAG.BOOLEAN) ca = r.boolean(parts[k++]!);
  if (parts[k]?.tag === TAG.INTEGER) pathLen = r.smallInt(parts[k++]!);
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

function readKeyUsage(value: Buffer): Set<KeyUsageName> {
  const r = new DerReader(value);
  const c = r.content(r.expect(r.node(0), TAG.BIT_STRING, 'KeyUsage'));
  if (c.length === 0 || c[0]! > 7) throw new DerError('bad KeyUsage');
  const out = new Set<KeyUsageName>();
  KEY_USAGE_NAMES.forEach((name, bit) => {
    const byte = c[1 + (bit >> 3)];
    if (byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0) out.add(name);
  });
  return out;
}

function readExtKeyUsage(value: Buffer): string[] {
  const r = new DerReader(value);
  return r.children(r.expect(r.node(0), TAG.SEQUENCE, 'ExtKeyUsageSyntax')).map((n) => r.oid(n));
}

function readSanUris(value: Buffer): string[] {
  const r = new DerReader(value);
  const names = r.children(r.expect(r.node(0), TAG.SEQUENCE, 'GeneralNames'));
  // uniformResourceIdentifier [6] IMPLICIT IA5String
  return names.filter((n) => n.tag === 0x86).map((n) => r.content(n).toString('latin1'));
}
