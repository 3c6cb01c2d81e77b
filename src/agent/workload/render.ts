/**
 * Renders what the WorkloadHandler returns into the two wire forms: Workload API protobuf messages
 * (concatenated DER, maps keyed by trust domain SPIFFE ID) for gRPC, and JSON with PEM for the HTTP
 * endpoint. Maps are emitted in sorted key order, so one state always renders the same bytes and
 * streams can suppress identical consecutive messages by comparing them.
 */
import { encodePem } from '../../bundle/index.js';
import type {
  JWTBundlesResponseMessage,
  JWTSVIDResponseMessage,
  X509BundlesResponseMessage,
  X509SVIDResponseMessage,
} from '../../workloadapi/proto.js';
import { sortedEntries, trustDomainKey } from './caller.js';
import type { JwtSvidState, X509BundlesState, X509State } from './handler.js';

const certsPem = (ders: readonly Buffer[]): string => ders.map((d) => encodePem('CERTIFICATE', d)).join('');
const crlsPem = (ders: readonly Buffer[]): string[] => ders.map((d) => encodePem('X509 CRL', d));

function derMap(m: ReadonlyMap<string, Buffer[]>): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [td, certs] of sortedEntries(m)) out[trustDomainKey(td)] = Buffer.concat(certs);
  return out;
}

function pemMap(m: ReadonlyMap<string, Buffer[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [td, certs] of sortedEntries(m)) out[trustDomainKey(td)] = certsPem(certs);
  return out;
}

export function x509SvidMessage(s: X509State): X509SVIDResponseMessage {
  return {
    svids: s.svids.map((v) => ({
      spiffe_id: v.spiffeId,
      x509_svid: Buffer.concat(v.certificates),
      x509_svid_key: v.privateKey,
      bundle: Buffer.concat(v.bundle),
      hint: v.hint,
    })),
    crl: [...s.crls],
    federated_bundles: derMap(s.federatedBundles),
  };
}

export function x509BundlesMessage(s: X509BundlesState): X509BundlesResponseMessage {
  return { crl: [...s.crls], bundles: derMap(s.bundles) };
}

export function jwtBundlesMessage(m: ReadonlyMap<string, string>): JWTBundlesResponseMessage {
  const bundles: Record<string, Buffer> = {};
  for (const [td, jwks] of sortedEntries(m)) bundles[trustDomainKey(td)] = Buffer.from(jwks, 'utf8');
  return { bundles };
}

export function jwtSvidMessage(svids: readonly JwtSvidState[]): JWTSVIDResponseMessage {
  return { svids: svids.map((s) => ({ spiffe_id: s.spiffeId, svid: s.token, hint: s.hint })) };
}

/** GET /v1/x509: PEM everywhere (chain leaf first, PKCS#8 "PRIVATE KEY"). */
export interface X509Json {
  svids: Array<{ spiffe_id: string; x509_svid: string; x509_svid_key: string; bundle: string; hint: string }>;
  crls: string[];
  federated_bundles: Record<string, string>;
}

export function x509Json(s: X509State): X509Json {
  return {
    svids: s.svids.map((v) => ({
      spiffe_id: v.spiffeId,
      x509_svid: certsPem(v.certificates),
      x509_svid_key: encodePem('PRIVATE KEY', v.privateKey),
      bundle: certsPem(v.bundle),
      hint: v.hint,
    })),
    crls: crlsPem(s.crls),
    federated_bundles: pemMap(s.federatedBundles),
  };
}

export function x509BundlesJson(s: X509BundlesState): { bundles: Record<string, string>; crls: string[] } {
  return { bundles: pemMap(s.bundles), crls: crlsPem(s.crls) };
}

/** GET /v1/bundles/jwt: the JWKS documents as JSON objects (not strings). */
export function jwtBundlesJson(m: ReadonlyMap<string, string>): { bundles: Record<string, unknown> } {
  const bundles: Record<string, unknown> = {};
  for (const [td, jwks] of sortedEntries(m)) bundles[trustDomainKey(td)] = JSON.parse(jwks) as unknown;
  return { bundles };
}

export function jwtSvidsJson(svids: readonly JwtSvidState[]): { svids: Array<{ spiffe_id: string; svid: string; hint: string }> } {
  return jwtSvidMessage(svids);
}
