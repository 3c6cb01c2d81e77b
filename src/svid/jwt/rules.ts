/** The JWT-SVID rules (JWT-SVID spec §2–4 and Appendix A), each with its error code. */
import { type ErrorCode, WritError } from '../../errors.js';

/** The algorithms JWT-SVID §2.1 allows; validators must refuse every other one ('none', HS*, EdDSA...). */
export const JWT_SVID_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;
export type JwtSvidAlgorithm = (typeof JWT_SVID_ALGORITHMS)[number];

/**
 * Default leeway for exp, nbf and iat, in seconds. JWT-SVID §4 allows "a small leeway"; 30 s
 * absorbs ordinary clock drift between hosts while keeping short-lived tokens short-lived.
 */
export const DEFAULT_JWT_CLOCK_SKEW_SECONDS = 30;

export const JWT_SVID_RULES = [
  { name: 'compact-jws', code: 'ERR_SVID_JWT_MALFORMED', description: 'The token is a JWS compact serialization: three base64url parts; header and claims are JSON objects (§1).' },
  { name: 'alg-allowed', code: 'ERR_SVID_JWT_ALG', description: 'The header alg is one of RS256/384/512, ES256/384/512, PS256/384/512 (§2.1).' },
  { name: 'typ-jwt-or-jose', code: 'ERR_SVID_JWT_TYP', description: 'The header typ, if present, is "JWT" or "JOSE" (§2.3).' },
  { name: 'header-members', code: 'ERR_SVID_JWT_HEADER', description: 'The header holds only alg, kid and typ (§2: other headers MUST NOT be included).' },
  { name: 'kid-present', code: 'ERR_SVID_JWT_KID', description: 'The header has a non-empty kid, needed to find the key (as go-spiffe and SPIRE require).' },
  { name: 'sub-spiffe-id', code: 'ERR_SVID_JWT_SUB', description: 'The sub claim is a valid SPIFFE ID (§3.1).' },
  { name: 'aud-present', code: 'ERR_SVID_JWT_AUD', description: 'The aud claim is present: a non-empty string or a non-empty array of non-empty strings (§3.2).' },
  { name: 'exp-present', code: 'ERR_SVID_JWT_EXP', description: 'The exp claim is present and a NumericDate (§3.3).' },
  { name: 'time-claims', code: 'ERR_SVID_JWT_MALFORMED', description: 'The iat and nbf claims, when present, are NumericDates.' },
  { name: 'bundle-for-sub-trust-domain', code: 'ERR_SVID_JWT_NO_BUNDLE', description: "The bundle source has a JWT bundle for the subject's trust domain (§4)." },
  { name: 'key-for-kid', code: 'ERR_SVID_JWT_KEY_NOT_FOUND', description: 'That JWT bundle has a key with the header kid (§4).' },
  { name: 'signature', code: 'ERR_SVID_JWT_SIGNATURE', description: 'The key suits alg and the signature verifies with it (§4).' },
  { name: 'not-expired', code: 'ERR_SVID_JWT_EXPIRED', description: 'exp is not in the past, beyond the clock skew (§4).' },
  { name: 'not-before', code: 'ERR_SVID_JWT_NOT_YET_VALID', description: 'nbf and iat, when present, are not in the future beyond the clock skew.' },
  { name: 'aud-match', code: 'ERR_SVID_JWT_AUD', description: 'aud contains at least one of the expected audiences, and at least one is expected (§3.2).' },
] as const satisfies ReadonlyArray<{ name: string; code: ErrorCode; description: string }>;

export type JwtSvidRule = (typeof JWT_SVID_RULES)[number]['name'];

const CODES = new Map<string, ErrorCode>(JWT_SVID_RULES.map((r) => [r.name, r.code]));

/** The error for a broken rule: its code, the sentence, and { rule, ...details }. */
export function jwtViolation(rule: JwtSvidRule, sentence: string, details: Record<string, unknown> = {}, cause?: unknown): WritError {
  return new WritError(CODES.get(rule)!, sentence, cause === undefined ? { details: { rule, ...details } } : { details: { rule, ...details }, cause });
}
