/**
 * Foreign bundles: what must hold before one is stored, and which of two bundles of a trust domain
 * is the newer. A bundle is always kept as a <trust domain, bundle> pair (SPIFFE Trust Domain and
 * Bundle §3): it is parsed for the trust domain it is stored under, every X.509 authority must be a
 * CA certificate, and one naming another trust domain in its URI SAN is refused, so keys of two
 * trust domains are never merged. The stored document is the canonical re-encoding, not the bytes
 * received.
 */
import { SpiffeBundle, X509Bundle } from '../../bundle/index.js';
import { WritError, isWritError, type ErrorCode } from '../../errors.js';
import { readCertificateInfo } from '../../svid/index.js';
import { parseSpiffeId, type TrustDomain } from '../../spiffeid/index.js';

export type BundleFormat = 'pem' | 'spiffe';

/**
 * Every x509 authority is a CA certificate and names no other trust domain. `code` is the error for
 * a refusal (ERR_FEDERATION_BUNDLE_TRUST_DOMAIN for fetched bundles, ERR_BUNDLE_TRUST_DOMAIN for an
 * operator's file); `from` completes "The bundle …".
 */
export function checkAuthorities(bundle: SpiffeBundle, from: string, codes: { trustDomain: ErrorCode; invalid: ErrorCode }): void {
  const td = bundle.trustDomain.name;
  bundle.x509Authorities.forEach((der, i) => {
    const info = readCertificateInfo(der);
    if (info.basicConstraints?.ca !== true) {
      throw new WritError(codes.invalid, `The bundle ${from} holds X.509 authority ${i + 1}, which is not a CA certificate.`, { details: { authority: i + 1 } });
    }
    for (const uri of info.uris) {
      if (!uri.startsWith('spiffe://')) continue;
      let other: string;
      try {
        other = parseSpiffeId(uri).trustDomain.name;
      } catch {
        throw new WritError(codes.trustDomain, `The bundle ${from} holds X.509 authority ${i + 1}, whose URI SAN is not a valid SPIFFE ID.`, { details: { authority: i + 1 } });
      }
      if (other !== td) {
        throw new WritError(codes.trustDomain, `The bundle ${from} holds X.509 authority ${i + 1} of the trust domain ${other}, not ${td}; bundles of different trust domains are never merged.`, {
          details: { authority: i + 1, trust_domain: td, other },
        });
      }
    }
  });
}

/** Parses a bundle an operator supplies (`writ bundle set`, a bootstrap bundle): PEM certificates or SPIFFE bundle JSON. */
export function parseOperatorBundle(td: TrustDomain, format: unknown, data: unknown): SpiffeBundle {
  if (typeof data !== 'string' || data === '') throw new WritError('ERR_INPUT_INVALID', 'The bundle data must be a non-empty string.');
  let bundle: SpiffeBundle;
  if (format === 'pem') bundle = SpiffeBundle.fromX509Bundle(X509Bundle.parsePem(td, data));
  else if (format === 'spiffe') bundle = SpiffeBundle.parse(td, data);
  else throw new WritError('ERR_INPUT_INVALID', `The bundle format must be pem or spiffe; got ${JSON.stringify(format ?? null)}.`);
  if (bundle.x509Authorities.length === 0 && bundle.jwtAuthorities.size === 0) {
    throw new WritError('ERR_BUNDLE_EMPTY', `The bundle for ${td.name} holds no X.509 or JWT authority.`);
  }
  checkAuthorities(bundle, `for ${td.name}`, { trustDomain: 'ERR_BUNDLE_TRUST_DOMAIN', invalid: 'ERR_INPUT_INVALID' });
  return bundle;
}

/** Reads a bundle from an endpoint's body: UTF-8 JSON that is a SPIFFE bundle for `td`, with sound authorities. */
export function parseFetchedBundle(td: TrustDomain, body: Buffer, from: string): SpiffeBundle {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    JSON.parse(text);
  } catch {
    throw new WritError('ERR_FEDERATION_NOT_JSON', `The answer of ${from} is not JSON (${body.length} bytes).`, { details: { bytes: body.length } });
  }
  let bundle: SpiffeBundle;
  try {
    bundle = SpiffeBundle.parse(td, text);
  } catch (e) {
    if (!isWritError(e)) throw e;
    throw new WritError('ERR_FEDERATION_BUNDLE_INVALID', `The answer of ${from} is not a valid SPIFFE bundle for ${td.name}: ${e.message}`, {
      cause: e,
      details: { reason: e.code },
    });
  }
  checkAuthorities(bundle, `from ${from}`, { trustDomain: 'ERR_FEDERATION_BUNDLE_TRUST_DOMAIN', invalid: 'ERR_FEDERATION_BUNDLE_INVALID' });
  return bundle;
}

/** The bundle without its sequence number, for "is the content the same". */
function contentKey(b: SpiffeBundle): string {
  const c = b.clone();
  c.sequenceNumber = undefined;
  return c.marshal();
}

export type Freshness = { store: true; reason: 'new' | 'newer' | 'changed' } | { store: false; reason: 'unchanged' | 'older-same-content' } | { store: false; reason: 'stale'; error: WritError };

/**
 * Whether a fetched bundle replaces the held one (SPIFFE Federation §4.2: spiffe_sequence orders
 * freshness; without one, the latest retrieved wins). A fetched sequence at or below the held one
 * with different content is stale and refused; a bundle without a sequence replaces only when its
 * content differs.
 */
export function freshness(held: SpiffeBundle | undefined, fetched: SpiffeBundle): Freshness {
  if (!held) return { store: true, reason: 'new' };
  const same = contentKey(held) === contentKey(fetched);
  const f = fetched.sequenceNumber;
  const h = held.sequenceNumber;
  if (f === undefined) return same ? { store: false, reason: 'unchanged' } : { store: true, reason: 'changed' };
  if (h === undefined || f > h) return { store: true, reason: 'newer' };
  if (same) return { store: false, reason: f === h ? 'unchanged' : 'older-same-content' };
  const td = fetched.trustDomain.name;
  return {
    store: false,
    reason: 'stale',
    error: new WritError(
      'ERR_FEDERATION_STALE_SEQUENCE',
      `The bundle fetched for ${td} has spiffe_sequence ${f}, not above the ${h} held, but different content; it was refused.`,
      { details: { fetched: f, held: h } },
    ),
  };
}
