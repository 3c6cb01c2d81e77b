/**
 * SPIFFE bundle (SPIFFE Trust Domain and Bundle spec §4): a JWK Set with `spiffe_sequence`,
 * `spiffe_refresh_hint`, x509-svid keys (one x5c CA certificate each) and jwt-svid keys (with kid).
 */
import type { JsonWebKey } from 'node:crypto';
import { WritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import { importPublicJwk, jwkFromPublicKey, orderedPublicMembers, sameJwk, SUPPORTED_KTY } from './jwk.js';
import { JwtBundle, jwksKeys, parseJsonText } from './jwtbundle.js';
import { type JwtBundleSource, type SpiffeBundleSource, type X509BundleSource, bundleNotFound } from './source.js';
import { X509Bundle, parseCertificateDer } from './x509bundle.js';

export const X509_SVID_USE = 'x509-svid';
export const JWT_SVID_USE = 'jwt-svid';

const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface SpiffeBundleInit {
  x509Authorities?: Iterable<Uint8Array>;
  jwtAuthorities?: Iterable<readonly [string, JsonWebKey]> | Record<string, JsonWebKey>;
  sequenceNumber?: number;
  /** Seconds. */
  refreshHint?: number;
}

function checkCounter(name: string, value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    const shown = typeof value === 'number' ? String(value) : typeof value;
    throw new WritError('ERR_BUNDLE_JSON', `${what} has "${name}" ${shown}, but it must be a non-negative integer.`, { details: { member: name } });
  }
  return value;
}

export class SpiffeBundle implements X509BundleSource, JwtBundleSource, SpiffeBundleSource {
  #x509: X509Bundle;
  #jwt: JwtBundle;
  #sequenceNumber: number | undefined;
  #refreshHint: number | undefined;

  constructor(
    readonly trustDomain: TrustDomain,
    init: SpiffeBundleInit = {},
  ) {
    this.#x509 = new X509Bundle(trustDomain, init.x509Authorities);
    this.#jwt = new JwtBundle(trustDomain, init.jwtAuthorities);
    this.sequenceNumber = init.sequenceNumber;
    this.refreshHint = init.refreshHint;
  }

  static fromX509Bundle(bundle: X509Bundle): SpiffeBundle {
    const b = new SpiffeBundle(bundle.trustDomain);
    b.#x509 = bundle.clone();
    return b;
  }

  static fromJwtBundle(bundle: JwtBundle): SpiffeBundle {
    const b = new SpiffeBundle(bundle.trustDomain);
    b.#jwt = bundle.clone();
    return b;
  }

