/**
 * Leaf X509-SVIDs from a precomputed DER template. Everything that is the same for every leaf of
 * one signing CA (version, signature algorithm, issuer, basicConstraints, keyUsage, extKeyUsage,
 * authorityKeyIdentifier, the default subject) is encoded once; per leaf only the serial, validity,
 * subject key, SKI and SAN are encoded, then the TBS is signed with crypto.sign. @peculiar/x509
 * would take about 5 ms a leaf; this takes the time of one signature plus a few microseconds.
 *
 * Profile (X509-SVID §4, as SPIRE issues): v3, random 128-bit serial, exactly one URI SAN (the
 * SPIFFE ID) plus DNS SANs, basicConstraints CA:FALSE (critical), keyUsage digitalSignature |
 * keyEncipherment | keyAgreement (critical), extKeyUsage serverAuth + clientAuth, SKI, AKI.
 */
import { type KeyObject, createHash, createPublicKey } from 'node:crypto';
import { WritError } from '../errors.js';
import { bitString, derTime, extension, ia5String, oid, readChildren, readTlv, seq, tlv, unsignedInteger, utf8String, printableString, rdn } from './asn1.js';

export const OIDS = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  countryName: '2.5.4.6',
  organizationName: '2.5.4.10',
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
} as const;

/** The subjectPublicKey bits of an SPKI (without the unused-bits byte). */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const root = readTlv(spki, 0);
  const [alg, bits] = readChildren(spki, root);
  if (!alg || !bits || bits.tag !== 0x03) throw new RangeError('not a SubjectPublicKeyInfo');
  return spki.subarray(bits.contentStart + 1, bits.end);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest();
}

/** The DER of a certificate's subject Name. */
export function certificateSubject(certDer: Buffer): Buffer {
  const tbs = readChildren(certDer, readChildren(certDer, readTlv(certDer, 0))[0]!);
  const i = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const subject = tbs[i + 4];
  if (!subject || subject.tag !== 0x30) throw new RangeError('certificate has no subject');
  return certDer.subarray(subject.start, subject.end);
}

const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');

/** A workload public key accepted for an SVID: EC P-256 or P-384, or RSA of 2048 bits or more. */
export class LeafKey {
  private constructor(
    /** SubjectPublicKeyInfo DER, as given. */
    readonly spki: Buffer,
  ) {}

  static from(key: KeyObject | Uint8Array): LeafKey {
    if (key instanceof Uint8Array) return LeafKey.parse(key).key;
    let obj: KeyObject;
    let spki: Buffer;
    try {
      obj = key.type === 'private' ? createPublicKey(key) : key;
      spki = obj.export({ type: 'spki', format: 'der' });
    } catch (cause) {
      throw new WritError('ERR_CA_KEY_TYPE', 'The public key is not a valid SubjectPublicKeyInfo.', { cause });
    }
    LeafKey.#check(obj, false);
    return new LeafKey(spki);
  }

  /**
   * The key of SPKI DER together with the KeyObject parsed from it, so a caller that also needs
   * the KeyObject (a CSR check) parses it once: OpenSSL 3's DER decoder takes about 100 µs a key,
   * more than verifying a P-256 signature.
   */
  static parse(spkiDer: Uint8Array): { key: LeafKey; publicKey: KeyObject } {
    const spki = Buffer.from(spkiDer);
    let obj: KeyObject;
    try {
      obj = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    } catch (cause) {
      throw new WritError('ERR_CA_KEY_TYPE', 'The public key is not a valid SubjectPublicKeyInfo.', { cause });
    }
    const key = new LeafKey(spki);
    LeafKey.#check(obj, key.isP256);
    return { key, publicKey: obj };
  }

  /** `p256Der`: the key was parsed from the P-256 SPKI encoding, whose bytes already name the curve (asymmetricKeyDetails costs about 17 µs). */
  static #check(obj: KeyObject, p256Der: boolean): void {
    if (obj.type !== 'public') throw new WritError('ERR_CA_KEY_TYPE', 'A secret key cannot be put in a certificate.');
    const t = obj.asymmetricKeyType;
    if (p256Der && t === 'ec') return;
    const d = obj.asymmetricKeyDetails;
    const ok = (t === 'ec' && (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'secp384r1')) || (t === 'rsa' && (d?.modulusLength ?? 0) >= 2048);
    if (!ok) {
      const what = t === 'ec' ? `EC on ${d?.namedCurve ?? 'an unknown curve'}` : t === 'rsa' ? `RSA-${d?.modulusLength ?? '?'}` : (t ?? 'unknown');
      throw new WritError('ERR_CA_KEY_TYPE', `SVID keys must be EC P-256, EC P-384 or RSA of 2048 bits or more; got ${what}.`);
    }
  }

  #ski: Buffer | undefined;

  /** The subject key identifier of this key (SHA-1 of the key bits), computed once. */
  get ski(): Buffer {
    this.#ski ??= keyIdentifier(this.spki);
    return this.#ski;
  }

  get isP256(): boolean {
    return this.spki.length === 91 && this.spki.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX);
  }
}

