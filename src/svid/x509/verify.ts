/**
 * X509-SVID verification (X509-SVID §5): the SVID rules, then RFC 5280 path validation against the
 * bundle of the leaf's own trust domain only, validity at `now`, path lengths and optional CRLs.
 */
import type { X509Certificate } from 'node:crypto';
import type { X509Bundle, X509BundleSource } from '../../bundle/index.js';
import { type WritError, isWritError } from '../../errors.js';
import type { SpiffeId } from '../../spiffeid/index.js';
import { UNDERSTOOD_CRITICAL } from './cert.js';
import { type CrlInfo, crlSignatureValid, readCrl } from './crl.js';
import { DerError } from './der.js';
import { x509Violation } from './rules.js';
import { type CertificateChainInput, certName, checkSvidChain, infoOf, readChain } from './svid.js';

export interface VerifyX509SvidOptions {
  /** The time to check validity at; default now. */
  now?: Date;
  /** DER CRLs; a leaf or intermediate listed by a CRL of its issuer (signature checked) is revoked. */
  crls?: readonly Uint8Array[];
}

export interface VerifiedX509Svid {
  id: SpiffeId;
  /** Every chain found, leaf first and ending in a bundle authority, as DER. */
  verifiedChains: Buffer[][];
}

/** Longest chain searched (leaf + intermediates + authority), and most chains collected. */
const MAX_CHAIN_LENGTH = 10;
const MAX_CHAINS = 16;
/** Bounds the search when many given intermediates cross-sign each other. */
const MAX_SEARCH_STEPS = 1000;

export function verifyX509Svid(chain: CertificateChainInput, bundles: X509BundleSource, opts: VerifyX509SvidOptions = {}): VerifiedX509Svid {
  const certs = readChain(chain);
  const id = checkSvidChain(certs);
  const td = id.trustDomain;
  let bundle: X509Bundle;
  try {
    bundle = bundles.getX509BundleForTrustDomain(td);
  } catch (cause) {
    if (isWritError(cause) && cause.code === 'ERR_BUNDLE_NOT_FOUND') {
      throw x509Violation('bundle-for-leaf-trust-domain', `There is no X.509 bundle for ${td.name}, the trust domain of ${id.toString()}.`, { trust_domain: td.name }, cause);
    }
    throw cause;
  }
  const now = opts.now ?? new Date();
  checkValidity(certs[0]!, 0, now, 'leaf');
  certs.forEach((c, i) => checkCritical(c, i));
  const crls = (opts.crls ?? []).map((der, i) => {
    try {
      return readCrl(Buffer.from(der));
    } catch (cause) {
      if (!(cause instanceof DerError)) throw cause;
      throw x509Violation('crl-der', `CRL ${i + 1} is not a well-formed DER CRL (${cause.message}).`, { crl: i + 1 }, cause);
    }
  });
  const roots = bundle.authorityCertificates().filter((r) => {
    try {
      return infoOf(r, 0).basicConstraints?.ca === true;
    } catch {
      return false;
    }
  });
  if (roots.length === 0) {
    throw x509Violation('chain-to-authority', `The X.509 bundle for ${td.name} holds no CA certificate to verify ${id.toString()} against.`, { trust_domain: td.name });
  }

  const issued = new Map<string, boolean>();
  const issuedBy = (child: X509Certificate, ci: number, parent: X509Certificate, pi: string): boolean => {
    const k = `${ci}:${pi}`;
    let v = issued.get(k);
    if (v === undefined) {
      v = child.checkIssued(parent) && child.verify(parent.publicKey);
      issued.set(k, v);
    }
    return v;
  };

  const found: X509Certificate[][] = [];
  let firstError: WritError | undefined;
  // Depth-first search over the given intermediates, in any order, as Go's crypto/x509 does.
  let steps = 0;
  const search = (path: number[]): void => {
    if (found.length >= MAX_CHAINS || ++steps > MAX_SEARCH_STEPS) return;
    const ci = path[path.length - 1]!;
    const cur = certs[ci]!;
    roots.forEach((root, ri) => {
      if (root.raw.equals(cur.raw) || !issuedBy(cur, ci, root, `r${ri}`)) return;
      const candidate = [...path.map((i) => certs[i]!), root];
      const err = checkCandidate(candidate, now);
      if (err) firstError ??= err;
      else found.push(candidate);
    });
    if (path.length + 1 >= MAX_CHAIN_LENGTH) return;
    for (let ii = 1; ii < certs.length; ii++) {
      if (path.includes(ii) || certs[ii]!.raw.equals(cur.raw)) continue;
      if (issuedBy(cur, ci, certs[ii]!, `c${ii}`)) search([...path, ii]);
    }
  };
  search([0]);
  if (found.length === 0) {
    throw (
      firstError ??
      x509Violation('chain-to-authority', `${id.toString()} does not chain to an authority of the X.509 bundle for ${td.name}.`, {
        trust_domain: td.name,
        spiffe_id: id.toString(),
      })
    );
  }
  if (crls.length > 0) for (const c of found) checkRevocation(c, crls);
  return { id, verifiedChains: found.map((c) => c.map((x) => x.raw)) };
}

