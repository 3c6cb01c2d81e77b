/** SPIFFE IDs and trust domains: parse (strict, as go-spiffe), build, compare. */
import { WritError } from '../errors.js';
import { validatePath, validateSegment, validateTrustDomainName } from './chars.js';

export const SCHEME_PREFIX = 'spiffe://';

export class TrustDomain {
  /** Use parseTrustDomain(); the constructor does not validate. */
  private constructor(readonly name: string) {}

  /** @internal Validated construction. */
  static of(name: string): TrustDomain {
    validateTrustDomainName(name);
    return new TrustDomain(name);
  }

  /** "spiffe://<name>" */
  idString(): string {
    return SCHEME_PREFIX + this.name;
  }

  /** The SPIFFE ID of the trust domain itself (empty path). */
  id(): SpiffeId {
    return SpiffeId.unchecked(this, '');
  }

  equals(other: TrustDomain): boolean {
    return this.name === other.name;
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}

export class SpiffeId {
  private constructor(
    readonly trustDomain: TrustDomain,
    /** '' or '/seg/seg'. */
    readonly path: string,
  ) {}

  /** @internal The caller has validated `path`. */
  static unchecked(td: TrustDomain, path: string): SpiffeId {
    return new SpiffeId(td, path);
  }

  toString(): string {
    return SCHEME_PREFIX + this.trustDomain.name + this.path;
  }

  toJSON(): string {
    return this.toString();
  }

  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.equals(td);
  }

  equals(other: SpiffeId): boolean {
    return this.trustDomain.equals(other.trustDomain) && this.path === other.path;
  }

  /** Path segments: '/a/b' → ['a', 'b']; '' → []. */
  segments(): string[] {
    return this.path === '' ? [] : this.path.slice(1).split('/');
  }

  /** True when the path is exactly `prefix` or continues below it at a segment boundary. */
  hasPathPrefix(prefix: string): boolean {
    return this.path === prefix || this.path.startsWith(prefix.endsWith('/') ? prefix : prefix + '/');
  }
}

function splitId(input: string): { tdName: string; path: string } {
  if (input.length === 0) throw new WritError('ERR_SPIFFEID_EMPTY', 'The SPIFFE ID is empty.');
  if (!input.startsWith(SCHEME_PREFIX)) {
    const lower = input.slice(0, SCHEME_PREFIX.length).toLowerCase();
    const why = lower === SCHEME_PREFIX ? ' (the scheme must be lower case)' : '';
    throw new WritError('ERR_SPIFFEID_SCHEME', `A SPIFFE ID must start with "spiffe://"${why}.`);
  }
  const rest = input.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const tdName = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (tdName.length === 0) throw new WritError('ERR_SPIFFEID_TRUST_DOMAIN_MISSING', 'The SPIFFE ID has no trust domain.');
  return { tdName, path };
}

/** Parses a SPIFFE ID string; throws WritError ERR_SPIFFEID_* naming what is wrong. */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== 'string') throw new WritError('ERR_SPIFFEID_EMPTY', 'The SPIFFE ID must be a string.');
  const { tdName, path } = splitId(input);
  const td = TrustDomain.of(tdName);
  validatePath(path);
  return SpiffeId.unchecked(td, path);
}

/** Parses a trust domain given as a bare name ("example.org") or as a SPIFFE ID ("spiffe://example.org/x"). */
export function parseTrustDomain(input: string): TrustDomain {
  if (typeof input !== 'string' || input.length === 0) throw new WritError('ERR_SPIFFEID_TRUST_DOMAIN_MISSING', 'The trust domain is empty.');
  if (input.includes(':/')) return parseSpiffeId(input).trustDomain;
  return TrustDomain.of(input);
}

/** Builds an ID from path segments, each validated ('a', 'b' → /a/b). */
export function spiffeIdFromSegments(td: TrustDomain, ...segments: string[]): SpiffeId {
  for (const s of segments) validateSegment(s);
  return SpiffeId.unchecked(td, segments.length === 0 ? '' : '/' + segments.join('/'));
}

/** Builds an ID from a path ('' or '/a/b'), validated. */
export function spiffeIdFromPath(td: TrustDomain, path: string): SpiffeId {
  validatePath(path);
  return SpiffeId.unchecked(td, path);
}

/** Reports whether `input` is a valid SPIFFE ID without throwing. */
export function isSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}
