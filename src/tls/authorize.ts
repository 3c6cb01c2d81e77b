/**
 * Authorizers decide whether a verified peer's SPIFFE ID may talk to us. Each returns undefined to
 * allow and a WritError (ERR_TLS_PEER_NOT_AUTHORIZED) to refuse, so they compose without try/catch.
 * They run only after the peer's X509-SVID has been verified against its own trust domain's bundle.
 */
import { WritError, isWritError } from '../errors.js';
import { type Matcher, SCHEME_PREFIX, type SpiffeId, type TrustDomain, parseSpiffeId, parseTrustDomain, validateSegment, validateTrustDomainName } from '../spiffeid/index.js';

/**
 * Allows `id` (return undefined, or true) or refuses it (return a WritError, or false). `chain` is
 * the peer's certificate chain as it presented it (DER, leaf first), for authorizers that read
 * extensions such as the delegation record. Anything else returned or thrown refuses.
 */
export type Authorizer = (id: SpiffeId, chain: readonly Buffer[]) => WritError | boolean | undefined;

/** The refusal every built-in authorizer returns. */
export function notAuthorized(id: SpiffeId, why: string, details: Record<string, unknown> = {}, cause?: unknown): WritError {
  return new WritError('ERR_TLS_PEER_NOT_AUTHORIZED', `The peer ${id.toString()} is not authorized: ${why}.`, {
    details: { spiffe_id: id.toString(), ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Runs `authorizer` fail-closed: undefined or true allows; a refusal with another code (say a
 * Matcher's ERR_SPIFFEID_NOT_MATCHED) is rewrapped as ERR_TLS_PEER_NOT_AUTHORIZED with the
 * original code in details.reason; false, other values and exceptions refuse.
 */
export function runAuthorizer(authorizer: Authorizer, id: SpiffeId, chain: readonly Buffer[]): WritError | undefined {
  let result: unknown;
  try {
    result = authorizer(id, chain);
  } catch (e) {
    result = isWritError(e) ? e : notAuthorized(id, 'the authorizer failed', {}, e);
  }
  if (result === undefined || result === true) return undefined;
  if (isWritError(result)) {
    if (result.code === 'ERR_TLS_PEER_NOT_AUTHORIZED') return result;
    return new WritError('ERR_TLS_PEER_NOT_AUTHORIZED', result.message, { details: { spiffe_id: id.toString(), ...result.details, reason: result.code }, cause: result });
  }
  return notAuthorized(id, 'the authorizer refused it');
}

const asId = (id: string | SpiffeId): SpiffeId => (typeof id === 'string' ? parseSpiffeId(id) : id);

/** Allows every peer whose SVID verified (any trust domain the source has a bundle for). */
export function authorizeAny(): Authorizer {
  return () => undefined;
}

/** Allows exactly `expected`. */
export function authorizeId(expected: string | SpiffeId): Authorizer {
  const want = asId(expected);
  return (id) => (id.equals(want) ? undefined : notAuthorized(id, `expected ${want.toString()}`, { expected: want.toString() }));
}

/** Allows any of `expected` (none given: nobody). */
export function authorizeOneOf(...expected: Array<string | SpiffeId>): Authorizer {
  const set = new Set(expected.map((e) => asId(e).toString()));
  const list = [...set].join(', ') || '(none)';
  return (id) => (set.has(id.toString()) ? undefined : notAuthorized(id, `expected one of ${list}`, { expected: [...set] }));
}

/** Allows any ID of trust domain `td`. */
export function authorizeMemberOf(td: string | TrustDomain): Authorizer {
  const want = typeof td === 'string' ? parseTrustDomain(td) : td;
  return (id) => (id.memberOf(want) ? undefined : notAuthorized(id, `expected a member of ${want.idString()}`, { trust_domain: want.name }));
}

function badPattern(pattern: string, why: string, cause?: unknown): WritError {
  const shown = JSON.stringify(pattern.length > 120 ? `${pattern.slice(0, 120)}…` : pattern);
  return new WritError('ERR_TLS_PATTERN', `The SPIFFE ID pattern ${shown} is not valid: ${why}.`, cause === undefined ? {} : { cause });
}

// Example: authorizeMatch('spiffe://example.org/agent/*/task/*') allows every task of every agent
// of example.org, and neither the agents themselves nor anything deeper.
/**
 * Allows IDs matching `pattern`, a SPIFFE ID whose path segments may each be `*`: a `*` stands for
 * exactly one whole segment, other segments match literally, and the segment count must be equal.
 * The trust domain is literal; partial wildcards (`task-*`) and `**` are refused with ERR_TLS_PATTERN.
 */
export function authorizeMatch(pattern: string): Authorizer {
  if (typeof pattern !== 'string' || !pattern.startsWith(SCHEME_PREFIX)) throw badPattern(String(pattern), `it must start with "${SCHEME_PREFIX}"`);
  const rest = pattern.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const tdName = slash < 0 ? rest : rest.slice(0, slash);
  try {
    validateTrustDomainName(tdName);
  } catch (e) {
    throw badPattern(pattern, `the trust domain is not literal and valid (${isWritError(e) ? e.message.replace(/\.$/, '') : 'unreadable'})`, e);
  }
  const td = parseTrustDomain(tdName);
  if (slash < 0 || slash === rest.length - 1) throw badPattern(pattern, 'it has no path; use authorizeMemberOf() to allow a whole trust domain');
  const segments = rest.slice(slash + 1).split('/');
  segments.forEach((seg, i) => {
    if (seg === '*') return;
    if (seg.includes('*')) throw badPattern(pattern, `segment ${i + 1} ("${seg}") mixes "*" with other characters; "*" must be a whole segment`);
    try {
      validateSegment(seg);
    } catch (e) {
      throw badPattern(pattern, `segment ${i + 1} is not valid (${isWritError(e) ? e.message.replace(/\.$/, '') : 'unreadable'})`, e);
    }
  });
  return (id) => {
    const got = id.memberOf(td) ? id.segments() : undefined;
    const ok = got !== undefined && got.length === segments.length && segments.every((s, i) => s === '*' || s === got[i]);
    return ok ? undefined : notAuthorized(id, `expected an ID matching ${pattern}`, { pattern });
  };
}

/** Allows when every authorizer allows; refuses with the first refusal. */
export function authorizeAll(...authorizers: Authorizer[]): Authorizer {
  return (id, chain) => {
    for (const a of authorizers) {
      const refused = runAuthorizer(a, id, chain);
      if (refused) return refused;
    }
    return undefined;
  };
}

/** Allows when at least one authorizer allows (none given: nobody); refuses naming every refusal. */
export function authorizeAnyOf(...authorizers: Authorizer[]): Authorizer {
  return (id, chain) => {
    const refusals: WritError[] = [];
    for (const a of authorizers) {
      const refused = runAuthorizer(a, id, chain);
      if (!refused) return undefined;
      refusals.push(refused);
    }
    const why = refusals.length === 0 ? 'no authorizer was given' : `none of ${refusals.length} authorizers allowed it`;
    return notAuthorized(id, why, { refusals: refusals.map((r) => r.message) });
  };
}

/** Adapts a spiffeid Matcher (throws ERR_SPIFFEID_NOT_MATCHED) into an Authorizer. */
export function authorizeMatcher(matcher: Matcher): Authorizer {
  return (id) => {
    matcher(id);
    return undefined;
  };
}
