/**
 * CRLs from the authority: read by @peculiar/x509, applied by writ's verifier and by
 * `openssl verify -crl_check`, one per signing CA, with a growing cRLNumber.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { X509Bundle, encodePem } from '../../src/bundle/index.js';
import type { RevokedSerial } from '../../src/datastore/index.js';
import { prepareAt } from '../../src/ca/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { verifyX509Svid } from '../../src/svid/index.js';
import { codeOf } from '../svid/pki.js';
import { type CaFixture, HOUR, OPENSSL_MISSING, TD, caFixture, hasOpenssl, openssl, pem, skipBecause, workloadKey, writeFiles } from './helpers.js';

const ID = `spiffe://${TD}/agent/summarizer`;

describe('ca/crl', function () {
  this.timeout(60_000);
  let f: CaFixture;
  beforeEach(async () => {
    f = await caFixture();
  });
  afterEach(async () => f?.cleanup());

  const mint = () => f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: HOUR });
  const revoke = (s: { serial: string; issuerSki: string; notAfter: Date }): RevokedSerial => ({
    serial: s.serial,
    issuerSki: s.issuerSki,
    revokedAt: Math.floor(f.clock.nowMs() / 1000),
    notAfter: Math.floor(s.notAfter.getTime() / 1000),
    reason: 'task ended',
  });

  it('lists the revoked serials of the signing CA, signed by it, with AKI, cRLNumber and nextUpdate', async () => {
    const a = await mint();
    const b = await mint();
    const [crl, ...rest] = await f.authority.crls([revoke(a)], 600);
    // After the signing CA's CRL comes the root's, empty, for validators that check the whole chain.
    const root = new x509.X509Certificate(f.authority.x509Authorities()[0]!);
    expect(rest.map((c) => c.issuerSki)).to.deep.equal([root.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId]);
    const rootCrl = new x509.X509Crl(rest[0]!.der);
    expect(rootCrl.issuer).to.equal(root.subject);
    expect(rootCrl.entries).to.have.length(0);
    expect(await rootCrl.verify({ publicKey: root.publicKey })).to.equal(true);
    const parsed = new x509.X509Crl(crl!.der);
    const ca = new x509.X509Certificate(f.authority.signingCa().certificate);
    expect(parsed.issuer).to.equal(ca.subject);
    expect(parsed.entries.map((e) => e.serialNumber.toLowerCase().replace(/^00/, ''))).to.deep.equal([a.serial.replace(/^00/, '')]);
    expect(parsed.entries.map((e) => e.serialNumber)).to.not.include(b.serial);
    expect(await parsed.verify({ publicKey: ca.publicKey })).to.equal(true);
    expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).to.equal(f.authority.signingCa().ski);
    expect(parsed.getExtension('2.5.29.20')).to.not.equal(null);
    expect(parsed.nextUpdate!.getTime() - parsed.thisUpdate.getTime()).to.equal(600_000);
  });

  it('makes writ\'s verifier refuse the revoked SVID and accept the other', async () => {
    const a = await mint();
    const b = await mint();
    const crls = (await f.authority.crls([revoke(a)])).map((c) => c.der);
    const bundle = new X509Bundle(parseTrustDomain(TD), f.authority.x509Authorities());
    const now = f.clock.now();
    expect(codeOf(() => verifyX509Svid(a.chain, bundle, { now, crls }))).to.equal('ERR_SVID_X509_REVOKED');
    expect(verifyX509Svid(b.chain, bundle, { now, crls }).id.toString()).to.equal(ID);
  });

  it('grows the cRLNumber on every issue, and leaves out expired and foreign entries', async () => {
    const a = await mint();
    const n1 = new x509.X509Crl((await f.authority.crls([]))[0]!.der).getExtension('2.5.29.20')!.value;
    const n2 = new x509.X509Crl((await f.authority.crls([]))[0]!.der).getExtension('2.5.29.20')!.value;
    expect(Buffer.from(n2).compare(Buffer.from(n1))).to.equal(1);
    const expired = { ...revoke(a), notAfter: Math.floor(f.clock.nowMs() / 1000) };
    const foreign = { ...revoke(a), serial: '0123', issuerSki: 'ff'.repeat(20) };
    expect(new x509.X509Crl((await f.authority.crls([expired, foreign]))[0]!.der).entries).to.have.length(0);
  });

  it('issues one CRL per unexpired signing CA, each with only its own serials', async () => {
    const a = await mint();
    const sign0 = f.authority.listSlots().find((s) => s.kind === 'x509-signing')!;
    f.clock.set(prepareAt(sign0) * 1000);
    await f.authority.rotate();
    f.clock.set((sign0.notBefore + Math.floor(((sign0.notAfter - sign0.notBefore) * 5) / 6)) * 1000);
    await f.authority.rotate();
    const b = await mint();
    expect(b.issuerSki).to.not.equal(a.issuerSki);
    const signing = new Set(f.authority.signingCas().map((c) => c.ski));
    const crls = (await f.authority.crls([{ ...revoke(a), notAfter: sign0.notAfter }, revoke(b)])).filter((c) => signing.has(c.issuerSki));
    expect(crls.map((c) => c.issuerSki).sort()).to.deep.equal([a.issuerSki, b.issuerSki].sort());
    for (const c of crls) expect(new x509.X509Crl(c.der).entries).to.have.length(1);
  });

  describe('openssl verify -crl_check', () => {
    before(function () {
      if (!hasOpenssl()) skipBecause(this, OPENSSL_MISSING);
    });

    it('refuses the revoked SVID and accepts the other', async () => {
      const a = await mint();
      const b = await mint();
      const [crl] = await f.authority.crls([revoke(a)]);
      const files = writeFiles(f.dir, {
        'bundle.pem': f.authority.x509Authorities().map(pem).join(''),
        'signing.pem': pem(f.authority.signingCa().certificate),
        'a.pem': pem(a.chain[0]!),
        'b.pem': pem(b.chain[0]!),
        'crl.pem': encodePem('X509 CRL', crl!.der),
      });
      // openssl checks against the real clock: the fixture's clock is in the past, so give -attime.
      const at = String(Math.floor(f.clock.nowMs() / 1000));
      const base = ['verify', '-attime', at, '-x509_strict', '-crl_check', '-CAfile', files['bundle.pem']!, '-untrusted', files['signing.pem']!, '-CRLfile', files['crl.pem']!];
      const revoked = openssl([...base, files['a.pem']!], f.dir);
      expect(revoked.status, revoked.out).to.not.equal(0);
      expect(revoked.out).to.match(/certificate revoked/);
      const ok = openssl([...base, files['b.pem']!], f.dir);
      expect(ok.status, ok.out).to.equal(0);
      expect(ok.out).to.match(/b\.pem: OK/);
    });

    it('-crl_check_all (every CA in the path, as nginx ssl_crl and node:tls crl do) passes with the root\'s CRL, and fails without it', async () => {
      const a = await mint();
      const b = await mint();
      const crls = await f.authority.crls([revoke(a)]);
      const files = writeFiles(f.dir, {
        'bundle.pem': f.authority.x509Authorities().map(pem).join(''),
        'signing.pem': pem(f.authority.signingCa().certificate),
        'a.pem': pem(a.chain[0]!),
        'b.pem': pem(b.chain[0]!),
        'crls.pem': crls.map((c) => encodePem('X509 CRL', c.der)).join(''),
        'leafcrl.pem': encodePem('X509 CRL', crls[0]!.der),
      });
      const at = String(Math.floor(f.clock.nowMs() / 1000));
      const base = (crl: string) => ['verify', '-attime', at, '-x509_strict', '-crl_check_all', '-CAfile', files['bundle.pem']!, '-untrusted', files['signing.pem']!, '-CRLfile', files[crl]!];
      const ok = openssl([...base('crls.pem'), files['b.pem']!], f.dir);
      expect(ok.status, ok.out).to.equal(0);
      const revoked = openssl([...base('crls.pem'), files['a.pem']!], f.dir);
      expect(revoked.out).to.match(/certificate revoked/);
      const noRootCrl = openssl([...base('leafcrl.pem'), files['b.pem']!], f.dir);
      expect(noRootCrl.status).to.not.equal(0);
      expect(noRootCrl.out).to.match(/unable to get certificate CRL/);
    });
  });
});
