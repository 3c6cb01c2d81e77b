/** X.509 bundle: the CA certificates (DER) that are trusted to issue X509-SVIDs in one trust domain. */
import { X509Certificate } from 'node:crypto';
import { WritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import { splitDer } from './der.js';
import { decodePem, encodePem } from './pem.js';
import { type X509BundleSource, bundleNotFound } from './source.js';

interface Authority {
  der: Buffer;
  cert: X509Certificate;
}

/**
 * Parses exactly one DER certificate. Returns undefined when `der` is not a single, complete
 * certificate (Node's parser would accept trailing bytes, or PEM text, so both are checked first).
 */
export function parseCertificateDer(der: Uint8Array): X509Certificate | undefined {
  const parts = splitDer(der);
  if (!parts || parts.length !== 1 || parts[0]!.tag !== 0x30) return undefined;
  try {
    const cert = new X509Certificate(Buffer.from(der));
    return cert.raw.length === der.length ? cert : undefined;
  } catch {
    return undefined;
  }
}

export class X509Bundle implements X509BundleSource {
  readonly #entries: Authority[] = [];

  /** Throws ERR_BUNDLE_DER if an authority is not one DER certificate. Duplicates are kept once. */
  constructor(
    readonly trustDomain: TrustDomain,
    authorities: Iterable<Uint8Array> = [],
  ) {
    for (const der of authorities) this.addAuthority(der);
  }

  /** Parses PEM holding only CERTIFICATE blocks (ERR_BUNDLE_PEM); no certificate at all is ERR_BUNDLE_EMPTY. */
  static parsePem(td: TrustDomain, pem: string | Uint8Array): X509Bundle {
    const text = typeof pem === 'string' ? pem : Buffer.from(pem).toString('latin1');
    const what = `the X.509 bundle for ${td.name}`;
    const blocks = decodePem(text, 'ERR_BUNDLE_PEM', what, 'CERTIFICATE');
    if (blocks.length === 0) throw new WritError('ERR_BUNDLE_EMPTY', `The PEM of ${what} holds no certificate.`);
    const bundle = new X509Bundle(td);
    blocks.forEach((b, i) => {
      const cert = parseCertificateDer(b.der);
      if (!cert) throw new WritError('ERR_BUNDLE_PEM', `PEM block ${i + 1} of ${what} is not a valid X.509 certificate.`, { details: { block: i + 1 } });
      bundle.#add({ der: Buffer.from(b.der), cert });
    });
    return bundle;
  }

  /** Parses concatenated DER certificates (ERR_BUNDLE_DER naming the certificate); none is ERR_BUNDLE_EMPTY. */
  static parseDer(td: TrustDomain, der: Uint8Array): X509Bundle {
    const what = `the X.509 bundle for ${td.name}`;
    if (der.length === 0) throw new WritError('ERR_BUNDLE_EMPTY', `The DER of ${what} holds no certificate.`);
    const parts = splitDer(der);
    if (!parts) throw new WritError('ERR_BUNDLE_DER', `The DER of ${what} is not a sequence of complete DER elements.`);
    const bundle = new X509Bundle(td);
    parts.forEach((p, i) => {
      const bytes = Buffer.from(der.subarray(p.start, p.end));
      const cert = parseCertificateDer(bytes);
      if (!cert) throw new WritError('ERR_BUNDLE_DER', `Certificate ${i + 1} in the DER of ${what} is not a valid X.509 certificate.`, { details: { certificate: i + 1 } });
      bundle.#add({ der: bytes, cert });
    });
    return bundle;
  }

  /** The authorities as DER, in insertion order (a fresh array; do not mutate the buffers). */
  authorities(): Buffer[] {
    return this.#entries.map((e) => e.der);
  }

  /** The authorities as parsed certificates, for verifiers (parsed once, when added). */
  authorityCertificates(): X509Certificate[] {
    return this.#entries.map((e) => e.cert);
  }

  get size(): number {
    return this.#entries.length;
  }

  isEmpty(): boolean {
    return this.#entries.length === 0;
  }

  hasAuthority(der: Uint8Array): boolean {
    return this.#entries.some((e) => e.der.equals(der));
  }

  /** Adds a DER certificate (ERR_BUNDLE_DER if it is not one); adding a present one changes nothing. */
  addAuthority(der: Uint8Array): void {
    const cert = parseCertificateDer(der);
    if (!cert) throw new WritError('ERR_BUNDLE_DER', `The authority added to the X.509 bundle for ${this.trustDomain.name} is not one DER certificate.`);
    this.#add({ der: Buffer.from(der), cert });
  }

  /** Removes a certificate; returns whether it was present. */
  removeAuthority(der: Uint8Array): boolean {
    const i = this.#entries.findIndex((e) => e.der.equals(der));
    if (i === -1) return false;
    this.#entries.splice(i, 1);
    return true;
  }

  toPem(): string {
    return this.#entries.map((e) => encodePem('CERTIFICATE', e.der)).join('');
  }

  toDer(): Buffer {
    return Buffer.concat(this.#entries.map((e) => e.der));
  }

  /** Same trust domain and the same authorities in the same order. */
  equals(other: X509Bundle): boolean {
    const a = this.#entries;
    const b = other.#entries;
    return this.trustDomain.equals(other.trustDomain) && a.length === b.length && a.every((e, i) => e.der.equals(b[i]!.der));
  }

  clone(): X509Bundle {
    const copy = new X509Bundle(this.trustDomain);
    for (const e of this.#entries) copy.#entries.push(e);
    return copy;
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    if (!td.equals(this.trustDomain)) throw bundleNotFound(td, 'X.509', this.trustDomain);
    return this;
  }

  #add(entry: Authority): void {
    if (!this.#entries.some((e) => e.der.equals(entry.der))) this.#entries.push(entry);
  }
}
