/**
 * The certificate authority's signing operations on top of the rotating slots: X509-SVIDs from
 * the active signing CA's leaf template, JWT-SVIDs with the active JWT key, CSR checks (only the
 * public key of a CSR is used, after its signature proves possession), and CRLs.
 */
import type { KeyObject } from 'node:crypto';
import { WritError } from '../errors.js';
import { parseSpiffeId, type SpiffeId } from '../spiffeid/index.js';
import type { RevokedSerial } from '../datastore/index.js';
import { buildCrl } from './crl.js';
import { verifyCsrDer } from './csr.js';
import { SoftwareKey } from './keymanager.js';
import { LeafKey, LeafTemplate } from './leaf.js';
import { ForcedRotation } from './forced.js';
import { type AuthorityOptions, serialHex } from './rotation.js';
import type { LoadedSlot } from './slots.js';

/** Seconds by which leaf notBefore is backdated (SPIRE's NotBeforeCushion). */
export const LEAF_BACKDATE_SECONDS = 10;

export interface SigningCaInfo {
  certificate: Buffer;
  ski: string;
  notBefore: Date;
  notAfter: Date;
  status: 'prepared' | 'active' | 'old';
}

export interface X509SvidRequest {
  spiffeId: string | SpiffeId;
  publicKey: LeafKey | KeyObject | Uint8Array;
  /** Seconds, > 0; capped so the SVID never outlives its signing CA. */
  ttl: number;
  dnsNames?: readonly string[];
  /** Further non-critical extensions (complete Extension DER), e.g. the delegation record. */
  extraExtensions?: readonly Buffer[];
}

export interface MintedX509Svid {
  spiffeId: string;
  /** [leaf, signing CA], DER. */
  chain: Buffer[];
  /** Lower-case hex of the DER INTEGER content. */
  serial: string;
  issuerSki: string;
  notBefore: Date;
  notAfter: Date;
}

export interface JwtSvidRequest {
  spiffeId: string | SpiffeId;
  audience: readonly string[];
  ttl: number;
  /** Further claims (never sub, aud, exp, iat, iss). */
  claims?: Record<string, unknown>;
}

export interface MintedJwtSvid {
  token: string;
  kid: string;
  issuedAt: Date;
  expiresAt: Date;
}

const RESERVED_CLAIMS = new Set(['sub', 'aud', 'exp', 'iat', 'iss', 'nbf']);

export class Authority extends ForcedRotation {
  readonly #templates = new Map<string, LeafTemplate>();
  #crlNumber = 0;

  /** Reads the CA slots and keys; call rotate() before signing (it creates what is missing). */
  static async load(opts: AuthorityOptions): Promise<Authority> {
    const a = new Authority(opts);
    await a.loadSlots();
    return a;
  }

  get trustDomain(): string {
    return this.opts.config.trustDomain;
  }

  protected override forget(s: LoadedSlot): void {
    this.#templates.delete(s.record.authorityId);
  }

