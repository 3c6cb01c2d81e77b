/**
 * The mTLS client: the server is checked by SPIFFE ID and never by host name, against its own
 * trust domain's bundle; tls.connect and https.request with mtlsClientOptions; MtlsClient and
 * mtlsFetch; the errors for a missing authorizer and a source without an SVID.
 */
import { expect } from 'chai';
import https from 'node:https';
import tls from 'node:tls';
import { BundleSet, X509Bundle } from '../../src/bundle/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { type Authorizer, MtlsClient, authorizeAny, authorizeId, authorizeMemberOf, createMtlsServer, mtlsClientOptions, mtlsFetch, verifiedPeerOf } from '../../src/tls/index.js';
import { Cleanup, FakeSource, type HandMade, type Minted, TestCa, handMadeLeaf, handMadeRoot, listen } from './helpers.js';
import type { TLSSocket } from 'node:tls';

const SERVER_ID = 'spiffe://example.org/service/billing';

describe('tls: the mTLS client', () => {
  let example: TestCa;
  let server: Minted;
  let client: Minted;
  let forgedServer: HandMade;
  let bundles: BundleSet;
  let port: number;
  let serverSource: FakeSource;
  const cleanup = new Cleanup();
  const perTest = new Cleanup();

  before(async () => {
    example = await TestCa.create('example.org');
    const partnerRoot = await handMadeRoot('partner.org');
    server = await example.mint(SERVER_ID, 3600, ['localhost']);
    client = await example.mint('spiffe://example.org/agent/a/task/1');
    forgedServer = await handMadeLeaf(partnerRoot, { uris: [SERVER_ID], dns: ['localhost'] });
    bundles = new BundleSet([new X509Bundle(parseTrustDomain('example.org'), example.roots()), new X509Bundle(parseTrustDomain('partner.org'), [partnerRoot.der])]);
    serverSource = new FakeSource({ svid: server.svid, bundles });
    const s = cleanup.server(
      createMtlsServer(serverSource, authorizeAny(), (req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ caller: verifiedPeerOf(req.socket as TLSSocket).spiffeId.toString(), method: req.method }));
      }),
    );
    port = await listen(s);
  });
  after(() => cleanup.run());
  afterEach(() => perTest.run());

  const clientSource = (): FakeSource => new FakeSource({ svid: client.svid, bundles });
  const fail = (p: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown> } | undefined> =>
    p.then(
      () => undefined,
      (e: { code?: string; details?: Record<string, unknown> }) => e,
    );

  function tlsConnect(p: number, host: string, authorizer: Authorizer): Promise<string> {
    return new Promise((resolve) => {
      const s = tls.connect({ ...mtlsClientOptions(clientSource(), authorizer), host, port: p });
      s.on('secureConnect', () => {
        s.end();
        resolve('secureConnect');
      });
      s.on('error', (e: { code?: string }) => resolve(`error:${e.code}`));
    });
  }

  it('checks the server by SPIFFE ID: the right ID passes on any host name, a wrong ID fails even when the host name matches', async () => {
    expect(await tlsConnect(port, '127.0.0.1', authorizeId(SERVER_ID))).to.equal('secureConnect'); // no SAN names 127.0.0.1
    expect(await tlsConnect(port, 'localhost', authorizeId('spiffe://example.org/service/other'))).to.equal('error:ERR_TLS_PEER_NOT_AUTHORIZED');
    const c = new MtlsClient(clientSource(), authorizeId('spiffe://example.org/service/other'));
    perTest.add(() => c.close());
    const err = await fail(c.request(`https://localhost:${port}/`));
    expect(err?.code).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
  });

  it("refuses a server certificate from partner.org's CA that claims an example.org ID", async () => {
    const s = perTest.server(tls.createServer({ cert: forgedServer.certPem, key: forgedServer.keyPem }, (sock) => sock.end('secret')));
    const p = await listen(s);
    expect(await tlsConnect(p, 'localhost', authorizeId(SERVER_ID))).to.equal('error:ERR_TLS_PEER_INVALID');
    const err = await fail(mtlsFetch(clientSource(), authorizeMemberOf('example.org'), `https://localhost:${p}/`));
    expect([err?.code, err?.details?.reason]).to.deep.equal(['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_CHAIN']);
  });

  it('works with https.request and the dedicated agent of mtlsClientOptions', async () => {
    const opts = mtlsClientOptions(clientSource(), authorizeId(SERVER_ID));
    perTest.add(() => opts.agent.destroy());
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request({ ...opts, host: '127.0.0.1', port, path: '/x', method: 'POST' }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      req.end();
    });
    expect(JSON.parse(body)).to.deep.equal({ caller: 'spiffe://example.org/agent/a/task/1', method: 'POST' });
  });

  it('MtlsClient and mtlsFetch send bodies, return status, JSON and the verified server', async () => {
    const r = await mtlsFetch(clientSource(), authorizeId(SERVER_ID), `https://127.0.0.1:${port}/`, { method: 'PUT', body: 'x', headers: { 'content-type': 'text/plain' } });
    expect(r.status).to.equal(200);
    expect(r.json()).to.deep.equal({ caller: 'spiffe://example.org/agent/a/task/1', method: 'PUT' });
    expect(r.peer.spiffeId.toString()).to.equal(SERVER_ID);
    expect(r.peer.chain).to.have.length(2);
    const err = await fail(mtlsFetch(clientSource(), authorizeAny(), `http://127.0.0.1:${port}/`));
    expect(err?.code).to.equal('ERR_INPUT_INVALID');
    const closed = await listen(perTest.server(tls.createServer())); // no certificate: every handshake fails
    const down = await fail(mtlsFetch(clientSource(), authorizeAny(), `https://127.0.0.1:${closed}/`, { timeoutMs: 2000 }));
    expect(down?.code).to.equal('ERR_TLS_CONNECTION');
  });

  it('requires an authorizer and a source with an SVID', () => {
    expect(() => mtlsClientOptions(clientSource(), undefined as unknown as Authorizer)).to.throw().with.property('code', 'ERR_INPUT_INVALID');
    const empty = new FakeSource({ bundles });
    expect(() => mtlsClientOptions(empty, authorizeAny())).to.throw().with.property('code', 'ERR_TLS_SOURCE_NOT_READY');
  });
});
