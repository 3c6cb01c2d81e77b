/**
 * Contract: federation relationships. Create (duplicates refused), get, list in trust domain
 * order, update (profile and endpoint ID must pair up), refresh status (kept apart from
 * updatedAt, nothing stored for a relationship that is gone), delete (the bundle stays).
 */
import { expect } from 'chai';
import type { NewFederationRelationship } from '../../src/datastore/index.js';
import { expectWritError, useStore, type OpenStore } from './contract-helpers.js';

const NOW = 1_900_000_000;

function web(td: string, overrides: Partial<NewFederationRelationship> = {}): NewFederationRelationship {
  return { trustDomain: td, bundleEndpointUrl: `https://${td}/bundle`, profile: 'https_web', endpointSpiffeId: null, ...overrides };
}

function spiffe(td: string): NewFederationRelationship {
  return { trustDomain: td, bundleEndpointUrl: `https://${td}:8443/`, profile: 'https_spiffe', endpointSpiffeId: `spiffe://${td}/writ/server` };
}

export function federationContract(open: OpenStore): void {
  describe('federation relationships', () => {
    const store = useStore(open);

    it('creates, gets and lists relationships in trust domain order', async () => {
      expect(await store().getFederation('partner.org')).to.equal(undefined);
      const a = await store().createFederation(spiffe('partner.org'), NOW);
      expect(a).to.deep.equal({ ...spiffe('partner.org'), createdAt: NOW, updatedAt: NOW, lastRefresh: null });
      await store().createFederation(web('acme.example'), NOW + 1);
      expect(await store().getFederation('partner.org')).to.deep.equal(a);
      expect((await store().listFederations()).map((r) => [r.trustDomain, r.profile, r.endpointSpiffeId])).to.deep.equal([
        ['acme.example', 'https_web', null],
        ['partner.org', 'https_spiffe', 'spiffe://partner.org/writ/server'],
      ]);
    });

    it('refuses a second relationship for the same trust domain with ERR_FEDERATION_EXISTS and keeps the first', async () => {
      await store().createFederation(web('partner.org'), NOW);
      await expectWritError(store().createFederation(spiffe('partner.org'), NOW + 5), 'ERR_FEDERATION_EXISTS', /partner\.org/);
      expect(await store().getFederation('partner.org')).to.deep.include({ profile: 'https_web', createdAt: NOW });
    });

    it('refuses https_spiffe without an endpoint ID and https_web with one (ERR_FEDERATION_INVALID), storing nothing', async () => {
      await expectWritError(store().createFederation({ ...spiffe('partner.org'), endpointSpiffeId: null }, NOW), 'ERR_FEDERATION_INVALID');
      await expectWritError(store().createFederation(web('partner.org', { endpointSpiffeId: 'spiffe://partner.org/x' }), NOW), 'ERR_FEDERATION_INVALID');
      expect(await store().listFederations()).to.deep.equal([]);
    });

    it('updates the given fields only, bumps updatedAt, and checks the pairing of the result', async () => {
      await store().createFederation(web('partner.org'), NOW);
      const u = await store().updateFederation('partner.org', { bundleEndpointUrl: 'https://b.partner.org/' }, NOW + 10);
      expect(u).to.deep.include({ bundleEndpointUrl: 'https://b.partner.org/', profile: 'https_web', createdAt: NOW, updatedAt: NOW + 10 });
      await expectWritError(store().updateFederation('partner.org', { profile: 'https_spiffe' }, NOW + 11), 'ERR_FEDERATION_INVALID');
      const s = await store().updateFederation('partner.org', { profile: 'https_spiffe', endpointSpiffeId: 'spiffe://partner.org/ep' }, NOW + 12);
      expect(s).to.deep.include({ profile: 'https_spiffe', endpointSpiffeId: 'spiffe://partner.org/ep', bundleEndpointUrl: 'https://b.partner.org/' });
      // Back to https_web: the endpoint ID goes with the profile.
      const w = await store().updateFederation('partner.org', { profile: 'https_web' }, NOW + 13);
      expect(w).to.deep.include({ profile: 'https_web', endpointSpiffeId: null, updatedAt: NOW + 13 });
      await expectWritError(store().updateFederation('nobody.example', { bundleEndpointUrl: 'https://x/' }, NOW), 'ERR_FEDERATION_NOT_FOUND');
    });

    it('records the refresh status without touching updatedAt, and not for a relationship that is gone', async () => {
      await store().createFederation(spiffe('partner.org'), NOW);
      const failed = { at: NOW + 60, ok: false, code: 'ERR_FEDERATION_TLS', message: 'The endpoint was refused.', sequence: null };
      expect(await store().setFederationStatus('partner.org', failed)).to.equal(true);
      expect(await store().getFederation('partner.org')).to.deep.include({ lastRefresh: failed, updatedAt: NOW });
      const ok = { at: NOW + 120, ok: true, code: null, message: 'Stored the bundle with sequence 7.', sequence: 7 };
      await store().setFederationStatus('partner.org', ok);
      expect((await store().getFederation('partner.org'))?.lastRefresh).to.deep.equal(ok);
      // An update of the relationship keeps the last status.
      await store().updateFederation('partner.org', { bundleEndpointUrl: 'https://partner.org/v2' }, NOW + 130);
      expect((await store().getFederation('partner.org'))?.lastRefresh).to.deep.equal(ok);
      expect(await store().setFederationStatus('gone.example', ok)).to.equal(false);
      expect(await store().getFederation('gone.example')).to.equal(undefined);
    });

    it('deletes a relationship and keeps the trust domain\'s bundle', async () => {
      await store().createFederation(web('partner.org'), NOW);
      await store().setBundle('partner.org', '{"keys":[]}', 300, NOW);
      expect(await store().deleteFederation('partner.org')).to.equal(true);
      expect(await store().deleteFederation('partner.org')).to.equal(false);
      expect(await store().getFederation('partner.org')).to.equal(undefined);
      expect(await store().getBundle('partner.org')).to.deep.include({ document: '{"keys":[]}' });
      // The trust domain can federate again.
      expect((await store().createFederation(spiffe('partner.org'), NOW + 1)).profile).to.equal('https_spiffe');
    });
  });
}
