/**
 * X509Source and JwtSource against a real gRPC Workload API server on a temporary Unix socket:
 * open waits for the first update (and times out with a clear error), the sources stay current,
 * PermissionDenied withdraws the SVIDs, and JWT-SVIDs are cached until half their lifetime.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ManualClock } from '../../src/clock.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { parseAndValidateJwtSvid, verifyX509Svid } from '../../src/svid/index.js';
import { JwtSource, type X509Context, X509Source } from '../../src/workloadapi/index.js';
import { type CaFixture, caFixture } from '../ca/helpers.js';
import { FAST_BACKOFF, ID, ID2, NO_IDENTITY, TestWorkloadApi, bundleDer, jwksOf, mintSvidMessage, rejection, waitFor } from './helpers.js';

const example = parseTrustDomain('example.org');
const partnerTd = parseTrustDomain('partner.org');
const bare = (s: string): string => s.toLowerCase().replace(/^0+/, '');

describe('workloadapi: X509Source and JwtSource', () => {
  let fx: CaFixture;
  let partner: CaFixture;
  let api: TestWorkloadApi;
  const closers: Array<{ close(): void }> = [];
  const track = <T extends { close(): void }>(s: T): T => {
    closers.push(s);
    return s;
  };

  async function serveX509(ids: string[] = [ID]): Promise<string[]> {
    const minted = await Promise.all(ids.map((id) => mintSvidMessage(fx.authority, id)));
    api.state.FetchX509SVID = { svids: minted.map((m) => m.message), crl: [Buffer.from([0x30, 0x00])], federated_bundles: { 'partner.org': bundleDer(partner.authority) } };
    return minted.map((m) => m.serial);
  }

  before(async () => {
    fx = await caFixture({ start: Date.now() });
    partner = await caFixture({ start: Date.now(), config: { trustDomain: 'partner.org' } });
  });
  after(async () => {
    await fx?.cleanup();
    await partner?.cleanup();
  });
  beforeEach(async () => {
    api = await new TestWorkloadApi().start();
    api.state.FetchJWTBundles = { bundles: { 'spiffe://example.org': jwksOf(fx.authority), 'spiffe://partner.org': jwksOf(partner.authority) } };
  });
  afterEach(() => {
    for (const s of closers.splice(0)) s.close();
    api.cleanup();
  });

  describe('X509Source', () => {
    it('opens after the first update and serves SVIDs, bundles and CRLs', async () => {
      const [serial] = (await serveX509([ID, ID2])) as [string];
      const source = track(await X509Source.open({ address: api.address, backoff: FAST_BACKOFF }));
      expect(source.getX509Svid().id.toString()).to.equal(ID);
      expect(bare(source.getX509Svid().leaf.serialNumber)).to.equal(bare(serial));
      expect(source.getX509Svids().map((s) => s.id.toString())).to.deep.equal([ID, ID2]);
      expect(source.getX509BundleForTrustDomain(partnerTd).authorities()).to.deep.equal(partner.authority.x509Authorities());
      expect(source.bundles().trustDomainNames()).to.deep.equal(['example.org', 'partner.org']);
      expect(source.getCrls()).to.have.length(1);
      expect(source.updatedAt).to.be.instanceOf(Date);
      // It is an X509BundleSource: verify a peer's SVID with it.
      const peer = await mintSvidMessage(fx.authority, 'spiffe://example.org/peer');
      expect(verifyX509Svid(peer.message.x509_svid, source).id.toString()).to.equal('spiffe://example.org/peer');
      expect(() => source.getX509BundleForTrustDomain(parseTrustDomain('nobody.org'))).to.throw().with.property('code', 'ERR_BUNDLE_NOT_FOUND');
    });

    it('uses the picker for the default SVID', async () => {
      await serveX509([ID, ID2]);
      const source = track(await X509Source.open({ address: api.address, backoff: FAST_BACKOFF, picker: (svids) => svids.find((s) => s.id.toString() === ID2)! }));
      expect(source.getX509Svid().id.toString()).to.equal(ID2);
    });

    it('stays current: a rotation is an update event and the new default', async () => {
      await serveX509();
      const source = track(await X509Source.open({ address: api.address, backoff: FAST_BACKOFF }));
      const seen: X509Context[] = [];
      source.on('update', (c) => seen.push(c));
      const [next] = (await serveX509()) as [string];
      api.push('FetchX509SVID');
      await waitFor(() => seen.length === 1, 'the rotation');
      expect(bare(source.getX509Svid().leaf.serialNumber)).to.equal(bare(next));
      const off = (): void => {};
      source.on('update', off).off('update', off);
    });

    it('drops its SVIDs after PermissionDenied mid-stream, and takes them back', async () => {
      await serveX509();
      const source = track(await X509Source.open({ address: api.address, backoff: FAST_BACKOFF }));
      const errors: string[] = [];
      source.on('error', (e) => errors.push(e.code));
      api.state.FetchX509SVID = NO_IDENTITY;
      api.push('FetchX509SVID');
      await waitFor(() => errors.length > 0, 'the withdrawal');
      expect(() => source.getX509Svid()).to.throw(/withdrew this workload's X509-SVIDs \(no identity issued\)/).with.property('code', 'ERR_WORKLOAD_NO_IDENTITY');
      expect(() => source.getX509Svids()).to.throw().with.property('code', 'ERR_WORKLOAD_NO_IDENTITY');
      expect(source.getX509BundleForTrustDomain(example).isEmpty()).to.equal(false);
      await serveX509([ID2]);
      await waitFor(() => {
        try {
          return source.getX509Svid().id.toString() === ID2;
        } catch {
          return false;
        }
      }, 'the identity to come back');
    });

    it('times out with a clear error when no identity arrives', async () => {
      api.state.FetchX509SVID = NO_IDENTITY;
      const r = await rejection(X509Source.open({ address: api.address, backoff: FAST_BACKOFF, timeoutMs: 300 }));
      expect(r.code).to.equal('ERR_WORKLOAD_NO_IDENTITY');
      expect(r.message).to.equal(`No X509-SVID arrived from the Workload API at ${api.address} within 300 ms (last error: no identity issued).`);
      await waitFor(() => api.open.FetchX509SVID.size === 0, 'no stream left open');
    });

    it('times out naming the address when nothing listens there', async () => {
      const address = `unix://${api.dir}/nobody.sock`;
      const r = await rejection(X509Source.open({ address, backoff: FAST_BACKOFF, timeoutMs: 200 }));
      expect(r.code).to.equal('ERR_WORKLOADAPI_UNAVAILABLE');
      expect(r.message).to.include(`within 200 ms (last error: Cannot reach the Workload API at ${address}`);
    });

    it('fails at once when the server refuses with InvalidArgument', async () => {
      api.state.FetchX509SVID = { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' };
      const r = await rejection(X509Source.open({ address: api.address, backoff: FAST_BACKOFF, timeoutMs: 10_000 }));
      expect(r).to.deep.equal({ code: 'ERR_WORKLOAD_HEADER', message: 'security header missing from request' });
    });

    it('refuses a bad address before connecting, and is unusable once closed', async () => {
      expect((await rejection(X509Source.open({ address: 'tcp://localhost:1' }))).code).to.equal('ERR_WORKLOADAPI_ENDPOINT');
      await serveX509();
      const source = await X509Source.open({ address: api.address, backoff: FAST_BACKOFF });
      source.close();
      expect(() => source.getX509Svid()).to.throw('The X509Source is closed.');
      await waitFor(() => api.open.FetchX509SVID.size === 0, 'the stream to be cancelled');
    });
  });

  describe('JwtSource', () => {
    it('opens after the first JWT bundles and is a JwtBundleSource', async () => {
      const source = track(await JwtSource.open({ address: api.address, backoff: FAST_BACKOFF }));
      expect(source.bundles().trustDomainNames()).to.deep.equal(['example.org', 'partner.org']);
      const token = (await partner.authority.mintJwtSvid({ spiffeId: 'spiffe://partner.org/svc', audience: ['me'], ttl: 60 })).token;
      expect(parseAndValidateJwtSvid(token, source, ['me']).id.toString()).to.equal('spiffe://partner.org/svc');
      api.state.FetchJWTBundles = { bundles: { 'example.org': jwksOf(fx.authority) } };
      api.push('FetchJWTBundles');
      await waitFor(() => source.bundles().size === 1, 'the bundle update');
      expect(() => source.getJwtBundleForTrustDomain(partnerTd)).to.throw().with.property('code', 'ERR_BUNDLE_NOT_FOUND');
    });

    it('times out when no bundle arrives', async () => {
      api.state.FetchJWTBundles = NO_IDENTITY;
      const r = await rejection(JwtSource.open({ address: api.address, backoff: FAST_BACKOFF, timeoutMs: 200 }));
      expect(r).to.deep.equal({
        code: 'ERR_WORKLOAD_NO_IDENTITY',
        message: `No JWT bundles arrived from the Workload API at ${api.address} within 200 ms (last error: no identity issued).`,
      });
      await waitFor(() => api.open.FetchJWTBundles.size === 0, 'no stream left open');
    });

    it('caches a JWT-SVID per audience set and SPIFFE ID until half its lifetime', async () => {
      // A CA and a source on one manual clock: tokens live 300 s, so they are refetched after 150 s.
      const jfx = await caFixture({ start: Date.now() });
      try {
        const clock: ManualClock = jfx.clock;
        api.state.FetchJWTBundles = { bundles: { 'example.org': jwksOf(jfx.authority) } };
        api.unary.FetchJWTSVID = async (req) => {
          const id = req.spiffe_id || ID;
          return { svids: [{ spiffe_id: id, svid: (await jfx.authority.mintJwtSvid({ spiffeId: id, audience: req.audience, ttl: 300 })).token, hint: '' }] };
        };
        const source = track(await JwtSource.open({ address: api.address, backoff: FAST_BACKOFF, clock }));
        const first = await source.fetchJwtSvid({ audience: ['a', 'b'] });
        expect((await source.fetchJwtSvid({ audience: ['b', 'a', 'a'] })).token).to.equal(first.token);
        clock.advance(149_000);
        expect((await source.fetchJwtSvid({ audience: ['a', 'b'] })).token).to.equal(first.token);
        expect(api.calls('FetchJWTSVID')).to.equal(1);
        clock.advance(2_000);
        const second = await source.fetchJwtSvid({ audience: ['a', 'b'] });
        expect(second.token).to.not.equal(first.token);
        expect(second.issuedAt!.getTime()).to.equal(Math.floor(clock.nowMs() / 1000) * 1000);
        expect(api.calls('FetchJWTSVID')).to.equal(2);
        // Other keys are other entries; concurrent fetches of one key share one call.
        const [x, y] = await Promise.all([source.fetchJwtSvid({ audience: 'a' }), source.fetchJwtSvid({ audience: 'a' })]);
        expect(x.token).to.equal(y.token);
        expect(api.calls('FetchJWTSVID')).to.equal(3);
        expect((await source.fetchJwtSvid({ audience: 'a', spiffeId: ID2 })).id.toString()).to.equal(ID2);
        expect(api.calls('FetchJWTSVID')).to.equal(4);
        expect((await rejection(source.fetchJwtSvid({ audience: [] }))).code).to.equal('ERR_INPUT_INVALID');
        source.close();
        expect((await rejection(source.fetchJwtSvid({ audience: 'a' }))).message).to.equal('The JwtSource is closed.');
      } finally {
        await jfx.cleanup();
      }
    });

    it('passes errors of the fetch through and does not cache them', async () => {
      const source = track(await JwtSource.open({ address: api.address, backoff: FAST_BACKOFF }));
      expect((await rejection(source.fetchJwtSvid({ audience: 'a' }))).code).to.equal('ERR_WORKLOAD_NO_IDENTITY');
      api.unary.FetchJWTSVID = async (req) => ({ svids: [{ spiffe_id: ID, svid: (await fx.authority.mintJwtSvid({ spiffeId: ID, audience: req.audience, ttl: 60 })).token, hint: '' }] });
      expect((await source.fetchJwtSvid({ audience: 'a' })).id.toString()).to.equal(ID);
    });
  });
});
