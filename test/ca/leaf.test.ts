/**
 * Leaves minted from the DER template, cross-checked against an independent parser
 * (@peculiar/x509), node:crypto and writ's own X509-SVID verifier.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { X509Bundle } from '../../src/bundle/index.js';
import { LeafKey, keyIdentifier } from '../../src/ca/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { verifyX509Svid } from '../../src/svid/index.js';
import { codeOf } from '../svid/pki.js';
import { type CaFixture, HOUR, TD, caFixture, workloadKey } from './helpers.js';

const ID = `spiffe://${TD}/agent/summarizer`;

describe('ca/leaf template', () => {
  let f: CaFixture;
  before(async () => {
    f = await caFixture();
  });
  after(async () => f?.cleanup());

  const bundle = () => new X509Bundle(parseTrustDomain(TD), f.authority.x509Authorities());

  it('mints the X509-SVID profile, as @peculiar/x509 reads it', async () => {
    const { publicKey } = workloadKey();
    const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey, ttl: HOUR, dnsNames: ['summarizer.example.org', 'alt.example.org'] });
    const leaf = new x509.X509Certificate(svid.chain[0]!);
    const ca = new x509.X509Certificate(svid.chain[1]!);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)).to.include({ ca: false, critical: true });
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).to.equal(true);
    expect(ku.usages & x509.KeyUsageFlags.digitalSignature).to.not.equal(0);
    expect(ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)).to.equal(0);
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages).to.have.members(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON();
    expect(san.filter((n) => n.type === 'url')).to.deep.equal([{ type: 'url', value: ID }]);
    expect(san.filter((n) => n.type === 'dns').map((n) => n.value)).to.deep.equal(['summarizer.example.org', 'alt.example.org']);
    expect(leaf.subject).to.contain('CN=summarizer.example.org');
    expect(leaf.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).to.equal(keyIdentifier(publicKey.export({ type: 'spki', format: 'der' })).toString('hex'));
    expect(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).to.equal(ca.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(leaf.issuer).to.equal(ca.subject);
    expect(await leaf.verify({ publicKey: ca.publicKey, signatureOnly: true })).to.equal(true);
    expect(Buffer.from(leaf.publicKey.rawData).equals(publicKey.export({ type: 'spki', format: 'der' }))).to.equal(true);
    // serial: positive, 128 random bits, as hex in the result
    expect(BigInt(`0x${leaf.serialNumber}`) > 0n).to.equal(true);
    expect(leaf.serialNumber.replace(/^00/, '').toLowerCase()).to.equal(svid.serial.replace(/^00/, ''));
  });

  it('is accepted by the X509-SVID verifier, and node:crypto checks the signature', async () => {
    const { publicKey } = workloadKey();
    const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey, ttl: HOUR });
    const v = verifyX509Svid(svid.chain, bundle(), { now: f.clock.now() });
    expect(v.id.toString()).to.equal(ID);
    const leaf = new X509Certificate(svid.chain[0]!);
    expect(leaf.verify(new X509Certificate(svid.chain[1]!).publicKey)).to.equal(true);
    expect(leaf.subject).to.equal('O=writ');
  });

  it('backdates notBefore ten seconds and sets notAfter = now + TTL', async () => {
    const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: 300 });
    const now = Math.floor(f.clock.nowMs() / 1000);
    expect(svid.notBefore.getTime() / 1000).to.equal(Math.max(now - 10, f.authority.signingCa().notBefore.getTime() / 1000));
    expect(svid.notAfter.getTime() / 1000).to.equal(now + 300);
    const leaf = new X509Certificate(svid.chain[0]!);
    expect(new Date(leaf.validTo).getTime()).to.equal(svid.notAfter.getTime());
  });

  it('gives every leaf a different serial', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 200; i++) serials.add((await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: 60 })).serial);
    expect(serials.size).to.equal(200);
  });

  for (const kind of ['P-384', 'RSA-2048'] as const) {
    it(`accepts a ${kind} workload key`, async () => {
      const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey(kind).publicKey, ttl: 60 });
      expect(verifyX509Svid(svid.chain, bundle(), { now: f.clock.now() }).id.toString()).to.equal(ID);
    });
  }

  const refused: Array<[string, () => Parameters<typeof LeafKey.from>[0]]> = [
    ['an Ed25519 key', () => generateKeyPairSync('ed25519').publicKey],
    ['an RSA-1024 key', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey],
    ['an EC secp256k1 key', () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey],
    ['bytes that are not SPKI', () => Buffer.from('not a key')],
  ];
  for (const [name, key] of refused) {
    it(`refuses ${name} with ERR_CA_KEY_TYPE`, () => {
      expect(codeOf(() => LeafKey.from(key()))).to.equal('ERR_CA_KEY_TYPE');
    });
  }

  it('takes the key from a private KeyObject without putting the private part anywhere', () => {
    const { privateKey, publicKey } = workloadKey();
    const k = LeafKey.from(privateKey);
    expect(k.spki.equals(publicKey.export({ type: 'spki', format: 'der' }))).to.equal(true);
    expect(k.isP256).to.equal(true);
  });

  it('refuses IDs outside the trust domain, without a path, and non-positive TTLs', async () => {
    const publicKey = workloadKey().publicKey;
    const code = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code);
    expect(await code(f.authority.mintX509Svid({ spiffeId: 'spiffe://other.org/x', publicKey, ttl: 60 }))).to.equal('ERR_SPIFFEID_NOT_MEMBER');
    expect(await code(f.authority.mintX509Svid({ spiffeId: `spiffe://${TD}`, publicKey, ttl: 60 }))).to.equal('ERR_SPIFFEID_PATH');
    expect(await code(f.authority.mintX509Svid({ spiffeId: 'spiffe://Example.org/x', publicKey, ttl: 60 }))).to.equal('ERR_SPIFFEID_TRUST_DOMAIN_CHARS');
    expect(await code(f.authority.mintX509Svid({ spiffeId: ID, publicKey, ttl: 0 }))).to.equal('ERR_CA_TTL');
    expect(await code(f.authority.mintX509Svid({ spiffeId: ID, publicKey, ttl: 1.5 }))).to.equal('ERR_CA_TTL');
  });
});

describe('ca/leaf template after 2049', () => {
  it('encodes validity as GeneralizedTime from 2050 (RFC 5280 §4.1.2.5) and stays verifiable', async () => {
    const f = await caFixture({ start: Date.UTC(2049, 11, 31, 23, 0, 0) });
    try {
      const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: 2 * HOUR });
      const leaf = new X509Certificate(svid.chain[0]!);
      expect(new Date(leaf.validTo).toISOString()).to.equal('2050-01-01T01:00:00.000Z');
      expect(svid.chain[0]!.includes(Buffer.from('20500101010000Z'))).to.equal(true);
      const b = new X509Bundle(parseTrustDomain(TD), f.authority.x509Authorities());
      expect(verifyX509Svid(svid.chain, b, { now: new Date(Date.UTC(2050, 0, 1, 0, 30)) }).id.toString()).to.equal(ID);
    } finally {
      await f.cleanup();
    }
  });
});
