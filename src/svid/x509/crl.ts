/** RFC 5280 CRLs: read the revoked serials and check the signature with node:crypto, synchronously. */
import { type KeyObject, constants, verify } from 'node:crypto';
import { DerError, type DerNode, DerReader, TAG } from './der.js';

export interface CrlInfo {
  issuer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** Hex of the DER INTEGER content of each revoked serial. */
  revoked: Set<string>;
  tbs: Buffer;
  signatureAlgorithm: string;
  signatureParams: Buffer | undefined;
  signature: Buffer;
}

export function readCrl(der: Buffer): CrlInfo {
  const r = new DerReader(der);
  const root = r.expect(r.node(0), TAG.SEQUENCE, 'CertificateList');
  if (root.end !== der.length) throw new DerError('trailing bytes after the CRL');
  const [tbsNode, algNode, sigNode, extra] = r.children(root);
  if (extra) throw new DerError('extra elements in CertificateList');
  const tbs = r.children(r.expect(tbsNode, TAG.SEQUENCE, 'TBSCertList'));
  let i = 0;
  if (tbs[i]?.tag === TAG.INTEGER) i++; // version
  r.expect(tbs[i++], TAG.SEQUENCE, 'signature');
  const issuer = r.whole(r.expect(tbs[i++], TAG.SEQUENCE, 'issuer'));
  const thisUpdate = r.time(tbs[i++] ?? fail('thisUpdate'));
  let nextUpdate: Date | undefined;
  const maybeNext = tbs[i];
  if (maybeNext && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) {
    nextUpdate = r.time(maybeNext);
    i++;
  }
  const revoked = new Set<string>();
  const list = tbs[i];
  if (list && list.tag === TAG.SEQUENCE) {
    for (const entry of r.children(list)) {
      const [serial] = r.children(r.expect(entry, TAG.SEQUENCE, 'revokedCertificate'));
      revoked.add(r.content(r.expect(serial, TAG.INTEGER, 'userCertificate')).toString('hex'));
    }
  }
  const alg = r.children(r.expect(algNode, TAG.SEQUENCE, 'signatureAlgorithm'));
  const sigBits = r.content(r.expect(sigNode, TAG.BIT_STRING, 'signatureValue'));
  if (sigBits.length < 1 || sigBits[0] !== 0) throw new DerError('bad signature bit string');
  const info: CrlInfo = {
    issuer,
    thisUpdate,
    revoked,
    tbs: r.whole(tbsNode!),
    signatureAlgorithm: r.oid(alg[0] ?? fail('algorithm')),
    signatureParams: alg[1] && alg[1].tag !== TAG.NULL ? r.whole(alg[1]) : undefined,
    signature: sigBits.subarray(1),
  };
  if (nextUpdate) info.nextUpdate = nextUpdate;
  return info;
}

function fail(what: string): never {
  throw new DerError(`missing ${what}`);
}

const HASH_BY_OID: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** Signature algorithms accepted on CRLs (no SHA-1, no MD5). */
const SIMPLE: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null, // Ed25519
  '1.3.101.113': null, // Ed448
};
const RSASSA_PSS = '1.2.840.113549.1.1.10';

/** True when the CRL's signature verifies with `key`; false for a bad signature or an unsupported algorithm. */
export function crlSignatureValid(crl: CrlInfo, key: KeyObject): boolean {
  try {
    if (crl.signatureAlgorithm in SIMPLE) return verify(SIMPLE[crl.signatureAlgorithm] ?? null, crl.tbs, key, crl.signature);
    if (crl.signatureAlgorithm === RSASSA_PSS && crl.signatureParams) {
      const { hash, saltLength } = readPssParams(crl.signatureParams);
      return verify(hash, crl.tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, crl.signature);
    }
  } catch {
    return false;
  }
  return false;
}

/** RSASSA-PSS-params with the hash named explicitly (the SHA-1 default is not accepted). */
function readPssParams(der: Buffer): { hash: string; saltLength: number } {
  const r = new DerReader(der);
  const fields = r.children(r.expect(r.node(0), TAG.SEQUENCE, 'RSASSA-PSS-params'));
  let hash: string | undefined;
  let saltLength = 20;
  for (const f of fields) {
    const [inner] = r.children(f) as [DerNode | undefined];
    if (!inner) continue;
    if (f.tag === 0xa0) hash = HASH_BY_OID[r.oid(r.children(r.expect(inner, TAG.SEQUENCE, 'hashAlgorithm'))[0]!)];
    if (f.tag === 0xa2) saltLength = r.smallInt(inner);
  }
  if (!hash) throw new DerError('unsupported PSS hash');
  return { hash, saltLength };
}