  #info(s: LoadedSlot): SigningCaInfo {
    const r = s.record;
    return { certificate: Buffer.from(r.material), ski: r.authorityId, notBefore: new Date(r.notBefore * 1000), notAfter: new Date(r.notAfter * 1000), status: r.status };
  }

  /** The active signing CA. */
  signingCa(): SigningCaInfo {
    return this.#info(this.activeSlot('x509-signing'));
  }

  /** Every signing CA that has not expired (active, prepared, old). */
  signingCas(): SigningCaInfo[] {
    const now = this.nowSeconds();
    return [...this.slots['x509-signing'].values()].filter((s) => s.record.notAfter > now).map((s) => this.#info(s));
  }

  #template(s: LoadedSlot): LeafTemplate {
    let t = this.#templates.get(s.record.authorityId);
    if (!t) {
      const subject = this.opts.config.subject;
      t = new LeafTemplate(
        { certificate: Buffer.from(s.record.material), publicKeyDer: s.key!.publicKeyDer },
        { ...(subject?.country ? { country: subject.country } : {}), ...(subject?.organization ? { organization: subject.organization } : {}) },
      );
      this.#templates.set(s.record.authorityId, t);
    }
    return t;
  }

  #memberId(raw: string | SpiffeId): string {
    const id = typeof raw === 'string' ? parseSpiffeId(raw) : raw;
    if (id.trustDomain.name !== this.trustDomain) {
      throw new WritError('ERR_SPIFFEID_NOT_MEMBER', `${id.toString()} is not in this CA's trust domain ${this.trustDomain}.`);
    }
    if (id.path === '') throw new WritError('ERR_SPIFFEID_PATH', `${id.toString()} has no path; an SVID needs one.`);
    return id.toString();
  }

  #ttl(ttl: number): number {
    if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new WritError('ERR_CA_TTL', `An SVID TTL must be a whole number of seconds above zero; got ${ttl}.`);
    return ttl;
  }

  /** Checks a PKCS#10 request's signature and returns its public key; every other field is ignored. */
  async verifyCsr(der: Uint8Array): Promise<LeafKey> {
    return verifyCsrDer(der);
  }

  /** Signs an X509-SVID with the active signing CA. */
  async mintX509Svid(req: X509SvidRequest): Promise<MintedX509Svid> {
    const spiffeId = this.#memberId(req.spiffeId);
    const ttl = this.#ttl(req.ttl);
    const key = req.publicKey instanceof LeafKey ? req.publicKey : LeafKey.from(req.publicKey);
    const s = this.activeSlot('x509-signing');
    const nowMs = this.opts.clock.nowMs();
    const now = Math.floor(nowMs / 1000);
    const notBefore = Math.max(now - LEAF_BACKDATE_SECONDS, s.record.notBefore);
    const notAfter = Math.min(now + ttl, s.record.notAfter);
    if (notAfter <= now) throw new WritError('ERR_CA_NOT_READY', 'The signing CA expires now; wait for the next rotation.');
    const serial = this.newSerial();
    const template = this.#template(s);
    const tbs = template.tbs({
      spiffeId,
      key,
      serial,
      notBefore: new Date(notBefore * 1000),
      notAfter: new Date(notAfter * 1000),
      ...(req.dnsNames ? { dnsNames: req.dnsNames } : {}),
      ...(req.extraExtensions ? { extraExtensions: req.extraExtensions } : {}),
    });
    // Software keys sign synchronously (the fast path); other key managers through their async sign.
    const caKey = s.key!;
    const signature = caKey instanceof SoftwareKey ? caKey.signSync(tbs) : await caKey.sign(tbs);
    const leaf = template.assemble(tbs, signature);
    return {
      spiffeId,
      chain: [leaf, s.record.material],
      serial: serialHex(serial),
      issuerSki: s.record.authorityId,
      notBefore: new Date(notBefore * 1000),
      notAfter: new Date(notAfter * 1000),
    };
  }

  /** Signs a JWT-SVID (ES256, kid, typ JWT) with the active JWT key; exp is capped at the key's expiry. */
  async mintJwtSvid(req: JwtSvidRequest): Promise<MintedJwtSvid> {
    const sub = this.#memberId(req.spiffeId);
    const ttl = this.#ttl(req.ttl);
    const aud = [...req.audience];
    if (aud.length === 0 || aud.some((a) => typeof a !== 'string' || a.length === 0)) {
      throw new WritError('ERR_INPUT_INVALID', 'A JWT-SVID needs at least one audience, and no empty one.');
    }
    for (const k of Object.keys(req.claims ?? {})) {
      if (RESERVED_CLAIMS.has(k)) throw new WritError('ERR_INPUT_INVALID', `The claim "${k}" is set by the CA.`);
    }
    const s = this.activeSlot('jwt');
    const iat = this.nowSeconds();
    const exp = Math.min(iat + ttl, s.record.notAfter);
    const header = { alg: 'ES256', kid: s.record.authorityId, typ: 'JWT' };
    const payload = { ...(req.claims ?? {}), sub, aud, exp, iat, ...(this.opts.config.jwtIssuer ? { iss: this.opts.config.jwtIssuer } : {}) };
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const sig = await s.key!.sign(Buffer.from(input), 'ieee-p1363');
    return { token: `${input}.${sig.toString('base64url')}`, kid: s.record.authorityId, issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000) };
  }

  /**
   * One CRL per unexpired signing CA that still has its key, listing the revoked serials it issued
   * whose certificates have not expired yet, then one per unexpired root. `validFor` is the
   * nextUpdate interval in seconds.
   */
  async crls(revoked: readonly RevokedSerial[], validFor = 3600): Promise<Array<{ issuerSki: string; der: Buffer; thisUpdate: Date; nextUpdate: Date }>> {
    const now = this.nowSeconds();
    this.#crlNumber = Math.max(this.#crlNumber + 1, now);
    const out: Array<{ issuerSki: string; der: Buffer; thisUpdate: Date; nextUpdate: Date }> = [];
    // Signing CAs first, then one per root listing the signing CAs it revoked (none: writ retires a
    // root with its whole tree). Validators that check the whole chain (nginx ssl_crl, node:tls
    // `crl`, openssl -crl_check_all) need a CRL for every CA in the path, not only the leaf's issuer.
    for (const s of [...this.slots['x509-signing'].values(), ...this.slots['x509-root'].values()]) {
      if (!s.key || s.record.notAfter <= now) continue;
      const entries = revoked
        .filter((r) => r.issuerSki === s.record.authorityId && r.notAfter > now)
        .map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt * 1000) }));
      const thisUpdate = new Date(now * 1000);
      const nextUpdate = new Date((now + validFor) * 1000);
      const der = await buildCrl({ issuer: s.record.material, key: s.key, entries, thisUpdate, nextUpdate, crlNumber: this.#crlNumber, crypto: this.opts.keyManager.crypto });
      out.push({ issuerSki: s.record.authorityId, der, thisUpdate, nextUpdate });
    }
    return out;
  }
}
