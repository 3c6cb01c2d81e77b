/** Matchers authorize a peer's SPIFFE ID: each throws ERR_SPIFFEID_NOT_MATCHED when it refuses. */
import { WritError } from '../errors.js';
import type { SpiffeId, TrustDomain } from './id.js';

export type Matcher = (id: SpiffeId) => void;

function refuse(id: SpiffeId, why: string): never {
  throw new WritError('ERR_SPIFFEID_NOT_MATCHED', `${id.toString()} is not authorized: ${why}.`, { details: { spiffe_id: id.toString() } });
}

/** Accepts any SPIFFE ID. */
export function matchAny(): Matcher {
  return () => undefined;
}

/** Accepts exactly `expected`. */
export function matchId(expected: SpiffeId): Matcher {
  return (id) => {
    if (!id.equals(expected)) refuse(id, `expected ${expected.toString()}`);
  };
}

/** Accepts any of `expected`. */
export function matchOneOf(...expected: SpiffeId[]): Matcher {
  const set = new Set(expected.map((e) => e.toString()));
  return (id) => {
    if (!set.has(id.toString())) refuse(id, `expected one of ${[...set].join(', ') || '(none)'}`);
  };
}

/** Accepts any ID in trust domain `td`. */
export function matchMemberOf(td: TrustDomain): Matcher {
  return (id) => {
    if (!id.memberOf(td)) refuse(id, `expected a member of ${td.idString()}`);
  };
}
