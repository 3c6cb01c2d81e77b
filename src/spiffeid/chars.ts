/**
 * Character rules of the SPIFFE ID spec (section 2): trust domain names use lower-case letters,
 * digits, '.', '-' and '_'; path segments also allow upper-case letters. No percent-encoding.
 */
import { WritError } from '../errors.js';

/** The spec's limit on a trust domain name, in bytes (all valid characters are one byte). */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const TD_CHAR = /^[a-z0-9._-]$/;
const PATH_CHAR = /^[a-zA-Z0-9._-]$/;

/** Shows a character safely in an error sentence. */
export function describeChar(c: string): string {
  const cp = c.codePointAt(0) ?? 0;
  if (cp < 0x20 || cp === 0x7f || cp > 0x7e) return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return `"${c}"`;
}

export function isTrustDomainChar(c: string): boolean {
  return TD_CHAR.test(c);
}

export function isPathChar(c: string): boolean {
  return PATH_CHAR.test(c);
}

/** Throws unless `name` is a valid trust domain name. */
export function validateTrustDomainName(name: string): void {
  if (name.length === 0) throw new WritError('ERR_SPIFFEID_TRUST_DOMAIN_MISSING', 'The trust domain is empty.');
  for (const c of name) {
    if (!isTrustDomainChar(c)) {
      const hint = c >= 'A' && c <= 'Z' ? ' (trust domains must be lower case)' : '';
      throw new WritError(
        'ERR_SPIFFEID_TRUST_DOMAIN_CHARS',
        `The trust domain contains the character ${describeChar(c)}, which is not allowed${hint}; use a-z, 0-9, ".", "-" and "_".`,
      );
    }
  }
  if (Buffer.byteLength(name) > MAX_TRUST_DOMAIN_LENGTH) {
    throw new WritError('ERR_SPIFFEID_TRUST_DOMAIN_TOO_LONG', `The trust domain is ${name.length} bytes long; the limit is ${MAX_TRUST_DOMAIN_LENGTH}.`);
  }
}

/** Throws unless `segment` is a valid path segment (non-empty, not "." or "..", allowed characters only). */
export function validateSegment(segment: string): void {
  if (segment.length === 0) throw new WritError('ERR_SPIFFEID_PATH', 'The path has an empty segment ("//" or a trailing "/").');
  if (segment === '.' || segment === '..') {
    throw new WritError('ERR_SPIFFEID_PATH', `The path has a "${segment}" segment; relative segments are not allowed.`);
  }
  for (const c of segment) {
    if (!isPathChar(c)) {
      throw new WritError(
        'ERR_SPIFFEID_PATH',
        `The path contains the character ${describeChar(c)}, which is not allowed; use a-z, A-Z, 0-9, ".", "-" and "_".`,
      );
    }
  }
}

/** Throws unless `path` is '' or a valid SPIFFE ID path ('/seg/seg'). */
export function validatePath(path: string): void {
  if (path === '') return;
  if (!path.startsWith('/')) throw new WritError('ERR_SPIFFEID_PATH', 'The path must start with "/".');
  // split('/') on '/a/b' gives ['', 'a', 'b']; the first element is the empty string before the leading slash.
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) validateSegment(segs[i]!);
}
