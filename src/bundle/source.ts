/** Where verifiers get bundles from: one bundle per trust domain, never a merged pool. */
import { WritError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/index.js';
import type { JwtBundle } from './jwtbundle.js';
import type { SpiffeBundle } from './spiffebundle.js';
import type { X509Bundle } from './x509bundle.js';

export interface X509BundleSource {
  /** The X.509 bundle of `td`; throws ERR_BUNDLE_NOT_FOUND when there is none. */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle;
}

export interface JwtBundleSource {
  /** The JWT bundle of `td`; throws ERR_BUNDLE_NOT_FOUND when there is none. */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle;
}

export interface SpiffeBundleSource {
  /** The SPIFFE bundle of `td`; throws ERR_BUNDLE_NOT_FOUND when there is none. */
  getSpiffeBundleForTrustDomain(td: TrustDomain): SpiffeBundle;
}

/** @internal The error a source throws for a trust domain it has no bundle for. */
export function bundleNotFound(td: TrustDomain, kind: string, have?: TrustDomain): WritError {
  const why = have ? ` (this source only holds the bundle for ${have.name})` : '';
  return new WritError('ERR_BUNDLE_NOT_FOUND', `There is no ${kind} bundle for trust domain ${td.name}${why}.`, {
    details: { trust_domain: td.name },
  });
}
