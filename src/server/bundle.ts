/**
 * The trust domain's own bundle as the server publishes it: SPIFFE bundle JSON (x509-svid keys for
 * the roots, jwt-svid keys with kid for the JWT authorities, spiffe_sequence, spiffe_refresh_hint)
 * and PEM. The sequence only moves when the keys or the refresh hint change.
 */
import type { JsonWebKey } from 'node:crypto';
import { SpiffeBundle, encodePem, jwkFromPublicKey } from '../bundle/index.js';
import type { JwtAuthority } from '../ca/index.js';
import { parseTrustDomain } from '../spiffeid/index.js';

export function renderBundleDocument(trustDomain: string, x509: readonly Buffer[], jwt: readonly JwtAuthority[], refreshHint: number, sequence: number): string {
  const jwtAuthorities: Array<[string, JsonWebKey]> = jwt.map((a) => [a.kid, jwkFromPublicKey(a.publicKeyDer)]);
  const bundle = new SpiffeBundle(parseTrustDomain(trustDomain), { x509Authorities: x509, jwtAuthorities, sequenceNumber: sequence, refreshHint });
  return bundle.marshal();
}

/** What the bundle says apart from its sequence number, for "did anything change". */
export function bundleContentKey(trustDomain: string, document: string): string {
  const b = SpiffeBundle.parse(parseTrustDomain(trustDomain), document);
  b.sequenceNumber = undefined;
  return b.marshal();
}

export function pemOfAuthorities(x509: readonly Buffer[]): string {
  return x509.map((der) => encodePem('CERTIFICATE', der)).join('');
}
