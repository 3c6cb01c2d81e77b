/**
 * WorkloadApiClient one-shot calls against a real gRPC Workload API server on a temporary Unix
 * socket, serving SVIDs minted by writ's CA: the security header, every fetch, federated bundles,
 * status mapping, an absent server, and malformed responses. Watchers are in watch.test.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { parseAndValidateJwtSvid, verifyX509Svid } from '../../src/svid/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { WorkloadApiClient } from '../../src/workloadapi/index.js';
import { workloadClientConstructor } from '../../src/workloadapi/proto.js';
import type { CaFixture } from '../ca/helpers.js';
import { type ClientFixture, useClientFixture } from './fixture.js';
import { FAST_BACKOFF, ID, ID2, NO_IDENTITY, TestWorkloadApi, bundleDer, mintSvidMessage, rejection } from './helpers.js';

const example = parseTrustDomain('example.org');
const partnerTd = parseTrustDomain('partner.org');

describe('workloadapi: WorkloadApiClient', () => {
  let fx: CaFixture;
  let partner: CaFixture;
  let api: TestWorkloadApi;
  let crl: Buffer;
  let serial: string;
  let client: ClientFixture['client'];
  let serveX509: ClientFixture['serveX509'];
  useClientFixture((f) => ({ fx, partner, api, crl, serial, client, serveX509 } = f));

  describe('fetch', () => {
    it('sends the security header on every call', async () => {
      const c = client();
      await c.fetchX509Context();
      await c.fetchX509Bundles();
      await c.fetchJwtBundles();
      const jwt = await c.fetchJwtSvid({ audience: 'svc' });
      await c.validateJwtSvid(jwt.token, 'svc');
      for (const rpc of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles', 'FetchJWTSVID', 'ValidateJWTSVID'] as const) {
        expect(api.headers[rpc], rpc).to.deep.equal([['true']]);
      }
    });

    it('is refused by the test server without the header (the check is real)', async () => {
      const Raw = workloadClientConstructor();
      const raw = new Raw(api.address, grpc.credentials.createInsecure());
      try {
        const code = await new Promise<number>((resolve) => {
          const call = raw.makeServerStreamRequest('/SpiffeWorkloadAPI/FetchX509SVID', () => Buffer.alloc(0), (b: Buffer) => b, {});
          call.on('error', (e: grpc.ServiceError) => resolve(e.code));
          call.on('data', () => resolve(-1));
        });
        expect(code).to.equal(grpc.status.INVALID_ARGUMENT);
      } finally {
        raw.close();
      }
    });

    it('fetches the X.509 context: SVID with key, own and federated bundles, CRLs', async () => {
      const ctx = await client().fetchX509Context();
      expect(ctx.svids).to.have.length(1);
      const svid = ctx.svids[0]!;
      expect(svid.id.toString()).to.equal(ID);
      expect(svid.leaf.serialNumber.toLowerCase().replace(/^0+/, '')).to.equal(serial.replace(/^0+/, ''));
      expect(svid.privateKey?.type).to.equal('private');
      expect(ctx.bundles.trustDomainNames()).to.deep.equal(['example.org', 'partner.org']);
      expect(ctx.bundles.getX509BundleForTrustDomain(partnerTd).authorities()).to.deep.equal(partner.authority.x509Authorities());
      expect(ctx.crls.map((c) => c.toString('hex'))).to.deep.equal([crl.toString('hex')]);
      expect(verifyX509Svid(svid.chainDer(), ctx.bundles).id.toString()).to.equal(ID);
    });

    it('returns the default SVID first, every SVID, and drops a repeated hint', async () => {
      await serveX509([[ID, 'internal'], [ID2, 'external'], ['spiffe://example.org/agent/dup', 'internal']]);
      const c = client();
      expect((await c.fetchX509Svid()).id.toString()).to.equal(ID);
      const all = await c.fetchX509Svids();
      expect(all.map((s) => [s.id.toString(), s.hint])).to.deep.equal([
        [ID, 'internal'],
        [ID2, 'external'],
      ]);
    });

    it('fetches X.509 bundles keyed by "spiffe://td" or "td"', async () => {
      const { bundles, crls } = await client().fetchX509Bundles();
      expect(bundles.trustDomainNames()).to.deep.equal(['example.org', 'partner.org']);
      expect(bundles.getX509BundleForTrustDomain(example).authorities()).to.deep.equal(fx.authority.x509Authorities());
      expect(crls).to.have.length(1);
    });

    it('fetches JWT bundles that validate tokens of both trust domains', async () => {
      const set = await client().fetchJwtBundles();
      expect(set.trustDomainNames()).to.deep.equal(['example.org', 'partner.org']);
      const token = (await partner.authority.mintJwtSvid({ spiffeId: 'spiffe://partner.org/svc', audience: ['me'], ttl: 60 })).token;
      expect(parseAndValidateJwtSvid(token, set, ['me']).id.toString()).to.equal('spiffe://partner.org/svc');
    });

    it('fetches JWT-SVIDs: audience and extra audiences, an optional SPIFFE ID', async () => {
      const c = client();
      const one = await c.fetchJwtSvid({ audience: ['svc', 'extra'], spiffeId: ID2 });
      expect(api.requests.FetchJWTSVID[0]).to.deep.equal({ audience: ['svc', 'extra'], spiffe_id: ID2 });
      expect(one.id.toString()).to.equal(ID2);
      expect(one.audience).to.deep.equal(['svc', 'extra']);
      const all = await c.fetchJwtSvids({ audience: 'svc' });
      expect(api.requests.FetchJWTSVID[1]).to.deep.equal({ audience: ['svc'], spiffe_id: '' });
      expect(all.map((s) => s.id.toString())).to.deep.equal([ID, ID2]);
      expect((await rejection(c.fetchJwtSvid({ audience: [] }))).code).to.equal('ERR_INPUT_INVALID');
      expect((await rejection(c.fetchJwtSvid({ audience: 'svc', spiffeId: 'nope' }))).code).to.match(/^ERR_SPIFFEID_/);
    });

    it('validates a JWT-SVID and returns its SPIFFE ID and claims', async () => {
      const c = client();
      const token = (await fx.authority.mintJwtSvid({ spiffeId: ID, audience: ['svc'], ttl: 60, claims: { 'writ.dev/task': { id: 't1', n: 2 } } })).token;
      const r = await c.validateJwtSvid(token, 'svc');
      expect(r.spiffeId.toString()).to.equal(ID);
      expect(r.claims).to.include({ sub: ID });
      expect(r.claims.aud).to.deep.equal(['svc']);
      expect(r.claims['writ.dev/task']).to.deep.equal({ id: 't1', n: 2 });
      const refused = await rejection(c.validateJwtSvid(token, 'other'));
      expect(refused.code).to.equal('ERR_INPUT_INVALID');
      expect(refused.message).to.include('audience');
    });

    it('maps server statuses to error codes and keeps the server sentence', async () => {
      const c = client();
      api.state.FetchX509SVID = NO_IDENTITY;
      expect(await rejection(c.fetchX509Context())).to.deep.equal({ code: 'ERR_WORKLOAD_NO_IDENTITY', message: 'no identity issued' });
      api.state.FetchX509Bundles = { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' };
      expect((await rejection(c.fetchX509Bundles())).code).to.equal('ERR_WORKLOAD_HEADER');
      api.unary.FetchJWTSVID = async () => ({ code: grpc.status.UNAVAILABLE, details: 'workload attestation failed' });
      const unavailable = await rejection(c.fetchJwtSvid({ audience: 'x' }));
      expect(unavailable.code).to.equal('ERR_WORKLOADAPI_UNAVAILABLE');
      expect(unavailable.message).to.include('workload attestation failed');
    });

    it('reports Unimplemented as ERR_UNIMPLEMENTED', async () => {
      api.state.FetchJWTBundles = { code: grpc.status.UNIMPLEMENTED, details: 'JWT-SVIDs are disabled' };
      expect(await rejection(client().fetchJwtBundles())).to.deep.equal({ code: 'ERR_UNIMPLEMENTED', message: 'JWT-SVIDs are disabled' });
    });

    it('says it cannot reach the address when nothing listens on the socket', async () => {
      const address = `unix://${api.dir}/nobody.sock`;
      const c = client({ address });
      for (const p of [c.fetchX509Context(), c.fetchJwtSvid({ audience: 'x' }), c.validateJwtSvid('a.b.c', 'x')]) {
        const r = await rejection(p);
        expect(r.code).to.equal('ERR_WORKLOADAPI_UNAVAILABLE');
        expect(r.message).to.include(address);
        expect(r.message).to.match(/^Cannot reach the Workload API at .*\.$/);
      }
    });

    it('reads SPIFFE_ENDPOINT_SOCKET when no address is given, and refuses calls once closed', async () => {
      const c = new WorkloadApiClient({ env: { SPIFFE_ENDPOINT_SOCKET: api.address }, backoff: FAST_BACKOFF });
      try {
        expect((await c.fetchX509Svid()).id.toString()).to.equal(ID);
      } finally {
        c.close();
      }
      expect((await rejection(c.fetchX509Context())).message).to.match(/is closed\.$/);
      expect((await rejection(c.fetchJwtSvid({ audience: 'x' }))).code).to.equal('ERR_WORKLOADAPI_UNAVAILABLE');
      expect(() => c.watchJwtBundles(() => {})).to.throw(/is closed/);
      expect(() => new WorkloadApiClient({ env: {} })).to.throw(/SPIFFE_ENDPOINT_SOCKET is not set/);
    });
  });

  describe('malformed responses', () => {
    const cases: Array<[string, () => Promise<void>, (c: WorkloadApiClient) => Promise<unknown>, string]> = [
      ['no SVID', async () => void (api.state.FetchX509SVID = { svids: [], crl: [], federated_bundles: {} }), (c) => c.fetchX509Context(), 'no SVID'],
      [
        'a chain that is not DER',
        async () => {
          const m = (await mintSvidMessage(fx.authority, ID)).message;
          api.state.FetchX509SVID = { svids: [{ ...m, x509_svid: Buffer.from('not a certificate') }], crl: [], federated_bundles: {} };
        },
        (c) => c.fetchX509Context(),
        'SVID 1 is not a valid X509-SVID',
      ],
      [
        'a key that does not match the leaf',
        async () => {
          const [a, b] = await Promise.all([mintSvidMessage(fx.authority, ID), mintSvidMessage(fx.authority, ID)]);
          api.state.FetchX509SVID = { svids: [{ ...a.message, x509_svid_key: b.message.x509_svid_key }], crl: [], federated_bundles: {} };
        },
        (c) => c.fetchX509Context(),
        'private key',
      ],
      [
        'a spiffe_id that is not the certificate’s',
        async () => {
          const m = (await mintSvidMessage(fx.authority, ID)).message;
          api.state.FetchX509SVID = { svids: [{ ...m, spiffe_id: ID2 }], crl: [], federated_bundles: {} };
        },
        (c) => c.fetchX509Context(),
        'its certificate names',
      ],
      [
        'a federated bundle key that is not a trust domain',
        async () => {
          const m = (await mintSvidMessage(fx.authority, ID)).message;
          api.state.FetchX509SVID = { svids: [m], crl: [], federated_bundles: { 'spiffe://UPPER.org': bundleDer(partner.authority) } };
        },
        (c) => c.fetchX509Context(),
        'not a trust domain',
      ],
      ['X.509 bundles that are not DER', async () => void (api.state.FetchX509Bundles = { crl: [], bundles: { 'example.org': Buffer.from('xx') } }), (c) => c.fetchX509Bundles(), 'not concatenated DER'],
      ['a JWKS that is not JSON', async () => void (api.state.FetchJWTBundles = { bundles: { 'example.org': Buffer.from('{') } }), (c) => c.fetchJwtBundles(), 'not a valid JWKS'],
      ['no JWT bundle at all', async () => void (api.state.FetchJWTBundles = { bundles: {} }), (c) => c.fetchJwtBundles(), 'no bundle'],
      [
        'a JWT-SVID for another audience',
        async () => {
          const token = (await fx.authority.mintJwtSvid({ spiffeId: ID, audience: ['other'], ttl: 60 })).token;
          api.unary.FetchJWTSVID = async () => ({ svids: [{ spiffe_id: ID, svid: token, hint: '' }] });
        },
        (c) => c.fetchJwtSvid({ audience: 'svc' }),
        'requested audience',
      ],
      ['bytes that are not protobuf', async () => void (api.unary.FetchJWTSVID = async () => Buffer.from([0xff, 0xff, 0xff])), (c) => c.fetchJwtSvid({ audience: 'svc' }), 'INTERNAL'],
      ['a validation answer without claims', async () => void (api.unary.ValidateJWTSVID = async () => ({ spiffe_id: ID, claims: null })), (c) => c.validateJwtSvid('a.b.c', 'svc'), 'no claims'],
    ];
    for (const [name, setup, call, what] of cases) {
      it(`refuses ${name} with ERR_WORKLOADAPI_RESPONSE`, async () => {
        await setup();
        const r = await rejection(call(client()));
        expect(r.code).to.equal('ERR_WORKLOADAPI_RESPONSE');
        expect(r.message).to.include(what);
      });
    }
  });
});
