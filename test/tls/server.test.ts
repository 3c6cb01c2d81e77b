/**
 * The strict peer check on real node:tls servers on loopback: who gets through, who is refused and
 * how (OpenSSL in the handshake, or the library check on 'secureConnection'), and what the
 * refused client actually sees under TLS 1.3 and TLS 1.2.
 */
import { expect } from 'chai';
import tls from 'node:tls';
import { ManualClock } from '../../src/clock.js';
import type { WritError } from '../../src/errors.js';
import { type Authorizer, applyPeerCheck, authorizeMatch, mtlsServerOptions, verifiedPeerOf, verifyPeer } from '../../src/tls/index.js';
import { Cleanup, FakeSource, type HandMade, KU, type Minted, TestCa, handMadeLeaf, handMadeRoot, listen, rawClient } from './helpers.js';
import type { TestCert } from '../svid/pki.js';
import { BundleSet, X509Bundle } from '../../src/bundle/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';

const HOUR = 3600_000;

describe('tls: the peer check on a node:tls server', () => {
  let example: TestCa;
  let partner: TestCa;
  let past: TestCa;
  let handRoot: TestCert;
  let partnerHandRoot: TestCert;
  let server: Minted;
  let agentTask: Minted;
  let otherAgent: Minted;
  let expired: Minted;
  let forged: HandMade;
  let caAsLeaf: HandMade;
  let twoUris: HandMade;
  let bundles: BundleSet;
  const cleanup = new Cleanup();

  before(async () => {
    example = await TestCa.create('example.org');
    partner = await TestCa.create('partner.org');
    past = await TestCa.create('example.org', new ManualClock(Date.now() - 2 * HOUR));
    handRoot = await handMadeRoot('example.org');
    partnerHandRoot = await handMadeRoot('partner.org');
    server = await example.mint('spiffe://example.org/service/billing');
    agentTask = await example.mint('spiffe://example.org/agent/summarizer/task/t1');
    otherAgent = await example.mint('spiffe://example.org/agent/summarizer');
    expired = await past.mint('spiffe://example.org/agent/old/task/t0', 60);
    // partner.org's CA signs an ID of example.org: it chains to a root in the union, not to example.org's.
    forged = await handMadeLeaf(partnerHandRoot, { uris: ['spiffe://example.org/agent/summarizer/task/t1'] });
    caAsLeaf = await handMadeLeaf(handRoot, { uris: ['spiffe://example.org/agent/x/task/ca'], ca: true, keyUsage: KU.keyCertSign | KU.digitalSignature });
    twoUris = await handMadeLeaf(handRoot, { uris: ['spiffe://example.org/agent/x/task/a', 'spiffe://example.org/agent/x/task/b'] });
    bundles = new BundleSet([
      new X509Bundle(parseTrustDomain('example.org'), [...example.roots(), ...past.roots(), handRoot.der]),
      new X509Bundle(parseTrustDomain('partner.org'), [...partner.roots(), partnerHandRoot.der]),
    ]);
  });
  afterEach(() => cleanup.run());

  /** A tls server that answers "ok <peer id>" to the first data, with the check applied. */
  async function startServer(authorizer: Authorizer, opts: { maxVersion?: tls.SecureVersion } = {}) {
    const source = new FakeSource({ svid: server.svid, bundles });
    const refused: WritError[] = [];
    const handshakeErrors: string[] = [];
    const s = cleanup.server(tls.createServer({ ...mtlsServerOptions(source, authorizer), ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}) }));
    applyPeerCheck(s, source, authorizer, { onRefused: (e) => refused.push(e) });
    const received: string[] = [];
    s.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('data', (d: Buffer) => {
        received.push(d.toString());
        socket.end(`ok ${verifiedPeerOf(socket).spiffeId.toString()}\n`);
      });
    });
    s.on('tlsClientError', (e: NodeJS.ErrnoException) => handshakeErrors.push(e.code ?? e.message));
    const port = await listen(s);
    return { server: s, source, port, refused, received, handshakeErrors };
  }

  const tasks = authorizeMatch('spiffe://example.org/agent/*/task/*');

  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`lets an allowed SVID through and shows the handler its verified ID (${maxVersion})`, async () => {
      const srv = await startServer(tasks, { maxVersion });
      const out = await rawClient(srv.port, { cert: agentTask.certPem, key: agentTask.keyPem, ca: example.rootsPem(), send: 'hi' });
      expect(out.events).to.include('data:ok spiffe://example.org/agent/summarizer/task/t1\n');
      expect(srv.refused).to.deep.equal([]);
      expect(srv.received).to.deep.equal(['hi']);
    });
  }

  it('refuses an ID the authorizer does not allow: TLS 1.3 clients finish the handshake, then see the close', async () => {
    const srv = await startServer(tasks, { maxVersion: 'TLSv1.3' });
    const out = await rawClient(srv.port, { cert: otherAgent.certPem, key: otherAgent.keyPem, ca: example.rootsPem(), send: 'GET / HTTP/1.1\r\n\r\n' });
    expect(srv.refused.map((e) => e.code)).to.deep.equal(['ERR_TLS_PEER_NOT_AUTHORIZED']);
    expect(srv.refused[0]!.message).to.contain('spiffe://example.org/agent/summarizer');
    expect(srv.received).to.deep.equal([]);
    expect(out.events[0]).to.equal('secureConnect');
    expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
    expect(out.events.slice(1)).to.satisfy((ev: string[]) => ev.every((e) => e === 'end' || e === 'error:ECONNRESET'));
  });

  it('refuses an ID the authorizer does not allow: TLS 1.2 clients never finish the handshake', async () => {
    const srv = await startServer(tasks, { maxVersion: 'TLSv1.2' });
    const out = await rawClient(srv.port, { cert: otherAgent.certPem, key: otherAgent.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(srv.refused.map((e) => e.code)).to.deep.equal(['ERR_TLS_PEER_NOT_AUTHORIZED']);
    expect(out.events).to.not.include('secureConnect');
    expect(out.events).to.include('error:ECONNRESET'); // "socket disconnected before secure TLS connection was established"
    expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
  });

  it("refuses a certificate from partner.org's CA claiming an example.org ID (cross trust domain forgery)", async () => {
    const srv = await startServer(tasks);
    const out = await rawClient(srv.port, { cert: forged.certPem, key: forged.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(srv.handshakeErrors).to.deep.equal([]); // OpenSSL accepted it: partner.org's root is in the union
    expect(srv.refused.map((e) => [e.code, e.details?.reason])).to.deep.equal([['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_CHAIN']]);
    expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
  });

  it('refuses a CA certificate presented as a leaf, and a leaf with two URI SANs', async () => {
    const srv = await startServer(tasks);
    for (const peer of [caAsLeaf, twoUris]) {
      const out = await rawClient(srv.port, { cert: peer.certPem, key: peer.keyPem, ca: example.rootsPem(), send: 'x' });
      expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
    }
    expect(srv.refused.map((e) => [e.code, e.details?.reason])).to.deep.equal([
      ['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_CA_LEAF'],
      ['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_URI_SAN'],
    ]);
    expect(srv.received).to.deep.equal([]);
  });

  it('refuses clients without a certificate, and expired ones, in the handshake (OpenSSL)', async () => {
    const srv = await startServer(tasks);
    const none = await rawClient(srv.port, { ca: example.rootsPem(), send: 'x' });
    const old = await rawClient(srv.port, { cert: expired.certPem, key: expired.keyPem, ca: example.rootsPem(), send: 'x' });

    for (const out of [none, old]) expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
    expect(none.events.join(' ')).to.match(/CERTIFICATE_REQUIRED/);
    // OpenSSL refuses a missing certificate inside the handshake (TLS 1.3 clients get the alert).
    // A failed chain check is like ours: Node reads OpenSSL's verdict after the handshake and
    // destroys the socket without a TLS alert, before 'secureConnection'.
    expect(srv.handshakeErrors[0]).to.equal('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
    expect(srv.refused).to.deep.equal([]);
    expect(srv.received).to.deep.equal([]);
    // The library check gives the same verdict with the SVID rule that failed.
    const e = (() => {
      try {
        verifyPeer(expired.minted.chain, bundles, tasks);
      } catch (err) {
        return err as WritError;
      }
      return undefined;
    })();
    expect([e?.code, e?.details?.reason, e?.details?.rule]).to.deep.equal(['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_EXPIRED', 'not-expired']);
  });

  it('refuses a revoked serial on the next handshake after the source delivers the CRL', async () => {
    const srv = await startServer(tasks);
    const before = await rawClient(srv.port, { cert: agentTask.certPem, key: agentTask.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(before.events).to.include('data:ok spiffe://example.org/agent/summarizer/task/t1\n');
    srv.source.set({ crls: await example.crls([agentTask]) });
    const after = await rawClient(srv.port, { cert: agentTask.certPem, key: agentTask.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(after.events.some((e) => e.startsWith('data:'))).to.equal(false);
    expect(srv.refused.map((e) => [e.code, e.details?.reason, e.details?.serial])).to.deep.equal([['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_REVOKED', agentTask.minted.serial]]);
    // An SVID of the same CA that is not on the CRL still gets through.
    const other = await example.mint('spiffe://example.org/agent/summarizer/task/t2');
    const fine = await rawClient(srv.port, { cert: other.certPem, key: other.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(fine.events).to.include('data:ok spiffe://example.org/agent/summarizer/task/t2\n');
  });

  it('accepts a peer of a federated trust domain only when the authorizer allows that trust domain', async () => {
    const partnerPeer = await partner.mint('spiffe://partner.org/agent/a/task/b');
    const srv = await startServer(tasks);
    const out = await rawClient(srv.port, { cert: partnerPeer.certPem, key: partnerPeer.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
    expect(srv.refused.map((e) => e.code)).to.deep.equal(['ERR_TLS_PEER_NOT_AUTHORIZED']);
    const srv2 = await startServer(authorizeMatch('spiffe://partner.org/agent/*/task/*'));
    const ok = await rawClient(srv2.port, { cert: partnerPeer.certPem, key: partnerPeer.keyPem, ca: example.rootsPem(), send: 'x' });
    expect(ok.events).to.include('data:ok spiffe://partner.org/agent/a/task/b\n');
  });

  it('reads the whole client chain once per leaf and source update; a new CRL still refuses a known leaf', async () => {
    const srv = await startServer(tasks);
    const chainReads: number[] = [];
    const s = srv.server;
    // Runs before the peer check (prepended after it): counts getPeerCertificate(true) per socket.
    s.prependListener('secureConnection', (socket: tls.TLSSocket) => {
      const i = chainReads.push(0) - 1;
      const original = socket.getPeerCertificate.bind(socket);
      socket.getPeerCertificate = ((detailed?: boolean) => {
        if (detailed) chainReads[i]!++;
        return original(detailed as true);
      }) as typeof socket.getPeerCertificate;
    });
    const call = () => rawClient(srv.port, { cert: agentTask.certPem, key: agentTask.keyPem, ca: example.rootsPem(), send: 'x' });
    for (let i = 0; i < 3; i++) expect((await call()).events).to.include('data:ok spiffe://example.org/agent/summarizer/task/t1\n');
    expect(chainReads).to.deep.equal([1, 0, 0]);
    // A cross trust domain forgery is never cached as good: refused every time, chain read every time.
    for (let i = 0; i < 2; i++) {
      const out = await rawClient(srv.port, { cert: forged.certPem, key: forged.keyPem, ca: example.rootsPem(), send: 'x' });
      expect(out.events.some((e) => e.startsWith('data:'))).to.equal(false);
    }
    expect(chainReads).to.deep.equal([1, 0, 0, 1, 1]);
    srv.source.set({ crls: await example.crls([agentTask]) });
    expect((await call()).events.some((e) => e.startsWith('data:'))).to.equal(false);
    expect(chainReads).to.deep.equal([1, 0, 0, 1, 1, 1]);
    expect(srv.refused.map((e) => e.details?.reason)).to.deep.equal(['ERR_SVID_X509_CHAIN', 'ERR_SVID_X509_CHAIN', 'ERR_SVID_X509_REVOKED']);
  });

  it('applies the check once per server and detaches on close', async () => {
    const srv = await startServer(tasks);
    const s = tls.createServer(mtlsServerOptions(srv.source, tasks));
    const binding = applyPeerCheck(s, srv.source, tasks);
    expect(() => applyPeerCheck(s, srv.source, tasks)).to.throw().with.property('code', 'ERR_TLS_NOT_CONFIGURED');
    expect(s.listenerCount('secureConnection')).to.equal(1);
    binding.close();
    expect(s.listenerCount('secureConnection')).to.equal(0);
  });
});
