/**
 * OIDC discovery beside the bundle endpoint, so that standard OIDC libraries and cloud providers
 * (AWS, GCP, Vault) can verify JWT-SVIDs: `/.well-known/openid-configuration` names the issuer
 * and `jwks_uri` (= issuer + `/keys`), and `/keys` is a plain JWKS of the trust domain's JWT-SVID
 * keys (kid, use "sig", alg), without the SPIFFE members.
 */
import type { JsonWebKey } from 'node:crypto';
import { WritError } from '../errors.js';
import type { SpiffeBundle } from '../bundle/index.js';

export const OIDC_DISCOVERY_PATH = '/.well-known/openid-configuration';
export const OIDC_KEYS_PATH = '/keys';

/** JWS algorithm by JWK key type and curve; keys of any other kind are left out of /keys. */
const ALG_BY_KEY: Record<string, string> = { 'EC/P-256': 'ES256', 'EC/P-384': 'ES384', 'EC/P-521': 'ES512' };

/** The algorithms writ signs JWT-SVIDs with (ca.key_type ec-p256). */
export const ID_TOKEN_ALGS = ['ES256'] as const;

export interface OidcJwk {
  kty: string;
  kid: string;
  use: 'sig';
  alg: string;
  crv?: string;
  x?: string;
  y?: string;
}

/** The JWKS served at /keys: each JWT authority of the bundle as {kty, kid, use, alg, crv, x, y}. */
export function oidcJwks(bundle: SpiffeBundle): { keys: OidcJwk[] } {
  const keys: OidcJwk[] = [];
  for (const [kid, jwk] of bundle.jwtAuthorities) {
    const alg = ALG_BY_KEY[`${jwk.kty ?? ''}/${(jwk as JsonWebKey).crv ?? ''}`];
    if (!alg) continue;
    keys.push({ kty: jwk.kty!, kid, use: 'sig', alg, crv: jwk.crv!, x: jwk.x!, y: jwk.y! });
  }
  return { keys };
}

/** A Host header value: a DNS name or IPv4 address, or a bracketed IPv6 address, and an optional port. */
const HOST = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * The issuer: `jwt_issuer` when configured (the `iss` claim of every JWT-SVID then), otherwise
 * `https://` + the Host the client asked for. A malformed Host is ERR_INPUT_INVALID.
 */
export function issuerFor(configured: string | undefined, host: string | undefined, fallbackHost: string): string {
  // Exactly as configured: it must equal the `iss` claim the CA puts in JWT-SVIDs.
  if (configured) return configured;
  const h = (host ?? fallbackHost).toLowerCase();
  if (h.length > 260 || !HOST.test(h)) throw new WritError('ERR_INPUT_INVALID', 'The Host header is not a host name with an optional port.');
  return `https://${h}`;
}

/** The OpenID Provider metadata (OpenID Connect Discovery 1.0 §3) for an issuer. */
export function discoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer.replace(/\/+$/, '')}${OIDC_KEYS_PATH}`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [...ID_TOKEN_ALGS],
  };
}
