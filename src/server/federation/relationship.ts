/**
 * Federation relationships as the admin API takes and returns them. Each needs the three things
 * SPIFFE Federation §5.1 asks of a client: the foreign trust domain (never inferred from the URL,
 * never the server's own), the bundle endpoint URL (https, no userinfo) and the profile; https_spiffe
 * also needs the SPIFFE ID the endpoint must present.
 */
import { WritError } from '../../errors.js';
import type { FederationProfile, FederationRelationship, FederationRelationshipPatch, NewFederationRelationship } from '../../datastore/index.js';
import { parseSpiffeId, parseTrustDomain, SCHEME_PREFIX } from '../../spiffeid/index.js';

export const PROFILES: readonly FederationProfile[] = ['https_web', 'https_spiffe'];
export const MAX_URL_LENGTH = 2048;

/** A trust domain given as `partner.org` or `spiffe://partner.org` (no path). */
export function foreignTrustDomain(raw: unknown, ownTrustDomain: string, field = 'trust_domain'): string {
  if (typeof raw !== 'string' || raw === '') throw new WritError('ERR_FEDERATION_INVALID', `${field} must be a trust domain name such as partner.org.`);
  const bare = raw.startsWith(SCHEME_PREFIX) ? raw.slice(SCHEME_PREFIX.length) : raw;
  if (bare.includes('/')) throw new WritError('ERR_FEDERATION_INVALID', `${field} must name a trust domain, not a SPIFFE ID with a path; got "${raw}".`);
  const td = parseTrustDomain(bare).name;
  if (td === ownTrustDomain) {
    throw new WritError('ERR_FEDERATION_OWN_TRUST_DOMAIN', `${td} is this server's own trust domain; its bundle is managed by the server's CA.`);
  }
  return td;
}

/** Checks a bundle endpoint URL (also every redirect target): https, a host, no userinfo. Returns it parsed. */
export function checkEndpointUrl(raw: unknown, what = 'bundle_endpoint_url'): URL {
  if (typeof raw !== 'string' || raw === '') throw new WritError('ERR_FEDERATION_INVALID', `${what} must be an https URL.`);
  if (raw.length > MAX_URL_LENGTH) throw new WritError('ERR_FEDERATION_INVALID', `${what} is longer than ${MAX_URL_LENGTH} characters.`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WritError('ERR_FEDERATION_INVALID', `${what} is not a valid URL.`);
  }
  if (url.protocol !== 'https:') throw new WritError('ERR_FEDERATION_INVALID', `${what} must use https; got ${url.protocol.replace(/:$/, '')}.`);
  if (url.username !== '' || url.password !== '') throw new WritError('ERR_FEDERATION_INVALID', `${what} must not carry a user name or password.`);
  if (url.hostname === '') throw new WritError('ERR_FEDERATION_INVALID', `${what} has no host.`);
  return url;
}

function profileOf(raw: unknown): FederationProfile {
  if (typeof raw !== 'string' || !(PROFILES as readonly string[]).includes(raw)) {
    throw new WritError('ERR_FEDERATION_INVALID', `bundle_endpoint_profile must be https_web or https_spiffe; got ${JSON.stringify(raw ?? null)}.`);
  }
  return raw as FederationProfile;
}

function endpointIdOf(raw: unknown): string {
  if (typeof raw !== 'string' || raw === '') throw new WritError('ERR_FEDERATION_INVALID', 'endpoint_spiffe_id must be a SPIFFE ID.');
  return parseSpiffeId(raw).toString();
}

/** A relationship to create, from the admin API's JSON. */
export function validateNewRelationship(raw: Record<string, unknown>, ownTrustDomain: string): NewFederationRelationship {
  const trustDomain = foreignTrustDomain(raw.trust_domain, ownTrustDomain);
  const bundleEndpointUrl = checkEndpointUrl(raw.bundle_endpoint_url).toString();
  const profile = profileOf(raw.bundle_endpoint_profile);
  let endpointSpiffeId: string | null = null;
  if (profile === 'https_spiffe') endpointSpiffeId = endpointIdOf(raw.endpoint_spiffe_id);
  else if (raw.endpoint_spiffe_id !== undefined && raw.endpoint_spiffe_id !== null) {
    throw new WritError('ERR_FEDERATION_INVALID', 'endpoint_spiffe_id is only for the https_spiffe profile; https_web endpoints are checked by host name.');
  }
  return { trustDomain, bundleEndpointUrl, profile, endpointSpiffeId };
}

/** The fields an update changes; absent fields are kept by the store. */
export function validateRelationshipPatch(raw: Record<string, unknown>): FederationRelationshipPatch {
  const patch: FederationRelationshipPatch = {};
  if (raw.bundle_endpoint_url !== undefined) patch.bundleEndpointUrl = checkEndpointUrl(raw.bundle_endpoint_url).toString();
  if (raw.bundle_endpoint_profile !== undefined) patch.profile = profileOf(raw.bundle_endpoint_profile);
  if (raw.endpoint_spiffe_id !== undefined && raw.endpoint_spiffe_id !== null) patch.endpointSpiffeId = endpointIdOf(raw.endpoint_spiffe_id);
  if (patch.profile === 'https_web' && patch.endpointSpiffeId !== undefined) {
    throw new WritError('ERR_FEDERATION_INVALID', 'endpoint_spiffe_id is only for the https_spiffe profile; https_web endpoints are checked by host name.');
  }
  return patch;
}

export interface RelationshipJson {
  trust_domain: string;
  bundle_endpoint_url: string;
  bundle_endpoint_profile: FederationProfile;
  endpoint_spiffe_id?: string;
  created_at: number;
  updated_at: number;
  last_refresh: { at: number; ok: boolean; code?: string; message: string; sequence?: number } | null;
  /** Unix seconds of the next scheduled fetch on this server, when known. */
  next_refresh_at?: number;
}

export function relationshipToJson(r: FederationRelationship, nextRefreshAt?: number): RelationshipJson {
  const s = r.lastRefresh;
  return {
    trust_domain: r.trustDomain,
    bundle_endpoint_url: r.bundleEndpointUrl,
    bundle_endpoint_profile: r.profile,
    ...(r.endpointSpiffeId !== null ? { endpoint_spiffe_id: r.endpointSpiffeId } : {}),
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    last_refresh: s
      ? { at: s.at, ok: s.ok, ...(s.code !== null ? { code: s.code } : {}), message: s.message, ...(s.sequence !== null ? { sequence: s.sequence } : {}) }
      : null,
    ...(nextRefreshAt !== undefined ? { next_refresh_at: nextRefreshAt } : {}),
  };
}
