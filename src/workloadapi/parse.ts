/**
 * Validation of Workload API responses (SPIFFE Workload API §4.5, §5, §6): every SVID parses, its
 * key matches its leaf, mandatory fields are set, bundle map keys are trust domains (`td` or
 * `spiffe://td`). Anything else is ERR_WORKLOADAPI_RESPONSE naming what is wrong. An empty bundle
 * value means "cleared" (§4.4) and is skipped. Duplicate hints: the first SVID wins (§8).
 */
import { BundleSet, JwtBundle, X509Bundle } from '../bundle/index.js';
import { isWritError } from '../errors.js';
import { type SpiffeId, type TrustDomain, parseSpiffeId, parseTrustDomain } from '../spiffeid/index.js';
import { type JwtSvid, type ValidateJwtSvidOptions, type X509Svid, parseInsecureJwtSvid, parseX509Svid } from '../svid/index.js';
import {
  type JWTBundlesResponseMessage,
  type JWTSVIDResponseMessage,
  type ValidateJWTSVIDResponseMessage,
  type X509BundlesResponseMessage,
  type X509SVIDResponseMessage,
  fromStruct,
} from './proto.js';
import { type CallContext, malformed } from './status.js';

/** What FetchX509SVID streams: the SVIDs (the first is the default), all bundles, CRLs. */
export interface X509Context {
  svids: X509Svid[];
  /** The own trust domain's bundle (from the SVIDs) and the federated ones. */
  bundles: BundleSet;
  /** DER CRLs. */
  crls: Buffer[];
}

/** What FetchX509Bundles streams. */
export interface X509BundlesUpdate {
  bundles: BundleSet;
  crls: Buffer[];
}

export interface ValidatedJwtSvid {
  spiffeId: SpiffeId;
  claims: Record<string, unknown>;
}

function reason(e: unknown): string {
  return isWritError(e) ? e.message : 'it could not be parsed.';
}

function trustDomainKey(ctx: CallContext, key: string, where: string): TrustDomain {
  try {
    return parseTrustDomain(key);
  } catch (e) {
    throw malformed(ctx, `the ${where} key ${JSON.stringify(key.slice(0, 80))} is not a trust domain (${reason(e)})`, e);
  }
}

function crlList(crls: readonly Buffer[] | undefined): Buffer[] {
  return (crls ?? []).filter((c) => c.length > 0).map((c) => Buffer.from(c));
}

/** Adds `map` (trust domain → concatenated DER) to `set` as X.509 bundles. */
function addX509Map(ctx: CallContext, set: BundleSet, map: Record<string, Buffer> | undefined, where: string): void {
  for (const [key, der] of Object.entries(map ?? {})) {
    const td = trustDomainKey(ctx, key, where);
    if (der.length === 0) continue;
    try {
      set.add(X509Bundle.parseDer(td, der));
    } catch (e) {
      throw malformed(ctx, `the ${where} entry for ${td.name} is not concatenated DER certificates (${reason(e)})`, e);
    }
  }
}

export function parseX509Context(ctx: CallContext, msg: X509SVIDResponseMessage): X509Context {
  if (!msg.svids || msg.svids.length === 0) throw malformed(ctx, 'it holds no SVID (no identity is signalled with PermissionDenied).');
  const svids: X509Svid[] = [];
  const hints = new Set<string>();
  const bundles = new BundleSet();
  addX509Map(ctx, bundles, msg.federated_bundles, 'federated_bundles');
  msg.svids.forEach((m, i) => {
    const n = `SVID ${i + 1}`;
    if (!m.spiffe_id) throw malformed(ctx, `${n} has no spiffe_id.`);
    if (m.x509_svid.length === 0) throw malformed(ctx, `${n} (${m.spiffe_id}) has no certificate chain.`);
    if (m.x509_svid_key.length === 0) throw malformed(ctx, `${n} (${m.spiffe_id}) has no private key.`);
    if (m.bundle.length === 0) throw malformed(ctx, `${n} (${m.spiffe_id}) has no trust bundle.`);
    let svid: X509Svid;
    try {
      svid = parseX509Svid(m.x509_svid, m.x509_svid_key, m.hint ? { hint: m.hint } : {});
    } catch (e) {
      throw malformed(ctx, `${n} is not a valid X509-SVID: ${reason(e)}`, e);
    }
    if (svid.id.toString() !== m.spiffe_id) throw malformed(ctx, `${n} says spiffe_id ${m.spiffe_id} but its certificate names ${svid.id.toString()}.`);
    const td = svid.id.trustDomain;
    try {
      bundles.add(X509Bundle.parseDer(td, m.bundle));
    } catch (e) {
      throw malformed(ctx, `the bundle of ${n} is not concatenated DER certificates (${reason(e)})`, e);
    }
    if (m.hint) {
      if (hints.has(m.hint)) return;
      hints.add(m.hint);
    }
    svids.push(svid);
  });
  return { svids, bundles, crls: crlList(msg.crl) };
}

