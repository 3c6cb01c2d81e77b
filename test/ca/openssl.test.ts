/**
 * openssl as an independent peer for minted SVIDs: strict RFC 5280 verification for both TLS
 * purposes, and real TLS 1.2 and 1.3 mutual-TLS handshakes (s_server -Verify / s_client -cert) on
 * loopback, with a foreign CA as the negative control. node:tls does the same handshake as well.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { connect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { X509Bundle } from '../../src/bundle/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { verifyX509Svid } from '../../src/svid/index.js';
import { type MtlsFiles as Files, opensslHandshake as handshake } from '../helpers/openssl.js';
import { type CaFixture, HOUR, OPENSSL_MISSING, TD, caFixture, hasOpenssl, openssl, pem, skipBecause, workloadKey, writeFiles } from './helpers.js';

const SERVER_ID = `spiffe://${TD}/svc/billing`;
const CLIENT_ID = `spiffe://${TD}/agent/summarizer`;

describe('ca: minted SVIDs checked by openssl and node:tls', function () {
  this.timeout(60_000);
  let f: CaFixture;
  let other: CaFixture;
  let files: Files;
  before(async function () {
    if (!hasOpenssl()) skipBecause(this, OPENSSL_MISSING);
    // openssl and node:tls use the real clock, so these authorities do too.
    f = await caFixture({ start: Date.now() });
    other = await caFixture({ start: Date.now() });
    const mint = async (fx: CaFixture, id: string) => {
      const k = workloadKey();
      const s = await fx.authority.mintX509Svid({ spiffeId: id, publicKey: k.publicKey, ttl: HOUR, dnsNames: id === SERVER_ID ? ['localhost'] : [] });
      return { chain: s.chain.map(pem).join(''), key: k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    };
    const server = await mint(f, SERVER_ID);
    const client = await mint(f, CLIENT_ID);
    const foreign = await mint(other, CLIENT_ID);
    const w = writeFiles(f.dir, {
      'bundle.pem': f.authority.x509Authorities().map(pem).join(''),
      'server.pem': server.chain,
      'server.key': server.key,
      'client.pem': client.chain,
      'client.key': client.key,
      'client-leaf.pem': client.chain.slice(0, client.chain.indexOf('-----END CERTIFICATE-----') + 26),
      'signing.pem': pem(f.authority.signingCa().certificate),
      'foreign.pem': foreign.chain,
      'foreign.key': foreign.key,
    });
    files = { bundle: w['bundle.pem']!, serverChain: w['server.pem']!, serverKey: w['server.key']!, clientChain: w['client.pem']!, clientKey: w['client.key']!, foreignChain: w['foreign.pem']!, foreignKey: w['foreign.key']! };
  });
  after(async () => {
    await f?.cleanup();
    await other?.cleanup();
  });

  for (const purpose of ['sslclient', 'sslserver']) {
    it(`passes openssl verify -x509_strict -purpose ${purpose}`, () => {
      const r = openssl(['verify', '-x509_strict', '-purpose', purpose, '-CAfile', files.bundle, '-untrusted', `${f.dir}/signing.pem`, `${f.dir}/client-leaf.pem`], f.dir);
      expect(r.status, r.out).to.equal(0);
      expect(r.out).to.contain('client-leaf.pem: OK');
    });
  }

  it('does not verify without its intermediate (the bundle holds only roots)', () => {
    const r = openssl(['verify', '-x509_strict', '-CAfile', files.bundle, `${f.dir}/client-leaf.pem`], f.dir);
    expect(r.status).to.not.equal(0);
  });

  for (const version of ['-tls1_3', '-tls1_2'] as const) {
    it(`completes an openssl mTLS handshake over ${version.slice(1)} with both SVIDs verified`, async () => {
      const r = await handshake(f.dir, files, version, { chain: files.clientChain, key: files.clientKey });
      expect(r.client, r.client + r.server).to.match(/Verification: OK/);
      expect(r.client).to.match(new RegExp(`Protocol version: TLSv1\\.${version === '-tls1_3' ? 3 : 2}`));
      expect(r.server, r.server).to.not.match(/error|alert/i);
      expect(r.server).to.contain('ping');
    });
  }

  it('refuses, in openssl s_server, a client SVID from another trust domain\'s CA', async () => {
    const r = await handshake(f.dir, files, '-tls1_3', { chain: files.foreignChain, key: files.foreignKey });
    expect(r.server).to.not.contain('ping');
    expect(`${r.server}${r.client}`).to.match(/unknown ca|verify error|certificate verify failed|unable to get/i);
  });

  it('completes a node:tls mTLS handshake where each side checks the other\'s SPIFFE ID', async () => {
    const read = (p: string) => import('node:fs').then((fs) => fs.readFileSync(p, 'utf8'));
    const [ca, sc, sk, cc, ck] = await Promise.all([files.bundle, files.serverChain, files.serverKey, files.clientChain, files.clientKey].map(read));
    const bundle = new X509Bundle(parseTrustDomain(TD), f.authority.x509Authorities());
    const idOf = (s: TLSSocket) => verifyX509Svid([s.getPeerCertificate(true).raw, s.getPeerCertificate(true).issuerCertificate.raw], bundle).id.toString();
    const server = createTlsServer({ cert: sc, key: sk, ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => {
      s.end(idOf(s));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const port = (server.address() as { port: number }).port;
      const sock = connect({ host: '127.0.0.1', port, cert: cc, key: ck, ca, checkServerIdentity: () => undefined });
      await once(sock, 'secureConnect');
      const seenServer = idOf(sock);
      let body = '';
      sock.on('data', (d: Buffer) => (body += d.toString()));
      await once(sock, 'end');
      expect(seenServer).to.equal(SERVER_ID);
      expect(body).to.equal(CLIENT_ID);
    } finally {
      server.close();
    }
  });
});
