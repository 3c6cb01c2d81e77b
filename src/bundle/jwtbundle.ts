/** JWT bundle: the public keys, by key ID, trusted to sign JWT-SVIDs in one trust domain. */
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { WritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import { importPublicJwk, orderedPublicMembers, sameJwk, show } from './jwk.js';
import { type JwtBundleSource, bundleNotFound } from './source.js';

interface Authority {
  jwk: JsonWebKey;
  key: KeyObject;
}

/** Parses JSON text or bytes into a value; ERR_BUNDLE_JSON when it is not JSON. */
export function parseJsonText(input: string | Uint8Array, what: string): unknown {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new WritError('ERR_BUNDLE_JSON', `${what} is not valid JSON.`, { cause });
  }
}

/** The `keys` array of a JWK Set; ERR_BUNDLE_JSON when the document is not an object with one. */
export function jwksKeys(doc: unknown, what: string): unknown[] {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new WritError('ERR_BUNDLE_JSON', `${what} is not a JSON object.`);
  const keys = (doc as Record<string, unknown>).keys;
  if (!Array.isArray(keys)) throw new WritError('ERR_BUNDLE_JSON', `${what} has no "keys" array.`);
  return keys;
}

export class JwtBundle implements JwtBundleSource {
  readonly #keys = new Map<string, Authority>();

  constructor(
    readonly trustDomain: TrustDomain,
    authorities: Iterable<readonly [string, JsonWebKey]> | Record<string, JsonWebKey> = [],
  ) {
    const entries = Symbol.iterator in authorities ? authorities : Object.entries(authorities);
    for (const [kid, jwk] of entries) this.addAuthority(kid, jwk);
  }

  /**
   * Parses a JWK Set. Keys whose `use` is set to something other than "jwt-svid" (for instance the
   * x509-svid keys of a full SPIFFE bundle) are skipped; every other key needs a `kid`.
   */
  static parse(td: TrustDomain, jwks: string | Uint8Array): JwtBundle {
    const what = `The JWT bundle for ${td.name}`;
    const keys = jwksKeys(parseJsonText(jwks, what), what);
    const bundle = new JwtBundle(td);
    keys.forEach((k, i) => {
      const where = `JWK ${i + 1} in the JWT bundle for ${td.name}`;
      const use = typeof k === 'object' && k !== null ? (k as Record<string, unknown>).use : undefined;
      if (use !== undefined && use !== 'jwt-svid') return;
      const kid = typeof k === 'object' && k !== null ? (k as Record<string, unknown>).kid : undefined;
      bundle.#addChecked(kid, k, where);
    });
    return bundle;
  }

  /** Key ID → public JWK (a fresh map). */
  authorities(): Map<string, JsonWebKey> {
    return new Map([...this.#keys].map(([kid, a]) => [kid, { ...a.jwk }]));
  }

  findAuthority(kid: string): JsonWebKey | undefined {
    const a = this.#keys.get(kid);
    return a ? { ...a.jwk } : undefined;
  }

  /** The imported public key for `kid` (imported once, when added). */
  publicKey(kid: string): KeyObject | undefined {
    return this.#keys.get(kid)?.key;
  }

  hasAuthority(kid: string): boolean {
    return this.#keys.has(kid);
  }

  get size(): number {
    return this.#keys.size;
  }

  isEmpty(): boolean {
    return this.#keys.size === 0;
  }

  /** Adds or replaces the key for `kid`; ERR_BUNDLE_JWK if the kid is empty or the JWK is not a valid public key. */
  addAuthority(kid: string, jwk: JsonWebKey): void {
    this.#keys.delete(kid);
    this.#addChecked(kid, jwk, `The JWK for key ID ${show(kid)} in the JWT bundle for ${this.trustDomain.name}`);
  }

  removeAuthority(kid: string): boolean {
    return this.#keys.delete(kid);
  }

  /** A standard JWK Set: {"keys":[{kty,crv,x,y|n,e,kid}]} (no `use`, as the Workload API serves JWT bundles). */
  marshal(): string {
    return JSON.stringify({ keys: [...this.#keys].map(([kid, a]) => ({ ...orderedPublicMembers(a.jwk), kid })) });
  }

  equals(other: JwtBundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain) || this.#keys.size !== other.#keys.size) return false;
    for (const [kid, a] of this.#keys) {
      const b = other.#keys.get(kid);
      if (!b || !sameJwk(a.jwk, b.jwk)) return false;
    }
    return true;
  }

  clone(): JwtBundle {
    const copy = new JwtBundle(this.trustDomain);
    for (const [kid, a] of this.#keys) copy.#keys.set(kid, a);
    return copy;
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    if (!td.equals(this.trustDomain)) throw bundleNotFound(td, 'JWT', this.trustDomain);
    return this;
  }

  /** @internal Adds a validated key; duplicates of a kid are refused. */
  #addChecked(kid: unknown, jwk: unknown, where: string): void {
    if (typeof kid !== 'string' || kid.length === 0) throw new WritError('ERR_BUNDLE_JWK', `${where} has no "kid"; JWT authorities need a key ID.`);
    if (this.#keys.has(kid)) throw new WritError('ERR_BUNDLE_JWK', `${where} repeats the key ID ${show(kid)}.`);
    this.#keys.set(kid, importPublicJwk(jwk, where));
  }

  /** @internal Used by SpiffeBundle.parse after its own checks. */
  static addParsed(bundle: JwtBundle, kid: unknown, jwk: unknown, where: string): void {
    bundle.#addChecked(kid, jwk, where);
  }
}