  /**
   * Parses a SPIFFE bundle. Malformed JSON or counters → ERR_BUNDLE_JSON; malformed keys →
   * ERR_BUNDLE_JWK naming the key by its 1-based position. `keys: []` is valid (every key revoked).
   */
  static parse(td: TrustDomain, json: string | Uint8Array): SpiffeBundle {
    const what = `The SPIFFE bundle for ${td.name}`;
    const doc = parseJsonText(json, what);
    const keys = jwksKeys(doc, what);
    const top = doc as Record<string, unknown>;
    const bundle = new SpiffeBundle(td, {
      sequenceNumber: checkCounter('spiffe_sequence', top.spiffe_sequence, what),
      refreshHint: checkCounter('spiffe_refresh_hint', top.spiffe_refresh_hint, what),
    });
    keys.forEach((k, i) => {
      const where = `JWK ${i + 1} in the bundle for ${td.name}`;
      if (typeof k !== 'object' || k === null || Array.isArray(k)) throw new WritError('ERR_BUNDLE_JWK', `${where} is not a JSON object.`, { details: { key: i + 1 } });
      const key = k as Record<string, unknown>;
      // Spec §4.2.2: a JWK whose `use` is missing or not one we know (e.g. "wit-svid" from newer
      // producers) MUST be ignored rather than rejected, so bundles can grow new key kinds.
      if (key.use !== X509_SVID_USE && key.use !== JWT_SVID_USE) return;
      if (typeof key.kty !== 'string') throw new WritError('ERR_BUNDLE_JWK', `${where} has no "kty" member.`, { details: { key: i + 1 } });
      // Spec §4.2.1: a JWK with an unknown key type is ignored as well.
      if (!SUPPORTED_KTY.has(key.kty)) return;
      if (key.use === X509_SVID_USE) bundle.#addX509Jwk(key, where, i + 1);
      else JwtBundle.addParsed(bundle.#jwt, key.kid, key, where);
    });
    return bundle;
  }

  get sequenceNumber(): number | undefined {
    return this.#sequenceNumber;
  }

  /** A non-negative safe integer or undefined (ERR_BUNDLE_JSON otherwise). */
  set sequenceNumber(v: number | undefined) {
    this.#sequenceNumber = checkCounter('spiffe_sequence', v, 'The SPIFFE bundle');
  }

  /** Refresh hint in seconds. */
  get refreshHint(): number | undefined {
    return this.#refreshHint;
  }

  set refreshHint(v: number | undefined) {
    this.#refreshHint = checkCounter('spiffe_refresh_hint', v, 'The SPIFFE bundle');
  }

  /** X.509 authorities (DER CA certificates). */
  get x509Authorities(): Buffer[] {
    return this.#x509.authorities();
  }

  /** JWT authorities: key ID → public JWK. */
  get jwtAuthorities(): Map<string, JsonWebKey> {
    return this.#jwt.authorities();
  }

  addX509Authority(der: Uint8Array): void {
    this.#x509.addAuthority(der);
  }

  removeX509Authority(der: Uint8Array): boolean {
    return this.#x509.removeAuthority(der);
  }

  addJwtAuthority(kid: string, jwk: JsonWebKey): void {
    this.#jwt.addAuthority(kid, jwk);
  }

  removeJwtAuthority(kid: string): boolean {
    return this.#jwt.removeAuthority(kid);
  }

  /** Replaces the X.509 part; ERR_BUNDLE_TRUST_DOMAIN if `bundle` is for another trust domain. */
  setX509Bundle(bundle: X509Bundle): void {
    this.#sameTrustDomain(bundle.trustDomain);
    this.#x509 = bundle.clone();
  }

  /** Replaces the JWT part; ERR_BUNDLE_TRUST_DOMAIN if `bundle` is for another trust domain. */
  setJwtBundle(bundle: JwtBundle): void {
    this.#sameTrustDomain(bundle.trustDomain);
    this.#jwt = bundle.clone();
  }

  /** A copy of the X.509 part. */
  x509Bundle(): X509Bundle {
    return this.#x509.clone();
  }

  /** A copy of the JWT part. */
  jwtBundle(): JwtBundle {
    return this.#jwt.clone();
  }

  isEmpty(): boolean {
    return this.#x509.isEmpty() && this.#jwt.isEmpty();
  }

  /**
   * Stable JSON: spiffe_sequence, spiffe_refresh_hint (each only when set), then keys: the X.509
   * authorities in order ({kty, crv, x, y | n, e, use, x5c}), then the JWT authorities in order
   * ({kty, crv, x, y | n, e, use, kid}).
   */
  marshal(opts: { pretty?: boolean } = {}): string {
    const doc: Record<string, unknown> = {};
    if (this.#sequenceNumber !== undefined) doc.spiffe_sequence = this.#sequenceNumber;
    if (this.#refreshHint !== undefined) doc.spiffe_refresh_hint = this.#refreshHint;
    const keys: Array<Record<string, unknown>> = [];
    this.#x509.authorityCertificates().forEach((cert) => {
      keys.push({ ...orderedPublicMembers(jwkFromPublicKey(cert.publicKey)), use: X509_SVID_USE, x5c: [cert.raw.toString('base64')] });
    });
    for (const [kid, jwk] of this.#jwt.authorities()) keys.push({ ...orderedPublicMembers(jwk), use: JWT_SVID_USE, kid });
    doc.keys = keys;
    return JSON.stringify(doc, null, opts.pretty ? 2 : undefined);
  }

  /** Same trust domain, authorities, sequence number and refresh hint. */
  equals(other: SpiffeBundle): boolean {
    return (
      this.trustDomain.equals(other.trustDomain) &&
      this.#sequenceNumber === other.#sequenceNumber &&
      this.#refreshHint === other.#refreshHint &&
      this.#x509.equals(other.#x509) &&
      this.#jwt.equals(other.#jwt)
    );
  }

  clone(): SpiffeBundle {
    const b = new SpiffeBundle(this.trustDomain, { sequenceNumber: this.#sequenceNumber, refreshHint: this.#refreshHint });
    b.#x509 = this.#x509.clone();
    b.#jwt = this.#jwt.clone();
    return b;
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    if (!td.equals(this.trustDomain)) throw bundleNotFound(td, 'X.509', this.trustDomain);
    return this.#x509.clone();
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    if (!td.equals(this.trustDomain)) throw bundleNotFound(td, 'JWT', this.trustDomain);
    return this.#jwt.clone();
  }

  getSpiffeBundleForTrustDomain(td: TrustDomain): SpiffeBundle {
    if (!td.equals(this.trustDomain)) throw bundleNotFound(td, 'SPIFFE', this.trustDomain);
    return this;
  }

  #sameTrustDomain(td: TrustDomain): void {
    if (!td.equals(this.trustDomain)) {
      throw new WritError('ERR_BUNDLE_TRUST_DOMAIN', `A bundle for ${td.name} cannot become part of the bundle for ${this.trustDomain.name}.`, {
        details: { trust_domain: this.trustDomain.name, other: td.name },
      });
    }
  }

  /**
   * An x509-svid JWK: exactly one x5c CA certificate (as go-spiffe requires; the spec would let a
   * consumer skip the entry instead), whose key matches the JWK's key parameters. A `kid`, which
   * producers must not set on these keys, is tolerated and ignored.
   */
  #addX509Jwk(key: Record<string, unknown>, where: string, n: number): void {
    const x5c = key.x5c;
    const count = Array.isArray(x5c) ? x5c.length : 0;
    if (!Array.isArray(x5c) || count !== 1) {
      throw new WritError('ERR_BUNDLE_JWK', `${where} has use "x509-svid" but ${count} x5c certificates; exactly one is required.`, { details: { key: n } });
    }
    const b64 = x5c[0];
    if (typeof b64 !== 'string' || !BASE64_STD.test(b64)) {
      throw new WritError('ERR_BUNDLE_JWK', `${where} has an x5c entry that is not standard base64.`, { details: { key: n } });
    }
    const cert = parseCertificateDer(Buffer.from(b64, 'base64'));
    if (!cert) throw new WritError('ERR_BUNDLE_JWK', `${where} has an x5c entry that is not a DER X.509 certificate.`, { details: { key: n } });
    const { jwk } = importPublicJwk(key, where);
    let certJwk: JsonWebKey;
    try {
      certJwk = jwkFromPublicKey(cert.publicKey);
    } catch (cause) {
      throw new WritError('ERR_BUNDLE_JWK', `${where} has an x5c certificate whose key type is not supported.`, { cause, details: { key: n } });
    }
    if (!sameJwk(jwk, certJwk)) {
      throw new WritError('ERR_BUNDLE_JWK', `${where} has key parameters that differ from the public key of its x5c certificate.`, { details: { key: n } });
    }
    this.#x509.addAuthority(cert.raw);
  }
}
