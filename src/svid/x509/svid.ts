/** X509-SVID: a leaf certificate naming a SPIFFE ID, its intermediates, and optionally its private key. */
import { type KeyObject, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { decodePem, encodePem, parseCertificateDer } from '../../bundle/index.js';
import { isWritError } from '../../errors.js';
import { type SpiffeId, parseSpiffeId } from '../../spiffeid/index.js';
import { type CertInfo, OID, certInfo } from './cert.js';
import { DerError, DerReader } from './der.js';
import { x509Violation } from './rules.js';

/** A chain given as DER certificates, concatenated DER, or PEM text. */
export type CertificateChainInput = readonly Uint8Array[] | Uint8Array | string;
/** A private key given as a KeyObject, PKCS#8 DER, or PEM. */
export type PrivateKeyInput = KeyObject | Uint8Array | string;

export class X509Svid {
  /** @internal Use parseX509Svid(), which validates. */
  constructor(
    readonly id: SpiffeId,
    /** DER certificates, leaf first. */
    readonly certificates: Buffer[],
    readonly privateKey?: KeyObject,
    /** The Workload API hint, when the SVID came with one. */
    readonly hint?: string,
    readonly parsed: readonly X509Certificate[] = certificates.map((c) => new X509Certificate(c)),
  ) {}

  get leaf(): X509Certificate {
    return this.parsed[0]!;
  }

  /** The leaf's notAfter. */
  get expiresAt(): Date {
    return certInfo(this.leaf).notAfter;
  }

  chainPem(): string {
    return this.certificates.map((c) => encodePem('CERTIFICATE', c)).join('');
  }

  /** The chain as concatenated DER (the Workload API's form). */
  chainDer(): Buffer {
    return Buffer.concat(this.certificates);
  }

  /** The private key as PKCS#8 PEM, if present. */
  privateKeyPem(): string | undefined {
    return this.privateKey?.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  /** The private key as PKCS#8 DER, if present. */
  privateKeyDer(): Buffer | undefined {
    return this.privateKey?.export({ type: 'pkcs8', format: 'der' });
  }
}

/** Turns the accepted chain forms into parsed certificates (ERR_SVID_X509_PARSE / _NO_CERTIFICATES). */
export function readChain(chain: CertificateChainInput): X509Certificate[] {
  let ders: Uint8Array[];
  if (typeof chain === 'string') {
    try {
      ders = decodePem(chain, 'ERR_SVID_X509_PARSE', 'the X509-SVID chain', 'CERTIFICATE').map((b) => b.der);
    } catch (cause) {
      if (!isWritError(cause)) throw cause;
      throw x509Violation('certificate-der', cause.message, cause.details, cause);
    }
  } else if (chain instanceof Uint8Array) {
    ders = splitConcatenated(chain);
  } else if (Array.isArray(chain)) {
    ders = chain;
  } else {
    throw x509Violation('certificate-der', 'The X509-SVID chain must be DER buffers or PEM text.');
  }
  if (ders.length === 0) throw x509Violation('chain-not-empty', 'The X509-SVID chain holds no certificate.');
  return ders.map((der, i) => {
    const cert = der instanceof Uint8Array ? parseCertificateDer(der) : undefined;
    if (!cert) throw x509Violation('certificate-der', `${certName(i)} is not a valid DER X.509 certificate.`, { certificate: i + 1 });
    return cert;
  });
}

function splitConcatenated(buf: Uint8Array): Buffer[] {
  const b = Buffer.from(buf);
  const r = new DerReader(b);
  const out: Buffer[] = [];
  try {
    for (let pos = 0; pos < b.length; ) {
      const n = r.node(pos);
      out.push(r.whole(n));
      pos = n.end;
    }
  } catch (e) {
    if (!(e instanceof DerError)) throw e;
    throw x509Violation('certificate-der', `${certName(out.length)} of the concatenated DER chain is malformed.`, { certificate: out.length + 1 });
  }
  return out;
}

/** "the leaf certificate" / "certificate 3 of the chain". */
export function certName(i: number): string {
  return i === 0 ? 'The leaf certificate' : `Certificate ${i + 1} of the chain`;
}

/** Reads a certificate's extensions, mapping malformed DER to ERR_SVID_X509_PARSE. */
export function infoOf(cert: X509Certificate, i: number): CertInfo {
  try {
    return certInfo(cert);
  } catch (cause) {
    if (!(cause instanceof DerError)) throw cause;
    throw x509Violation('certificate-der', `${certName(i)} has malformed contents (${cause.message}).`, { certificate: i + 1 }, cause);
  }
}

function showUri(uri: string): string {
  return JSON.stringify(uri.length > 80 ? `${uri.slice(0, 80)}…` : uri);
}

/** Applies the leaf and intermediate rules of X509-SVID §2–4; returns the leaf's SPIFFE ID. */
export function checkSvidChain(certs: readonly X509Certificate[]): SpiffeId {
  const leaf = infoOf(certs[0]!, 0);
  if (leaf.uris.length !== 1) {
    const has = leaf.uris.length === 0 ? 'no URI SAN' : `${leaf.uris.length} URI SANs`;
    throw x509Violation('leaf-one-uri-san', `The leaf certificate has ${has}; an X509-SVID has exactly one.`, { uri_sans: leaf.uris.length });
  }
  const uri = leaf.uris[0]!;
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uri);
  } catch (cause) {
    if (!isWritError(cause)) throw cause;
    throw x509Violation('leaf-spiffe-id', `The URI SAN ${showUri(uri)} of the leaf certificate is not a valid SPIFFE ID: ${cause.message}`, {}, cause);
  }
  if (id.path === '') {
    throw x509Violation('leaf-id-has-path', `The leaf certificate names ${id.toString()}, a trust domain ID; an X509-SVID names a workload and needs a path.`, {
      spiffe_id: id.toString(),
    });
  }
  if (leaf.basicConstraints?.ca) throw x509Violation('leaf-not-ca', 'The leaf certificate is a CA (basicConstraints cA=true).', { spiffe_id: id.toString() });
  if (!leaf.keyUsage) throw x509Violation('leaf-digital-signature', 'The leaf certificate has no keyUsage extension; digitalSignature is required.');
  if (!leaf.keyUsage.has('digitalSignature')) throw x509Violation('leaf-digital-signature', 'The keyUsage of the leaf certificate lacks digitalSignature.');
  for (const bad of ['keyCertSign', 'cRLSign'] as const) {
    if (leaf.keyUsage.has(bad)) throw x509Violation('leaf-no-cert-sign', `The keyUsage of the leaf certificate sets ${bad}, which only CAs may have.`);
  }
  const eku = leaf.extKeyUsage;
  if (eku && !eku.includes(OID.anyExtendedKeyUsage)) {
    const missing = [
      ...(eku.includes(OID.serverAuth) ? [] : ['serverAuth']),
      ...(eku.includes(OID.clientAuth) ? [] : ['clientAuth']),
    ];
    if (missing.length > 0) {
      throw x509Violation('leaf-ext-key-usage', `The extKeyUsage of the leaf certificate lacks ${missing.join(' and ')}.`, { missing });
    }
  }
  for (let i = 1; i < certs.length; i++) {
    const info = infoOf(certs[i]!, i);
    if (!info.basicConstraints?.ca) throw x509Violation('intermediate-ca', `${certName(i)} is an intermediate but not a CA (basicConstraints cA is not true).`, { certificate: i + 1 });
    if (!info.keyUsage?.has('keyCertSign')) {
      throw x509Violation('intermediate-key-cert-sign', `${certName(i)} is an intermediate without keyCertSign in its keyUsage.`, { certificate: i + 1 });
    }
  }
  return id;
}