export interface SubjectAttributes {
  country?: string[];
  organization?: string[];
}

export interface LeafIssuer {
  /** The signing CA certificate (DER). */
  certificate: Buffer;
  /** SPKI DER of the signing CA's key. */
  publicKeyDer: Buffer;
}

export interface LeafParams {
  spiffeId: string;
  key: LeafKey;
  /** Big-endian magnitude of the serial; 16 random bytes. */
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
  dnsNames?: readonly string[];
  /** Further complete Extension TLVs (non-critical), appended after the SAN. */
  extraExtensions?: readonly Buffer[];
}

const KU_LEAF = bitString(Buffer.from([0xa8]), 3); // digitalSignature, keyEncipherment, keyAgreement

export class LeafTemplate {
  readonly #head: Buffer;
  readonly #sigAlg: Buffer;
  readonly #subjectAttrs: Buffer[];
  readonly #defaultSubject: Buffer;
  readonly #fixedExtensions: Buffer;
  readonly #issuerName: Buffer;

  constructor(
    readonly issuer: LeafIssuer,
    subject: SubjectAttributes = {},
  ) {
    this.#sigAlg = seq(oid(OIDS.ecdsaWithSha256));
    this.#head = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]); // [0] EXPLICIT version v3
    this.#subjectAttrs = [
      ...(subject.country ?? []).map((c) => rdn(OIDS.countryName, printableString(c))),
      ...(subject.organization ?? ['writ']).map((o) => rdn(OIDS.organizationName, utf8String(o))),
    ];
    this.#defaultSubject = seq(...this.#subjectAttrs);
    this.#fixedExtensions = Buffer.concat([
      extension(OIDS.basicConstraints, true, seq()),
      extension(OIDS.keyUsage, true, KU_LEAF),
      extension(OIDS.extKeyUsage, false, seq(oid(OIDS.serverAuth), oid(OIDS.clientAuth))),
      extension(OIDS.authorityKeyIdentifier, false, seq(tlv(0x80, keyIdentifier(issuer.publicKeyDer)))),
    ]);
    this.#issuerName = certificateSubject(issuer.certificate);
  }

  /** The TBSCertificate of a leaf. */
  tbs(p: LeafParams): Buffer {
    const dns = p.dnsNames ?? [];
    const subject = dns.length > 0 ? seq(...this.#subjectAttrs, rdn(OIDS.commonName, utf8String(dns[0]!))) : this.#defaultSubject;
    const san = seq(ia5String(0x86, p.spiffeId), ...dns.map((d) => ia5String(0x82, d)));
    const extensions = tlv(
      0xa3,
      seq(
        this.#fixedExtensions,
        extension(OIDS.subjectKeyIdentifier, false, tlv(0x04, p.key.ski)),
        extension(OIDS.subjectAltName, false, san),
        ...(p.extraExtensions ?? []),
      ),
    );
    return seq(this.#head, unsignedInteger(p.serial), this.#sigAlg, this.#issuerName, this.#validity(p.notBefore, p.notAfter), subject, p.key.spki, extensions);
  }

  #lastValidity: { nb: number; na: number; der: Buffer } | undefined;

  /** Validity is the same for every leaf minted in one second with one TTL: encode it once. */
  #validity(notBefore: Date, notAfter: Date): Buffer {
    const nb = notBefore.getTime();
    const na = notAfter.getTime();
    const last = this.#lastValidity;
    if (last && last.nb === nb && last.na === na) return last.der;
    const der = seq(derTime(notBefore), derTime(notAfter));
    this.#lastValidity = { nb, na, der };
    return der;
  }

  /** The certificate from its TBS and the CA's DER ECDSA signature over it. */
  assemble(tbs: Buffer, signature: Buffer): Buffer {
    return seq(tbs, this.#sigAlg, bitString(signature));
  }

  /** The signed leaf certificate (DER); `sign` is ECDSA-SHA256 with the signing CA's key. */
  mint(p: LeafParams, sign: (tbs: Buffer) => Buffer): Buffer {
    const tbs = this.tbs(p);
    return this.assemble(tbs, sign(tbs));
  }
}
