/** Bundles: X.509 and JWT authorities of a trust domain, the SPIFFE bundle format, and sets of bundles. */
export { JwtBundle } from './jwtbundle.js';
export { jwkFromPublicKey } from './jwk.js';
export { decodePem, encodePem, type PemBlock } from './pem.js';
export { BundleSet } from './set.js';
export type { JwtBundleSource, SpiffeBundleSource, X509BundleSource } from './source.js';
export { JWT_SVID_USE, SpiffeBundle, type SpiffeBundleInit, X509_SVID_USE } from './spiffebundle.js';
export { X509Bundle, parseCertificateDer } from './x509bundle.js';
