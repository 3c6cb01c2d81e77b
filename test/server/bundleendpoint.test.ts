/**
 * The bundle endpoint, https_spiffe profile, against a real in-process server (SQLite in a
 * temporary directory, HTTPS on a loopback port, a manual clock): the client checks the server's
 * certificate as the X509-SVID of spiffe://example.org/writ/server against the trust bundle; the
 * SPIFFE bundle, PEM, CRL (checked by openssl) and OIDC paths; methods, conditional requests,
 * the TLS profile; the bundle sequence across a CA rotation; and an SVID swap that keeps an open
 * keep-alive connection.
 */
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { SpiffeBundle, X509Bundle, encodePem } from '../../src/bundle/index.js';
import { newWorkloadKey } from '../../src/ca/index.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { validateServerConfig } from '../../src/server/config.js';
import { WritServer } from '../../src/server/server.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { verifyX509Svid } from '../../src/svid/index.js';
import { VerifyingAgent, fingerprintOfPem, viaAgent, type Reply } from './bundleendpoint-helpers.js';

const TD = 'example.org';
const td = parseTrustDomain(TD);
const SERVER_ID = `spiffe://${TD}/writ/server`;
const MIN = 60_000;

describe('server/bundle endpoint (https_spiffe)', function () {
  this.timeout(60_000);
  let dir: string;
  let server: WritServer;
  let port: number;
  const clock = new ManualClock(Date.now());
  const agents: VerifyingAgent[] = [];

  const storeBundle = async () => SpiffeBundle.parse(td, (await server.ctx.datastore.getBundle(TD))!.document);
  /** An agent that accepts only the X509-SVID of the server's ID, verified against the store's bundle at the test clock. */
  const newAgent = async () => {
    const bundle = await storeBundle();
    const a = new VerifyingAgent((chain) => {
      const v = verifyX509Svid(chain, bundle, { now: clock.now() });
      if (v.id.toString() !== SERVER_ID) throw new Error(`unexpected server ID ${v.id.toString()}`);
    });
    agents.push(a);
    return a;
  };
  const get = async (path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Reply> => viaAgent(await newAgent(), { port, path, method, headers });
  const openssl = (args: string[], input?: Buffer) => execFileSync('openssl', args, { input, encoding: 'utf8', timeout: 20_000 });
  const opensslAsync = (args: string[], input: string) =>
    new Promise<string>((resolve, reject) => {
      const p = spawn('openssl', args, { timeout: 20_000 });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.on('error', reject);
      p.on('close', () => resolve(out));
      p.stdin.end(input);
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-bundle-ep-'));
    const config = validateServerConfig({
      trust_domain: TD,
      data_dir: join(dir, 'data'),
      admin: { socket_path: join(dir, 'admin.sock') },
      health: { enabled: false },
      node_api: { enabled: false },
      ca: { key_manager: 'memory' },
      bundle_endpoint: { enabled: true, port: 0 },
    });
    server = await WritServer.start(config, { logger: silentLogger, clock });
    port = server.bundleEndpointAddress!.port;
  });
  after(async () => {
    for (const a of agents) a.destroy();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the SPIFFE bundle under the server X509-SVID, equal to the stored one, with ETag and a bounded max-age', async () => {
    expect(server.bundleEndpointAddress!.address).to.equal('127.0.0.1');
    const r = await get('/');
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.equal('application/json');
    const served = SpiffeBundle.parse(td, r.body);
    expect(served.equals(await storeBundle())).to.equal(true);
    expect(served.refreshHint).to.equal(300);
    expect(served.x509Authorities.map((d) => d.toString('hex'))).to.deep.equal(server.ctx.authority.x509Authorities().map((d) => d.toString('hex')));
    expect(r.headers.etag).to.equal(`"${served.sequenceNumber}-300"`);
    const maxAge = Number(/max-age=(\d+)/.exec(r.headers['cache-control'] ?? '')?.[1]);
    expect(maxAge).to.be.within(1, 300);
    const again = await get('/', 'GET', { 'if-none-match': r.headers.etag! });
    expect(again.status).to.equal(304);
    expect(again.body.length).to.equal(0);
  });

  it('refuses a client that expects another SPIFFE ID (the check in these tests can fail)', async () => {
    const bundle = await storeBundle();
    const picky = new VerifyingAgent((chain) => {
      if (verifyX509Svid(chain, bundle, { now: clock.now() }).id.toString() !== `spiffe://${TD}/somebody/else`) throw new Error('wrong server ID');
    });
    agents.push(picky);
    let err: Error | undefined;
    await viaAgent(picky, { port, path: '/' }).catch((e: Error) => (err = e));
    expect(err?.message).to.equal('wrong server ID');
  });

  it('answers HEAD with the GET headers and no body; 405 with Allow for other methods; 404 for unknown paths', async () => {
    const g = await get('/keys');
    const h = await get('/keys', 'HEAD');
    expect(h.status).to.equal(200);
    expect(h.body.length).to.equal(0);
    expect(h.headers['content-length']).to.equal(String(g.body.length));
    expect(h.headers.etag).to.equal(g.headers.etag);
    expect(h.headers['content-type']).to.equal('application/json');
    for (const [method, path] of [['POST', '/'], ['PUT', '/bundle.pem'], ['DELETE', '/keys'], ['OPTIONS', '/crl'], ['PATCH', `/crl/${'a'.repeat(40)}.der`]] as const) {
      const r = await get(path, method);
      expect(r.status, `${method} ${path}`).to.equal(405);
      expect(r.headers.allow).to.equal('GET, HEAD');
    }
    for (const path of ['/nope', '/bundle.json', '/crl/xyz.der', '/.well-known/jwks.json']) expect((await get(path)).status, path).to.equal(404);
    expect((await get('/nope', 'POST')).status).to.equal(404);
    const text = await server.ctx.metrics.registry.getSingleMetricAsString('writ_bundle_endpoint_requests_total');
    expect(text).to.match(/path="\/",status="405"\} [1-9]/);
    expect(text).to.match(/path="other",status="404"\} [1-9]/);
  });

  it('serves the roots as PEM, and openssl verifies an SVID of this CA against them', async () => {
    const r = await get('/bundle.pem');
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.equal('application/x-pem-file');
    const roots = X509Bundle.parsePem(td, r.body.toString());
    expect(roots.authorities().map((d) => d.toString('hex'))).to.deep.equal(server.ctx.authority.x509Authorities().map((d) => d.toString('hex')));
    const key = newWorkloadKey();
    const svid = await server.ctx.authority.mintX509Svid({ spiffeId: `spiffe://${TD}/agent/summarizer`, publicKey: key.spki, ttl: 600 });
    writeFileSync(join(dir, 'roots.pem'), r.body);
    writeFileSync(join(dir, 'svid.pem'), svid.chain.map((d) => encodePem('CERTIFICATE', d)).join(''));
    expect(openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(dir, 'roots.pem'), '-untrusted', join(dir, 'svid.pem'), join(dir, 'svid.pem')])).to.contain(': OK');
  });

  it('serves the CRLs as PEM and DER; openssl reads them; a revoked serial appears and the ETag moves', async () => {
    const active = server.ctx.authority.signingCa();
    const before = await get('/crl.der');
    expect(before.status).to.equal(200);
    expect(before.headers['content-type']).to.equal('application/pkix-crl');
    expect(before.headers['cache-control']).to.equal('no-cache');
    const key = newWorkloadKey();
    const svid = await server.ctx.authority.mintX509Svid({ spiffeId: `spiffe://${TD}/agent/revoked`, publicKey: key.spki, ttl: 600 });
    const now = Math.floor(clock.nowMs() / 1000);
    await server.ctx.datastore.addRevoked([{ serial: svid.serial, issuerSki: svid.issuerSki, revokedAt: now, notAfter: Math.floor(svid.notAfter.getTime() / 1000), reason: 'test' }]);
    const after = await get('/crl.der');
    expect(after.headers.etag).to.not.equal(before.headers.etag);
    writeFileSync(join(dir, 'ca.pem'), encodePem('CERTIFICATE', active.certificate));
    const crl = spawnSync('openssl', ['crl', '-inform', 'DER', '-noout', '-text', '-CAfile', join(dir, 'ca.pem')], { input: after.body, encoding: 'utf8', timeout: 20_000 });
    expect(crl.stderr, 'signed by the active signing CA').to.contain('verify OK');
    expect(crl.stdout.replace(/\s/g, '').toLowerCase()).to.contain(`serialnumber:${svid.serial.replace(/^(00)+/, '')}`);
    const bySki = await get(`/crl/${active.ski}.der`);
    expect(bySki.body.equals(after.body)).to.equal(true);
    expect((await get(`/crl/${active.ski.toUpperCase()}.der`)).status).to.equal(200);
    expect((await get(`/crl/${randomBytes(20).toString('hex')}.der`)).status).to.equal(404);
    expect((await get('/crl.der', 'GET', { 'if-none-match': after.headers.etag! })).status).to.equal(304);
    const pem = await get('/crl');
    expect(pem.headers['content-type']).to.equal('application/x-pem-file');
    const blocks = pem.body.toString().match(/-----BEGIN X509 CRL-----/g) ?? [];
    expect(blocks.length).to.equal((await server.currentCrlsByIssuer()).length);
    expect(openssl(['crl', '-noout', '-issuer'], pem.body)).to.contain('issuer=');
  });

  it('publishes OIDC discovery for the requested host and the JWT-SVID keys as a plain JWKS', async () => {
    const r = await get('/.well-known/openid-configuration', 'GET', { host: 'Bundle.Example.test:8443' });
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body.toString())).to.deep.equal({
      issuer: 'https://bundle.example.test:8443',
      jwks_uri: 'https://bundle.example.test:8443/keys',
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
    });
    for (const [host, status] of [['evil host/', 400], ['a..b', 400], ['x.test:8443/path', 400], ['[::1]:8443', 200], ['127.0.0.1:9', 200]] as const) {
      expect((await get('/.well-known/openid-configuration', 'GET', { host })).status, host).to.equal(status);
    }
    const keys = JSON.parse((await get('/keys')).body.toString()) as { keys: Array<Record<string, string>> };
    expect(Object.keys(keys)).to.deep.equal(['keys']);
    expect(keys.keys.map((k) => k.kid)).to.deep.equal(server.ctx.authority.jwtAuthorities().map((a) => a.kid));
    for (const k of keys.keys) {
      expect(Object.keys(k).sort()).to.deep.equal(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
      expect(k).to.include({ kty: 'EC', crv: 'P-256', use: 'sig', alg: 'ES256' });
    }
  });

  it('speaks TLS 1.2 (intermediate suites only) and 1.3, refuses TLS 1.1 and CBC suites, and asks for no client certificate', async () => {
    const handshake = (opts: Record<string, unknown>) =>
      new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
        s.once('secureConnect', () => {
          const out = { protocol: s.getProtocol(), cipher: s.getCipher().standardName };
          s.destroy();
          resolve(out);
        });
        s.once('error', reject);
        s.setTimeout(10_000, () => s.destroy(new Error('handshake timed out')));
      });
    expect((await handshake({})).protocol).to.equal('TLSv1.3');
    const t12 = await handshake({ maxVersion: 'TLSv1.2' });
    expect(t12.protocol).to.equal('TLSv1.2');
    expect(t12.cipher).to.match(/^TLS_ECDHE_ECDSA_WITH_(AES_\d+_GCM|CHACHA20_POLY1305)/);
    const refused = (opts: Record<string, unknown>) => handshake(opts).then(() => 'accepted', (e: NodeJS.ErrnoException) => e.code ?? e.message);
    expect(await refused({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).to.match(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
    expect(await refused({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA' })).to.match(/HANDSHAKE_FAILURE|NO_SHARED_CIPHER/);
    for (const version of ['-tls1_2', '-tls1_3']) {
      // Async: the server answers from this process, so openssl must not block the event loop.
      const trace = await opensslAsync(['s_client', '-connect', `127.0.0.1:${port}`, version, '-msg'], 'Q\n');
      expect(trace, version).to.match(/ServerHello/);
      expect(trace, `${version}: no CertificateRequest`).to.not.match(/CertificateRequest/);
    }
  });

  it('swaps the server SVID without dropping an open keep-alive connection', async () => {
    const agent = await newAgent();
    const first = await viaAgent(agent, { port, path: '/' });
    const oldLeaf = agent.leafFingerprints[0]!;
    expect(oldLeaf).to.equal(fingerprintOfPem(server.serverSvid.current().certPem));
    clock.advance(31 * MIN); // past half of the server SVID's 1 h life
    expect(await server.serverSvid.refresh()).to.equal(true);
    const second = await viaAgent(agent, { port, path: '/' });
    expect(second.status).to.equal(200);
    expect(agent.connections, 'the same connection carried both requests').to.equal(1);
    expect(second.socket).to.equal(first.socket);
    const fresh = await newAgent();
    await viaAgent(fresh, { port, path: '/' });
    expect(fresh.leafFingerprints[0]).to.equal(fingerprintOfPem(server.serverSvid.current().certPem));
    expect(fresh.leafFingerprints[0]).to.not.equal(oldLeaf);
  });

  it('serves a higher spiffe_sequence and a new ETag after the CA prepares the next JWT key', async () => {
    const before = await get('/');
    const seq0 = SpiffeBundle.parse(td, before.body).sequenceNumber!;
    // Ticks with nothing to do (the second one takes the fast path: no slot changed) publish nothing.
    await server.rotateAndPublish();
    await server.rotateAndPublish();
    expect((await storeBundle()).sequenceNumber).to.equal(seq0);
    clock.advance(13 * 60 * MIN); // past half of ca_ttl 24 h: the next JWT key is prepared and published
    await server.rotateAndPublish();
    const after = await get('/');
    const served = SpiffeBundle.parse(td, after.body);
    expect(served.sequenceNumber).to.be.greaterThan(seq0);
    expect(after.headers.etag).to.not.equal(before.headers.etag);
    expect(served.jwtAuthorities.size).to.equal(2);
    expect(served.equals(await storeBundle())).to.equal(true);
    const keys = JSON.parse((await get('/keys')).body.toString()) as { keys: unknown[] };
    expect(keys.keys).to.have.length(2);
    expect(new X509Certificate(encodePem('CERTIFICATE', served.x509Authorities[0]!)).ca).to.equal(true);
  });
});
