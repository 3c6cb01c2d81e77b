/**
 * Source updates under open connections: SVID rotation and CA (bundle) rotation on the server keep
 * keep-alive connections open while new connections get the new state; the client checks a pooled
 * connection again after its own source changes; the SNICallback of mtlsServerOptions alone.
 */
import { expect } from 'chai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import tls from 'node:tls';
import { MtlsClient, authorizeAny, authorizeId, createMtlsServer, mtlsServerOptions, verifiedPeerOf } from '../../src/tls/index.js';
import { Cleanup, FakeSource, type Minted, TestCa, bareSerial, bundleSetOf, listen, rawClient } from './helpers.js';
import type { TLSSocket } from 'node:tls';

const SERVER_ID = 'spiffe://example.org/service/billing';

describe('tls: source updates under open connections', () => {
  let ca1: TestCa;
  let ca2: TestCa;
  let server1: Minted;
  let client1: Minted;
  const cleanup = new Cleanup();

  before(async () => {
    ca1 = await TestCa.create('example.org');
    ca2 = await TestCa.create('example.org'); // the next root of the same trust domain
    server1 = await ca1.mint(SERVER_ID);
    client1 = await ca1.mint('spiffe://example.org/agent/a/task/1');
  });
  afterEach(() => cleanup.run());

  /** An https server answering {peer, port} (the client's source port shows which connection it was). */
  async function start(source: FakeSource) {
    const seen: string[] = [];
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      const peer = verifiedPeerOf(req.socket as TLSSocket);
      seen.push(peer.spiffeId.toString());
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ peer: peer.spiffeId.toString(), port: req.socket.remotePort }));
    };
    const server = cleanup.server(createMtlsServer(source, authorizeAny(), handler));
    return { port: await listen(server), seen };
  }

  function client(svid: Minted, bundles = bundleSetOf(ca1)) {
    const source = new FakeSource({ svid: svid.svid, bundles });
    const c = new MtlsClient(source, authorizeId(SERVER_ID));
    cleanup.add(() => c.close());
    return { source, c };
  }

  it('rotates the server SVID without dropping keep-alive connections; new connections get the new SVID', async () => {
    const source = new FakeSource({ svid: server1.svid, bundles: bundleSetOf(ca1) });
    const { port } = await start(source);
    const { c } = client(client1);
    const r1 = await c.request(`https://127.0.0.1:${port}/`);
    expect(bareSerial(r1.peer.serial)).to.equal(bareSerial(server1.minted.serial));
    const server2 = await ca1.mint(SERVER_ID);
    source.set({ svid: server2.svid });
    const r2 = await c.request(`https://127.0.0.1:${port}/`);
    expect(r2.json<{ port: number }>().port).to.equal(r1.json<{ port: number }>().port); // the same connection
    expect(bareSerial(r2.peer.serial)).to.equal(bareSerial(server1.minted.serial));
    const fresh = await rawClient(port, { cert: client1.certPem, key: client1.keyPem, ca: ca1.rootsPem(), send: 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' });
    expect(bareSerial(fresh.serverCertSerial!)).to.equal(bareSerial(server2.minted.serial));
    expect(fresh.events.join('')).to.contain('HTTP/1.1 200');
  });

  it('rotates the CA: the new root is trusted for new connections while old connections stay open', async () => {
    const source = new FakeSource({ svid: server1.svid, bundles: bundleSetOf(ca1) });
    const { port, seen } = await start(source);
    const { c } = client(client1, bundleSetOf(ca1, ca2));
    const r1 = await c.request(`https://127.0.0.1:${port}/`);
    const client2 = await ca2.mint('spiffe://example.org/agent/b/task/2');
    const req = 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n';
    const early = await rawClient(port, { cert: client2.certPem, key: client2.keyPem, ca: ca1.rootsPem() + ca2.rootsPem(), send: req });
    expect(early.events.join('')).to.not.contain('HTTP/1.1 200'); // ca2 is not trusted yet

    // The new root is published, then the server's SVID comes from it.
    const server2 = await ca2.mint(SERVER_ID);
    source.set({ bundles: bundleSetOf(ca1, ca2), svid: server2.svid });
    const r2 = await c.request(`https://127.0.0.1:${port}/`);
    expect(r2.json<{ port: number }>().port).to.equal(r1.json<{ port: number }>().port);
    const late = await rawClient(port, { cert: client2.certPem, key: client2.keyPem, ca: ca2.rootsPem(), send: req });
    expect(late.events.join('')).to.contain('HTTP/1.1 200');
    expect(bareSerial(late.serverCertSerial!)).to.equal(bareSerial(server2.minted.serial));
    expect(seen).to.deep.equal(['spiffe://example.org/agent/a/task/1', 'spiffe://example.org/agent/a/task/1', 'spiffe://example.org/agent/b/task/2']);
  });

  it('checks a pooled connection again after the client source changes (a revoked server is refused before the request goes out)', async () => {
    const source = new FakeSource({ svid: server1.svid, bundles: bundleSetOf(ca1) });
    const { port, seen } = await start(source);
    const { c, source: clientSource } = client(client1);
    await c.request(`https://127.0.0.1:${port}/`);
    clientSource.set({ crls: await ca1.crls([server1]) });
    const err = await c.request(`https://127.0.0.1:${port}/`).then(
      () => undefined,
      (e: { code: string; details?: Record<string, unknown> }) => e,
    );
    expect([err?.code, err?.details?.reason]).to.deep.equal(['ERR_TLS_PEER_INVALID', 'ERR_SVID_X509_REVOKED']);
    expect(seen).to.have.length(1);
  });

  it('stops presenting a withdrawn SVID: new handshakes fail, open connections stay, and it resumes when one arrives', async () => {
    const source = new FakeSource({ svid: server1.svid, bundles: bundleSetOf(ca1) });
    const { port } = await start(source);
    const { c, source: clientSource } = client(client1);
    const r1 = await c.request(`https://127.0.0.1:${port}/`);
    source.set({ svid: null });
    const kept = await c.request(`https://127.0.0.1:${port}/`);
    expect(kept.json<{ port: number }>().port).to.equal(r1.json<{ port: number }>().port);
    const refused = await rawClient(port, { cert: client1.certPem, key: client1.keyPem, ca: ca1.rootsPem(), send: 'GET / HTTP/1.1\r\nhost: x\r\n\r\n' });
    expect(refused.events).to.not.include('secureConnect');
    clientSource.set({ svid: null });
    expect(() => new MtlsClient(clientSource, authorizeAny())).to.throw().with.property('code', 'ERR_TLS_SOURCE_NOT_READY');
    const err = await c.request(`https://127.0.0.1:${port}/`).then(
      () => undefined,
      (e: { code: string }) => e.code,
    );
    expect(err).to.equal('ERR_TLS_SOURCE_NOT_READY');
    const server2 = await ca1.mint(SERVER_ID);
    source.set({ svid: server2.svid });
    const back = await rawClient(port, { cert: client1.certPem, key: client1.keyPem, ca: ca1.rootsPem(), send: 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' });
    expect(back.events.join('')).to.contain('HTTP/1.1 200');
  });

  it('mtlsServerOptions alone: clients that send a server name get the latest SVID through the SNICallback', async () => {
    const source = new FakeSource({ svid: server1.svid, bundles: bundleSetOf(ca1) });
    const server = cleanup.server(tls.createServer(mtlsServerOptions(source, authorizeAny()), (s) => s.end('hi')));
    const port = await listen(server);
    const server2 = await ca1.mint(SERVER_ID);
    source.set({ svid: server2.svid });
    const common = { cert: client1.certPem, key: client1.keyPem, ca: ca1.rootsPem() };
    const withName = await rawClient(port, { ...common, servername: 'billing.example' });
    const withoutName = await rawClient(port, common);
    expect(bareSerial(withName.serverCertSerial!)).to.equal(bareSerial(server2.minted.serial));
    expect(bareSerial(withoutName.serverCertSerial!)).to.equal(bareSerial(server1.minted.serial));
  });
});
