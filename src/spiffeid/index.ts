/** SPIFFE ID and trust domain: parse, build, match. */
export { MAX_TRUST_DOMAIN_LENGTH, validatePath, validateSegment, validateTrustDomainName } from './chars.js';
export { SCHEME_PREFIX, SpiffeId, TrustDomain, isSpiffeId, parseSpiffeId, parseTrustDomain, spiffeIdFromPath, spiffeIdFromSegments } from './id.js';
export { matchAny, matchId, matchMemberOf, matchOneOf, type Matcher } from './match.js';