function describe(i: number, role: 'leaf' | 'intermediate' | 'authority', cert: X509Certificate): string {
  return role === 'authority' ? `The bundle authority "${cert.subject.replace(/\n/g, ', ')}"` : certName(i);
}

function checkValidity(cert: X509Certificate, i: number, now: Date, role: 'leaf' | 'intermediate' | 'authority'): void {
  const info = infoOf(cert, i);
  if (now.getTime() < info.notBefore.getTime()) {
    throw x509Violation('not-yet-valid', `${describe(i, role, cert)} is not valid before ${info.notBefore.toISOString()}.`, {
      certificate: role === 'authority' ? 'authority' : i + 1,
      not_before: info.notBefore.toISOString(),
    });
  }
  if (now.getTime() > info.notAfter.getTime()) {
    throw x509Violation('not-expired', `${describe(i, role, cert)} expired at ${info.notAfter.toISOString()}.`, {
      certificate: role === 'authority' ? 'authority' : i + 1,
      not_after: info.notAfter.toISOString(),
    });
  }
}

function checkCritical(cert: X509Certificate, i: number): void {
  for (const [oid, ext] of infoOf(cert, i).extensions) {
    if (ext.critical && !UNDERSTOOD_CRITICAL.has(oid)) {
      throw x509Violation('critical-extensions', `${certName(i)} has the critical extension ${oid}, which this verifier does not process.`, {
        certificate: i + 1,
        oid,
      });
    }
  }
}

/** Validity of the intermediates and authority of one candidate chain, and path length limits. */
function checkCandidate(chain: X509Certificate[], now: Date): WritError | undefined {
  try {
    for (let j = 1; j < chain.length; j++) checkValidity(chain[j]!, j, now, j === chain.length - 1 ? 'authority' : 'intermediate');
    for (let j = 1; j < chain.length; j++) {
      const pathLen = infoOf(chain[j]!, j).basicConstraints?.pathLen;
      if (pathLen !== undefined && j - 1 > pathLen) {
        const who = j === chain.length - 1 ? 'The bundle authority' : certName(j);
        return x509Violation('path-length', `${who} allows ${pathLen} CA certificates below it but the chain has ${j - 1}.`, { certificate: j + 1 });
      }
    }
  } catch (e) {
    if (isWritError(e)) return e;
    throw e;
  }
  return undefined;
}

function checkRevocation(chain: X509Certificate[], crls: CrlInfo[]): void {
  for (let j = 0; j < chain.length - 1; j++) {
    const info = infoOf(chain[j]!, j);
    const serial = info.serial.toString('hex');
    crls.forEach((crl, k) => {
      // A CRL counts only when it names this certificate's issuer and is signed by the issuer's key;
      // CRLs of other CAs (even ones with the same name) are skipped.
      if (!crl.issuer.equals(info.issuer) || !crl.revoked.has(serial)) return;
      if (!crlSignatureValid(crl, chain[j + 1]!.publicKey)) return;
      throw x509Violation('not-revoked', `${certName(j)} (serial ${serial}) is revoked by CRL ${k + 1}.`, { certificate: j + 1, serial, crl: k + 1 });
    });
  }
}
