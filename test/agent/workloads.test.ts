/**
 * Verifier calls of the agent's Workload API handler (bundles, ValidateJWTSVID) on a real cache
 * with two real CAs: as SPIRE, a caller with no entry gets PermissionDenied unless
 * allow_unauthenticated_verifiers, and a JWT-SVID of a federated trust domain validates only for
 * a caller whose entry federates with it.
 */
import { expect } from 'chai';
import { AgentCache } from '../../src/agent/cache.js';
import { AgentWorkloads } from '../../src/agent/workloads.js';
import type { NodeClient } from '../../src/agent/nodeclient.js';
import { systemClock } from '../../src/clock.js';
import type { RegistrationEntry, Selector } from '../../src/datastore/types.js';
import { silentLogger } from '../../src/log.js';
import { renderBundleDocument } from '../../src/server/bundle.js';
import { TestCa } from '../tls/helpers.js';

const sel = (v: string): Selector[] => [{ type: 'unix', value: v }];

function entry(id: string, uid: number, federatesWith: string[]): RegistrationEntry {
  return { id, spiffeId: `spiffe://example.org/wl/${id}`, parentId: 'spiffe://example.org/host/a', selectors: sel(`uid:${uid}`), x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith, expiresAt: null, revision: 1, createdAt: 1 };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

describe('agent/workloads: verifier calls', () => {
  let cache: AgentCache;
  let ownToken: string;
  let partnerToken: string;

  before(async () => {
    const own = await TestCa.create('example.org');
    const partner = await TestCa.create('partner.org');
    cache = new AgentCache('example.org');
    const doc = (ca: TestCa) => renderBundleDocument(ca.trustDomain, ca.authority.x509Authorities(), ca.authority.jwtAuthorities(), 300, 1);
    cache.setBundle(doc(own));
    cache.setFederated('partner.org', doc(partner));
    cache.putEntry(entry('federating', 1001, ['partner.org']));
    cache.putEntry(entry('local', 1002, []));
    ownToken = (await own.authority.mintJwtSvid({ spiffeId: 'spiffe://example.org/svc/a', audience: ['aud'], ttl: 300 })).token;
    partnerToken = (await partner.authority.mintJwtSvid({ spiffeId: 'spiffe://partner.org/svc/b', audience: ['aud'], ttl: 300 })).token;
  });

  const workloads = (allowUnauthenticatedVerifiers: boolean) => new AgentWorkloads(cache, [], {} as NodeClient, systemClock, silentLogger, { allowUnauthenticatedVerifiers });

  it('validates a federated JWT-SVID only for a caller whose entry federates with its trust domain', async () => {
    const w = workloads(false);
    expect((await w.validateJwtSvid(sel('uid:1001'), partnerToken, 'aud')).spiffeId).to.equal('spiffe://partner.org/svc/b');
    expect(await codeOf(w.validateJwtSvid(sel('uid:1002'), partnerToken, 'aud'))).to.match(/^ERR_SVID_JWT_/);
    expect((await w.validateJwtSvid(sel('uid:1002'), ownToken, 'aud')).spiffeId).to.equal('spiffe://example.org/svc/a');
    expect([...w.jwtBundles(sel('uid:1001')).keys()].sort()).to.deep.equal(['example.org', 'partner.org']);
    expect([...w.x509Bundles(sel('uid:1002')).bundles.keys()]).to.deep.equal(['example.org']);
  });

  it('refuses callers with no entry (no identity issued) by default', async () => {
    const w = workloads(false);
    expect(await codeOf(w.validateJwtSvid(sel('uid:7'), ownToken, 'aud'))).to.equal('ERR_WORKLOAD_NO_IDENTITY');
    expect(() => w.jwtBundles(sel('uid:7'))).to.throw().with.property('code', 'ERR_WORKLOAD_NO_IDENTITY');
    expect(() => w.x509Bundles(sel('uid:7'))).to.throw().with.property('code', 'ERR_WORKLOAD_NO_IDENTITY');
  });

  it('with allow_unauthenticated_verifiers, serves them the own trust domain only', async () => {
    const w = workloads(true);
    expect((await w.validateJwtSvid(sel('uid:7'), ownToken, 'aud')).spiffeId).to.equal('spiffe://example.org/svc/a');
    expect(await codeOf(w.validateJwtSvid(sel('uid:7'), partnerToken, 'aud'))).to.match(/^ERR_SVID_JWT_/);
    expect([...w.jwtBundles(sel('uid:7')).keys()]).to.deep.equal(['example.org']);
    expect([...w.x509Bundles(sel('uid:7')).bundles.keys()]).to.deep.equal(['example.org']);
  });
});
