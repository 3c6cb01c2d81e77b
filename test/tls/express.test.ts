/**
 * requirePeer() in a real express app on real https servers: the README's snippet (options alone,
 * the middleware finds and applies the check), req.peer, 401/403/500 JSON answers, a server that
 * lets clients without a certificate in so it can answer 401 itself, and a revoked caller on a
 * keep-alive connection refused at its next request.
 */
import { expect } from 'chai';
import express from 'express';
import https from 'node:https';
import { X509Bundle, BundleSet } from '../../src/bundle/index.js';
import { ManualClock } from '../../src/clock.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { authorizeAny, authorizeId, authorizeMatch, createMtlsServer, mtlsServerOptions, peerOf, requirePeer } from '../../src/tls/index.js';
import { Cleanup, FakeSource, type HandMade, type Minted, TestCa, bareSerial, handMadeLeaf, handMadeRoot, listen } from './helpers.js';

const HOUR = 3600_000;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  /** The client's source port: the same value means the same connection. */
  localPort?: number;
}

/** A GET with a hand-configured client certificate (or none); host names are not checked. */
function get(port: number, path: string, client: { certPem: string; keyPem: string } | undefined, ca: string, agent?: https.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, ca, ...(client ? { cert: client.certPem, key: client.keyPem } : {}), checkServerIdentity: () => undefined, agent: agent ?? false },
      (res) => {
        const localPort = res.socket.localPort;
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(parts).toString() || '{}') as Record<string, unknown>, localPort }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('tls: requirePeer() express middleware', () => {
  let example: TestCa;
  let past: TestCa;
  let partnerRoot: Awaited<ReturnType<typeof handMadeRoot>>;
  let server: Minted;
  let task: Minted;
  let agent: Minted;
  let expired: Minted;
  let forged: HandMade;
  let bundles: BundleSet;
  const cleanup = new Cleanup();

  before(async () => {
    example = await TestCa.create('example.org');
    past = await TestCa.create('example.org', new ManualClock(Date.now() - 2 * HOUR));
    partnerRoot = await handMadeRoot('partner.org');
    server = await example.mint('spiffe://example.org/service/billing');
    task = await example.mint('spiffe://example.org/agent/summarizer/task/t1');
    agent = await example.mint('spiffe://example.org/agent/summarizer');
    expired = await past.mint('spiffe://example.org/agent/old/task/t0', 60);
    forged = await handMadeLeaf(partnerRoot, { uris: ['spiffe://example.org/agent/summarizer/task/t1'] });
    bundles = new BundleSet([new X509Bundle(parseTrustDomain('example.org'), [...example.roots(), ...past.roots()]), new X509Bundle(parseTrustDomain('partner.org'), [partnerRoot.der])]);
  });
  afterEach(() => cleanup.run());

  function app(...routeChecks: express.RequestHandler[]) {
    const a = express();
    a.get('/whoami', ...routeChecks, (req, res) => {
      const p = peerOf(req);
      res.json({ spiffeId: p.spiffeId.toString(), trustDomain: p.trustDomain.name, serial: p.serial, notAfter: p.notAfter.toISOString(), chain: p.chain.length });
    });
    return a;
  }

  it("the README snippet: options alone plus requirePeer(); req.peer is the verified caller", async () => {
    const source = new FakeSource({ svid: server.svid, bundles });
    const a = express();
    a.use(requirePeer());
    a.get('/whoami', (req, res) => res.json({ spiffeId: req.peer?.spiffeId.toString(), serial: req.peer?.serial, notAfter: req.peer?.notAfter.toISOString(), chain: req.peer?.chain.length, td: req.peer?.trustDomain.name }));
    const s = cleanup.server(https.createServer(mtlsServerOptions(source, authorizeMatch('spiffe://example.org/agent/*/task/*')), a));
    const port = await listen(s);

    // First request, before the check was applied to the server: the middleware refuses it itself.
    const first = await get(port, '/whoami', agent, example.rootsPem());
    expect(first).to.deep.include({ status: 403 });
    expect(first.body).to.deep.equal({ code: 'ERR_TLS_PEER_NOT_AUTHORIZED', message: first.body.message });
    expect(first.body.message).to.contain('spiffe://example.org/agent/summarizer');

    const ok = await get(port, '/whoami', task, example.rootsPem());
    expect(ok.status).to.equal(200);
    expect(ok.body).to.deep.equal({ spiffeId: 'spiffe://example.org/agent/summarizer/task/t1', serial: task.minted.serial, notAfter: task.minted.notAfter.toISOString(), chain: 2, td: 'example.org' });
    expect(bareSerial(String(ok.body.serial))).to.equal(bareSerial(task.svid.leaf.serialNumber));

    // From then on the server itself refuses unauthorized peers at the connection.
    const later = await get(port, '/whoami', agent, example.rootsPem()).then(
      () => 'answered',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(later).to.be.oneOf(['ECONNRESET', 'EPIPE']);
    // And a forged cross trust domain certificate never gets an answer.
    const forgery = await get(port, '/whoami', forged, example.rootsPem()).then(
      (r) => r.status,
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(forgery).to.be.oneOf(['ECONNRESET', 'EPIPE']);
  });

  it('answers 403 with {code, message} when a per-route authorizer refuses', async () => {
    const source = new FakeSource({ svid: server.svid, bundles });
    const a = app(requirePeer({ authorizer: authorizeId('spiffe://example.org/agent/summarizer/task/t9') }));
    const port = await listen(cleanup.server(createMtlsServer(source, authorizeAny(), a)));
    const r = await get(port, '/whoami', task, example.rootsPem());
    expect(r.status).to.equal(403);
    expect(r.body.code).to.equal('ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(Object.keys(r.body).sort()).to.deep.equal(['code', 'message']);
  });

  it('answers 401 for no, expired or forged client certificates when the server lets them in', async () => {
    const source = new FakeSource({ svid: server.svid, bundles });
    const lenient = { cert: server.certPem, key: server.keyPem, ca: example.rootsPem(), requestCert: true, rejectUnauthorized: false };
    const a = app(requirePeer({ source, authorizer: authorizeMatch('spiffe://example.org/agent/*/task/*') }));
    const port = await listen(cleanup.server(https.createServer(lenient, a)));
    const none = await get(port, '/whoami', undefined, example.rootsPem());
    expect([none.status, none.body.code]).to.deep.equal([401, 'ERR_TLS_PEER_MISSING']);
    const old = await get(port, '/whoami', expired, example.rootsPem());
    expect([old.status, old.body.code]).to.deep.equal([401, 'ERR_TLS_PEER_INVALID']);
    expect(old.body.message).to.match(/expired/);
    const fake = await get(port, '/whoami', forged, example.rootsPem());
    expect([fake.status, fake.body.code]).to.deep.equal([401, 'ERR_TLS_PEER_INVALID']);
    const wrong = await get(port, '/whoami', agent, example.rootsPem());
    expect([wrong.status, wrong.body.code]).to.deep.equal([403, 'ERR_TLS_PEER_NOT_AUTHORIZED']);
    const fine = await get(port, '/whoami', task, example.rootsPem());
    expect([fine.status, fine.body.spiffeId]).to.deep.equal([200, 'spiffe://example.org/agent/summarizer/task/t1']);
  });

  it('refuses a caller revoked while its keep-alive connection is open at its next request (401), without dropping the connection first', async () => {
    const source = new FakeSource({ svid: server.svid, bundles });
    const port = await listen(cleanup.server(createMtlsServer(source, authorizeAny(), app(requirePeer()))));
    const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.add(() => keepAlive.destroy());
    const r1 = await get(port, '/whoami', task, example.rootsPem(), keepAlive);
    expect(r1.status).to.equal(200);
    source.set({ crls: await example.crls([task]) });
    const r2 = await get(port, '/whoami', task, example.rootsPem(), keepAlive);
    expect(r2.localPort).to.equal(r1.localPort);
    expect([r2.status, r2.body.code]).to.deep.equal([401, 'ERR_TLS_PEER_INVALID']);
    expect(r2.body.message).to.match(/revoked/);
  });

  it('answers 500 ERR_TLS_NOT_CONFIGURED on a server it knows no check for; peerOf() needs requirePeer()', async () => {
    const plain = { cert: server.certPem, key: server.keyPem, ca: example.rootsPem(), requestCert: true };
    const a = express();
    a.get('/bare', (req, res) => {
      try {
        peerOf(req);
        res.json({});
      } catch (e) {
        res.status(418).json({ code: (e as { code: string }).code });
      }
    });
    a.use(requirePeer());
    a.get('/whoami', (_req, res) => res.json({}));
    const port = await listen(cleanup.server(https.createServer(plain, a)));
    const r = await get(port, '/whoami', task, example.rootsPem());
    expect([r.status, r.body.code]).to.deep.equal([500, 'ERR_TLS_NOT_CONFIGURED']);
    const b = await get(port, '/bare', task, example.rootsPem());
    expect([b.status, b.body.code]).to.deep.equal([418, 'ERR_TLS_PEER_MISSING']);
  });
});