function readPrivateKey(key: PrivateKeyInput): KeyObject {
  try {
    if (typeof key === 'string') return createPrivateKey(key);
    if (key instanceof Uint8Array) {
      const buf = Buffer.from(key);
      // PEM text handed over as bytes (a file read without an encoding) is accepted too.
      if (buf.subarray(0, 11).toString('latin1') === '-----BEGIN ') return createPrivateKey(buf.toString('latin1'));
      return createPrivateKey({ key: buf, format: 'der', type: 'pkcs8' });
    }
    if (typeof key === 'object' && key !== null && (key as KeyObject).type === 'private') return key;
  } catch (cause) {
    throw x509Violation('private-key-valid', 'The private key is not a valid PKCS#8 DER or PEM private key.', {}, cause);
  }
  throw x509Violation('private-key-valid', 'The private key must be a private KeyObject, PKCS#8 DER or PEM.');
}

/**
 * Parses and validates an X509-SVID (leaf first, then intermediates) and, when given, its private
 * key, which must match the leaf. Does not check signatures or validity dates: see verifyX509Svid.
 */
export function parseX509Svid(chain: CertificateChainInput, privateKey?: PrivateKeyInput, opts: { hint?: string } = {}): X509Svid {
  const certs = readChain(chain);
  const id = checkSvidChain(certs);
  let key: KeyObject | undefined;
  if (privateKey !== undefined) {
    key = readPrivateKey(privateKey);
    const leafSpki = certs[0]!.publicKey.export({ type: 'spki', format: 'der' });
    const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    if (!leafSpki.equals(keySpki)) throw x509Violation('private-key-matches-leaf', 'The private key does not belong to the public key of the leaf certificate.');
  }
  return new X509Svid(
    id,
    certs.map((c) => c.raw),
    key,
    opts.hint,
    certs,
  );
}
