/**
 * The SQLite table of federation relationships: one row per foreign trust domain, with where its
 * bundle is fetched from, how the endpoint authenticates, and the outcome of the last fetch.
 * Statements are prepared once.
 */
import type Database from 'better-sqlite3';
import { WritError } from '../errors.js';
import type { FederationProfile, FederationRefreshStatus, FederationRelationship, FederationRelationshipPatch, NewFederationRelationship } from './types.js';

interface FederationRow {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: FederationProfile;
  endpoint_spiffe_id: string | null;
  created_at: number;
  updated_at: number;
  refreshed_at: number | null;
  refresh_ok: number | null;
  refresh_code: string | null;
  refresh_message: string | null;
  refresh_sequence: number | null;
}

function toRelationship(r: FederationRow): FederationRelationship {
  return {
    trustDomain: r.trust_domain,
    bundleEndpointUrl: r.bundle_endpoint_url,
    profile: r.profile,
    endpointSpiffeId: r.endpoint_spiffe_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastRefresh:
      r.refreshed_at === null
        ? null
        : { at: r.refreshed_at, ok: r.refresh_ok === 1, code: r.refresh_code, message: r.refresh_message ?? '', sequence: r.refresh_sequence },
  };
}

function checkPairing(profile: FederationProfile, endpointSpiffeId: string | null, td: string): void {
  if (profile === 'https_spiffe' && endpointSpiffeId === null) {
    throw new WritError('ERR_FEDERATION_INVALID', `The relationship with ${td} uses https_spiffe, which needs an endpoint SPIFFE ID.`);
  }
  if (profile === 'https_web' && endpointSpiffeId !== null) {
    throw new WritError('ERR_FEDERATION_INVALID', `The relationship with ${td} uses https_web, which takes no endpoint SPIFFE ID.`);
  }
}

export class SqliteFederation {
  private readonly s;

  constructor(db: Database.Database) {
    this.s = {
      get: db.prepare<[string], FederationRow>('SELECT * FROM federation_relationships WHERE trust_domain = ?'),
      list: db.prepare<[], FederationRow>('SELECT * FROM federation_relationships ORDER BY trust_domain'),
      insert: db.prepare<[string, string, string, string | null, number, number], FederationRow>(
        'INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id, created_at, updated_at) ' +
          'VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trust_domain) DO NOTHING RETURNING *',
      ),
      update: db.prepare<[string, string, string | null, number, string], FederationRow>(
        'UPDATE federation_relationships SET bundle_endpoint_url = ?, profile = ?, endpoint_spiffe_id = ?, updated_at = ? WHERE trust_domain = ? RETURNING *',
      ),
      remove: db.prepare<[string]>('DELETE FROM federation_relationships WHERE trust_domain = ?'),
      status: db.prepare<[number, number, string | null, string, number | null, string]>(
        'UPDATE federation_relationships SET refreshed_at = ?, refresh_ok = ?, refresh_code = ?, refresh_message = ?, refresh_sequence = ? WHERE trust_domain = ?',
      ),
    };
  }

  create(rel: NewFederationRelationship, now: number): FederationRelationship {
    checkPairing(rel.profile, rel.endpointSpiffeId, rel.trustDomain);
    const r = this.s.insert.get(rel.trustDomain, rel.bundleEndpointUrl, rel.profile, rel.endpointSpiffeId, now, now);
    if (!r) throw new WritError('ERR_FEDERATION_EXISTS', `A federation relationship with ${rel.trustDomain} already exists; update or delete it.`);
    return toRelationship(r);
  }

  update(td: string, patch: FederationRelationshipPatch, now: number): FederationRelationship {
    const old = this.s.get.get(td);
    if (!old) throw new WritError('ERR_FEDERATION_NOT_FOUND', `There is no federation relationship with ${td}.`);
    const profile = patch.profile ?? old.profile;
    // Switching to https_web drops the endpoint ID unless the patch names one (which is then refused).
    const endpoint = patch.endpointSpiffeId !== undefined ? patch.endpointSpiffeId : profile === 'https_web' ? null : old.endpoint_spiffe_id;
    checkPairing(profile, endpoint, td);
    const r = this.s.update.get(patch.bundleEndpointUrl ?? old.bundle_endpoint_url, profile, endpoint, now, td);
    if (!r) throw new WritError('ERR_FEDERATION_NOT_FOUND', `There is no federation relationship with ${td}.`);
    return toRelationship(r);
  }

  get(td: string): FederationRelationship | undefined {
    const r = this.s.get.get(td);
    return r ? toRelationship(r) : undefined;
  }

  list(): FederationRelationship[] {
    return this.s.list.all().map(toRelationship);
  }

  delete(td: string): boolean {
    return this.s.remove.run(td).changes > 0;
  }

  setStatus(td: string, st: FederationRefreshStatus): boolean {
    return this.s.status.run(st.at, st.ok ? 1 : 0, st.code, st.message, st.sequence, td).changes > 0;
  }
}