export function parseX509Bundles(ctx: CallContext, msg: X509BundlesResponseMessage): X509BundlesUpdate {
  const bundles = new BundleSet();
  addX509Map(ctx, bundles, msg.bundles, 'bundles');
  if (bundles.size === 0) throw malformed(ctx, 'it holds no bundle (the own trust domain bundle is mandatory).');
  return { bundles, crls: crlList(msg.crl) };
}

export function parseJwtBundles(ctx: CallContext, msg: JWTBundlesResponseMessage): BundleSet {
  const set = new BundleSet();
  for (const [key, jwks] of Object.entries(msg.bundles ?? {})) {
    const td = trustDomainKey(ctx, key, 'bundles');
    if (jwks.length === 0) continue;
    try {
      set.add(JwtBundle.parse(td, jwks));
    } catch (e) {
      throw malformed(ctx, `the JWT bundle for ${td.name} is not a valid JWKS (${reason(e)})`, e);
    }
  }
  if (set.size === 0) throw malformed(ctx, 'it holds no bundle (the own trust domain bundle is mandatory).');
  return set;
}

/** JWT-SVIDs are parsed without checking signatures: the Workload API is a trusted channel. */
export function parseJwtSvids(ctx: CallContext, msg: JWTSVIDResponseMessage, audience: readonly string[], spiffeId: string | undefined, opts: ValidateJwtSvidOptions): JwtSvid[] {
  if (!msg.svids || msg.svids.length === 0) throw malformed(ctx, 'it holds no JWT-SVID.');
  const out: JwtSvid[] = [];
  const hints = new Set<string>();
  msg.svids.forEach((m, i) => {
    const n = `JWT-SVID ${i + 1}`;
    if (!m.spiffe_id) throw malformed(ctx, `${n} has no spiffe_id.`);
    let svid: JwtSvid;
    try {
      svid = parseInsecureJwtSvid(m.svid, audience, opts);
    } catch (e) {
      throw malformed(ctx, `${n} is not a valid JWT-SVID for the requested audience: ${reason(e)}`, e);
    }
    if (svid.id.toString() !== m.spiffe_id) throw malformed(ctx, `${n} says spiffe_id ${m.spiffe_id} but its sub is ${svid.id.toString()}.`);
    if (spiffeId !== undefined && m.spiffe_id !== spiffeId) throw malformed(ctx, `${n} is for ${m.spiffe_id}, not the requested ${spiffeId}.`);
    if (m.hint) {
      if (hints.has(m.hint)) return;
      hints.add(m.hint);
    }
    out.push(svid);
  });
  return out;
}

export function parseValidateResponse(ctx: CallContext, msg: ValidateJWTSVIDResponseMessage): ValidatedJwtSvid {
  let spiffeId: SpiffeId;
  try {
    spiffeId = parseSpiffeId(msg.spiffe_id);
  } catch (e) {
    throw malformed(ctx, `its spiffe_id is not a SPIFFE ID (${reason(e)})`, e);
  }
  if (!msg.claims) throw malformed(ctx, 'it has no claims.');
  return { spiffeId, claims: fromStruct(msg.claims) };
}
