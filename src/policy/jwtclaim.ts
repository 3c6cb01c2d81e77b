/**
 * The delegation record in a JWT-SVID: one private claim, DELEGATION_CLAIM, whose value is the
 * record as a JSON object (the same members as the X.509 extension). `sub` stays the task's
 * SPIFFE ID; the claim is not RFC 8693 `act`, whose meaning is the inverse.
 */
import { type DelegationRecord, parseDelegation } from './delegation.js';

/** The claim name. A private name (RFC 7519 §4.3) prefixed with the project's name. */
export const DELEGATION_CLAIM = 'writ_delegation';

/** The claims to merge into a JWT-SVID's payload: `{ writ_delegation: {...} }` (validated). */
export function delegationClaims(record: DelegationRecord): Record<typeof DELEGATION_CLAIM, DelegationRecord> {
  return { [DELEGATION_CLAIM]: parseDelegation(record) };
}

/**
 * The delegation record in a token's claims (e.g. JwtSvid.claims), or undefined when the claim
 * is absent; an invalid claim is ERR_DELEGATION_INVALID.
 */
export function decodeDelegationFromClaims(claims: Readonly<Record<string, unknown>>): DelegationRecord | undefined {
  if (!Object.hasOwn(claims, DELEGATION_CLAIM)) return undefined;
  return parseDelegation(claims[DELEGATION_CLAIM]);
}
