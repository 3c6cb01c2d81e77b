/** A set of SPIFFE bundles keyed by trust domain: the trust store of a verifier that federates. */
import type { TrustDomain } from '../spiffeid/index.js';
import { JwtBundle } from './jwtbundle.js';
import { type JwtBundleSource, type SpiffeBundleSource, type X509BundleSource, bundleNotFound } from './source.js';
import { SpiffeBundle } from './spiffebundle.js';
import { X509Bundle } from './x509bundle.js';

export class BundleSet implements X509BundleSource, JwtBundleSource, SpiffeBundleSource {
  readonly #bundles = new Map<string, SpiffeBundle>();

  constructor(bundles: Iterable<SpiffeBundle | X509Bundle | JwtBundle> = []) {
    for (const b of bundles) this.add(b);
  }

  /**
   * Adds a bundle for its trust domain. A SpiffeBundle replaces whatever the set held for that
   * trust domain; an X509Bundle or JwtBundle replaces only that part and keeps the other.
   */
  add(bundle: SpiffeBundle | X509Bundle | JwtBundle): void {
    const name = bundle.trustDomain.name;
    if (bundle instanceof SpiffeBundle) {
      this.#bundles.set(name, bundle.clone());
      return;
    }
    const current = this.#bundles.get(name) ?? new SpiffeBundle(bundle.trustDomain);
    if (bundle instanceof X509Bundle) current.setX509Bundle(bundle);
    else current.setJwtBundle(bundle);
    this.#bundles.set(name, current);
  }

  /** The SPIFFE bundle of `td`, or undefined. */
  get(td: TrustDomain): SpiffeBundle | undefined {
    return this.#bundles.get(td.name);
  }

  has(td: TrustDomain): boolean {
    return this.#bundles.has(td.name);
  }

  remove(td: TrustDomain): boolean {
    return this.#bundles.delete(td.name);
  }

  get size(): number {
    return this.#bundles.size;
  }

  /** Trust domain names, sorted. */
  trustDomainNames(): string[] {
    return [...this.#bundles.keys()].sort();
  }

  /** All bundles, sorted by trust domain name. */
  bundles(): SpiffeBundle[] {
    return this.trustDomainNames().map((n) => this.#bundles.get(n)!);
  }

  getSpiffeBundleForTrustDomain(td: TrustDomain): SpiffeBundle {
    const b = this.#bundles.get(td.name);
    if (!b) throw bundleNotFound(td, 'SPIFFE');
    return b;
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    const b = this.#bundles.get(td.name);
    if (!b) throw bundleNotFound(td, 'X.509');
    return b.getX509BundleForTrustDomain(td);
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    const b = this.#bundles.get(td.name);
    if (!b) throw bundleNotFound(td, 'JWT');
    return b.getJwtBundleForTrustDomain(td);
  }
}
