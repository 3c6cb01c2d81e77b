/**
 * The authority on an injected clock: two-slot rotation of roots, signing CAs and JWT keys,
 * expiry capping, restarts with disk and memory keys, CSRs and JWT-SVIDs. No sleeping.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { JwtBundle, X509Bundle, jwkFromPublicKey } from '../../src/bundle/index.js';
import { DiskKeyManager, MemoryKeyManager, activateAt, prepareAt } from '../../src/ca/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { parseAndValidateJwtSvid, verifyX509Svid } from '../../src/svid/index.js';
import { type CaFixture, DAY, HOUR, TD, caFixture, workloadKey } from './helpers.js';

const ID = `spiffe://${TD}/agent/summarizer`;
const td = parseTrustDomain(TD);

const rejects = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: { code?: string }) => e.code ?? 'NOT_A_WRIT_ERROR',
  );

function slot(f: CaFixture, kind: string, status: string) {
  return f.authority.listSlots().find((s) => s.kind === kind && s.status === status);
}

describe('ca/authority rotation (injected clock)', function () {
  this.timeout(120_000);
  let f: CaFixture;
  beforeEach(async () => {
    f = await caFixture();
  });
  afterEach(async () => f?.cleanup());

  it('starts with an active root, signing CA and JWT key, persisted in the datastore', async () => {
    const slots = await f.store.listCaSlots();
    expect(slots.map((s) => `${s.kind}/${s.slot}/${s.status}`).sort()).to.deep.equal(['jwt/A/active', 'x509-root/A/active', 'x509-signing/A/active']);
    expect(f.authority.x509Authorities()).to.have.length(1);
    expect(f.authority.jwtAuthorities()).to.have.length(1);
    expect(f.authority.jwtAuthorities()[0]!.kid).to.match(/^[A-Za-z0-9]{32}$/);
    expect(await f.authority.rotate()).to.deep.equal([]);
  });

  it('prepares at half life (JWT key published at once), activates at five sixths, drops the old at expiry', async () => {
    const sign0 = slot(f, 'x509-signing', 'active')!;
    const jwt0 = slot(f, 'jwt', 'active')!;
    f.clock.set((prepareAt(sign0) - 1) * 1000);
    expect(await f.authority.rotate()).to.deep.equal([]);
    f.clock.set(prepareAt(sign0) * 1000);
    const prepared = await f.authority.rotate();
    expect(prepared.map((e) => `${e.event} ${e.kind}/${e.slot}`).sort()).to.deep.equal(['prepared jwt/B', 'prepared x509-signing/B']);
    expect(f.authority.jwtAuthorities().map((a) => a.kid)).to.deep.equal([jwt0.authorityId, slot(f, 'jwt', 'prepared')!.authorityId]);
    expect(f.authority.signingCa().ski).to.equal(sign0.authorityId);
    const jwtBefore = await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['billing'], ttl: 300 });
    expect(jwtBefore.kid).to.equal(jwt0.authorityId);

    f.clock.set((activateAt(sign0) - 1) * 1000);
    expect(await f.authority.rotate()).to.deep.equal([]);
    f.clock.set(activateAt(sign0) * 1000);
    const activated = await f.authority.rotate();
    expect(activated.map((e) => `${e.event} ${e.kind}/${e.slot}`).sort()).to.deep.equal(['activated jwt/B', 'activated x509-signing/B']);
    expect(f.authority.signingCa().ski).to.not.equal(sign0.authorityId);
    expect(slot(f, 'x509-signing', 'old')!.authorityId).to.equal(sign0.authorityId);
    const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: HOUR });
    expect(svid.issuerSki).to.equal(f.authority.signingCa().ski);
    expect(f.authority.jwtAuthorities()).to.have.length(2); // the old JWT key stays published until it expires

    f.clock.set(jwt0.notAfter * 1000);
    const dropped = await f.authority.rotate();
    expect(dropped.filter((e) => e.event === 'dropped').map((e) => `${e.kind}/${e.slot}`).sort()).to.deep.equal(['jwt/A', 'x509-signing/A']);
    expect(f.authority.jwtAuthorities().map((a) => a.kid)).to.not.include(jwt0.authorityId);
    // The old key expires just as its successor reaches half life, so slot A is at once reused for the next key.
    const jwtSlots = await f.store.listCaSlots('jwt');
    expect(jwtSlots.map((s) => `${s.slot}/${s.status}`).sort()).to.deep.equal(['A/prepared', 'B/active']);
    expect(jwtSlots.find((s) => s.slot === 'A')!.authorityId).to.not.equal(jwt0.authorityId);
  });

  it('publishes a prepared root at once, issues the next signing CA under it, and keeps the old root until it expires', async () => {
    const root0 = slot(f, 'x509-root', 'active')!;
    f.clock.set(prepareAt(root0) * 1000);
    await f.authority.rotate();
    const root1 = slot(f, 'x509-root', 'prepared')!;
    expect(root1).to.not.equal(undefined);
    expect(f.authority.x509Authorities().map((d) => d.equals(root0.material) || d.equals(root1.material))).to.deep.equal([true, true]);
    // The next signing CA issued after the root was prepared chains to the new root.
    for (let i = 0; i < 3 && !slot(f, 'x509-signing', 'prepared'); i++) {
      f.clock.advance(12 * HOUR * 1000);
      await f.authority.rotate();
    }
    const nextSigning = new x509.X509Certificate(slot(f, 'x509-signing', 'prepared')?.material ?? f.authority.signingCa().certificate);
    expect(nextSigning.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).to.equal(root1.authorityId);
    f.clock.set(activateAt(root0) * 1000);
    await f.authority.rotate();
    expect(slot(f, 'x509-root', 'active')!.authorityId).to.equal(root1.authorityId);
    expect(f.authority.x509Authorities()).to.have.length(2);
    f.clock.set((root0.notAfter - 1) * 1000);
    await f.authority.rotate();
    expect(f.authority.x509Authorities().some((d) => d.equals(root0.material))).to.equal(true);
    f.clock.set(root0.notAfter * 1000);
    await f.authority.rotate();
    const roots = f.authority.x509Authorities();
    expect(roots.some((d) => d.equals(root0.material))).to.equal(false);
    expect(roots[0]!.equals(root1.material)).to.equal(true);
  });

  it('over 70 days of hourly ticks, every SVID verifies against the bundle of every hour of its life', async () => {
    type Live = { chain: Buffer[]; notAfter: number };
    let live: Live[] = [];
    const seenRoots = new Set<string>();
    const seenSigning = new Set<string>();
    for (let h = 0; h < 70 * 24; h++) {
      f.clock.set(Date.UTC(2026, 5, 1, 12) + h * HOUR * 1000);
      await f.authority.rotate();
      const now = f.clock.now();
      const bundle = new X509Bundle(td, f.authority.x509Authorities());
      live = live.filter((s) => s.notAfter > now.getTime());
      for (const s of live) verifyX509Svid(s.chain, bundle, { now });
      const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: 4 * HOUR });
      verifyX509Svid(svid.chain, bundle, { now });
      live.push({ chain: svid.chain, notAfter: svid.notAfter.getTime() });
      for (const r of f.authority.x509Authorities()) seenRoots.add(r.toString('hex'));
      seenSigning.add(svid.issuerSki);
    }
    expect(seenRoots.size).to.be.at.least(3);
    expect(seenSigning.size).to.be.at.least(69);
    expect(f.authority.x509Authorities().length).to.be.at.most(2);
  });

  it('serializes concurrent rotations: no slot is created twice', async () => {
    f.clock.set(prepareAt(slot(f, 'x509-signing', 'active')!) * 1000);
    const [a, b] = await Promise.all([f.authority.rotate(), f.authority.rotate()]);
    expect(a.length + b.length).to.equal(2);
    expect((await f.store.listCaSlots())).to.have.length(5);
  });
});

describe('ca/authority expiry capping', function () {
  this.timeout(60_000);

  it('never lets an SVID outlive its signing CA, nor a signing CA its root', async () => {
    const f = await caFixture({ config: { caTtl: DAY, rootTtl: 30 * HOUR } });
    try {
      const ca = f.authority.signingCa();
      const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: 2 * DAY });
      expect(svid.notAfter.getTime()).to.equal(ca.notAfter.getTime());
      f.clock.set(ca.notAfter.getTime() - 60_000);
      const late = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: HOUR });
      expect(late.notAfter.getTime()).to.equal(ca.notAfter.getTime());
      expect(late.notAfter.getTime() - f.clock.nowMs()).to.equal(60_000);
      // The signing CA prepared at half life is issued by root A (root B is prepared only at 15 h) and capped at root A's expiry.
      f.clock.set(prepareAt(f.authority.listSlots().find((s) => s.kind === 'x509-signing')!) * 1000);
      await f.authority.rotate();
      const rootA = f.authority.listSlots().find((s) => s.kind === 'x509-root' && s.slot === 'A')!;
      for (const s of f.authority.listSlots().filter((x) => x.kind === 'x509-signing')) {
        const issuer = new x509.X509Certificate(s.material).getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId;
        const root = f.authority.listSlots().find((x) => x.kind === 'x509-root' && x.authorityId === issuer)!;
        expect(s.notAfter).to.be.at.most(root.notAfter);
      }
      expect(f.authority.listSlots().some((s) => s.kind === 'x509-signing' && s.notAfter === rootA.notAfter)).to.equal(true);
    } finally {
      await f.cleanup();
    }
  });

  it('caps a JWT-SVID exp at the JWT key expiry', async () => {
    const f = await caFixture();
    try {
      const key = f.authority.jwtAuthorities()[0]!;
      const jwt = await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['a'], ttl: 3 * DAY });
      expect(jwt.expiresAt.getTime()).to.equal(key.notAfter.getTime());
    } finally {
      await f.cleanup();
    }
  });
});

describe('ca/authority restarts', function () {
  this.timeout(60_000);

  it('resumes the same authorities from disk keys and the datastore', async () => {
    const f = await caFixture({ keyManager: (dir) => new DiskKeyManager({ directory: join(dir, 'keys') }) });
    try {
      const before = f.authority.signingCa().ski;
      const again = await f.reopen(new DiskKeyManager({ directory: join(f.dir, 'keys') }));
      expect(await again.rotate()).to.deep.equal([]);
      expect(again.signingCa().ski).to.equal(before);
      const svid = await again.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: HOUR });
      verifyX509Svid(svid.chain, new X509Bundle(td, f.authority.x509Authorities()), { now: f.clock.now() });
    } finally {
      await f.cleanup();
    }
  });

  it('with memory keys, retires the authorities whose keys are gone and keeps their roots published until expiry', async () => {
    const f = await caFixture();
    try {
      const oldSvid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: HOUR });
      const again = await f.reopen(new MemoryKeyManager());
      const events = await again.rotate();
      expect(events.filter((e) => e.event === 'retired').map((e) => e.kind).sort()).to.deep.equal(['jwt', 'x509-root', 'x509-signing']);
      expect(events.filter((e) => e.event === 'created').map((e) => e.kind).sort()).to.deep.equal(['jwt', 'x509-root', 'x509-signing']);
      expect(again.signingCa().ski).to.not.equal(oldSvid.issuerSki);
      const bundle = new X509Bundle(td, again.x509Authorities());
      expect(bundle.authorities()).to.have.length(2);
      verifyX509Svid(oldSvid.chain, bundle, { now: f.clock.now() });
    } finally {
      await f.cleanup();
    }
  });

  it('refuses to sign before the first rotation', async () => {
    const f = await caFixture();
    try {
      await f.store.deleteCaSlot('x509-signing', 'A');
      const fresh = await f.reopen();
      expect(await rejects(fresh.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: 60 }))).to.equal('ERR_CA_NOT_READY');
    } finally {
      await f.cleanup();
    }
  });
});

describe('ca/authority CSRs and JWT-SVIDs', () => {
  let f: CaFixture;
  before(async () => {
    f = await caFixture();
  });
  after(async () => f?.cleanup());

  async function csr(opts: { name?: string; uri?: string; alg?: 'P-256' | 'Ed25519' } = {}): Promise<Buffer> {
    const alg = opts.alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg as never, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const req = await x509.Pkcs10CertificateRequestGenerator.create(
      {
        keys: keys as never,
        signingAlgorithm: alg as never,
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.uri ? { extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.uri }])] } : {}),
      },
      webcrypto as never,
    );
    return Buffer.from(req.rawData);
  }

  it('takes only the public key from a CSR: subject and SANs of the request are ignored', async () => {
    const key = await f.authority.verifyCsr(await csr({ name: 'CN=root, O=evil', uri: 'spiffe://evil.org/admin' }));
    const svid = await f.authority.mintX509Svid({ spiffeId: ID, publicKey: key, ttl: 60 });
    const leaf = new x509.X509Certificate(svid.chain[0]!);
    expect(leaf.subject).to.equal('O=writ');
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).to.deep.equal([{ type: 'url', value: ID }]);
  });

  it('refuses a CSR whose signature does not verify, garbage, an oversized one and an unsupported key', async () => {
    const good = await csr();
    const tampered = Buffer.from(good);
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 0x01;
    expect(await rejects(f.authority.verifyCsr(tampered))).to.equal('ERR_CA_CSR');
    expect(await rejects(f.authority.verifyCsr(Buffer.from('not a csr')))).to.equal('ERR_CA_CSR');
    expect(await rejects(f.authority.verifyCsr(Buffer.alloc(0)))).to.equal('ERR_CA_CSR');
    expect(await rejects(f.authority.verifyCsr(Buffer.alloc(17 * 1024, 0x30)))).to.equal('ERR_CA_CSR');
    expect(await rejects(f.authority.verifyCsr(await csr({ alg: 'Ed25519' })))).to.equal('ERR_CA_KEY_TYPE');
  });

  it('mints ES256 JWT-SVIDs with kid and typ JWT that writ and jose both accept', async () => {
    const jwt = await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['billing'], ttl: 300 });
    const [h, p] = jwt.token.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).to.deep.equal({ alg: 'ES256', kid: jwt.kid, typ: 'JWT' });
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).to.deep.include({ sub: ID, aud: ['billing'] });
    expect(claims.exp).to.equal((claims.iat as number) + 300);
    const bundle = new JwtBundle(td, f.authority.jwtAuthorities().map((a) => [a.kid, jwkFromPublicKey(a.publicKeyDer)] as const));
    const svid = parseAndValidateJwtSvid(jwt.token, bundle, ['billing'], { now: f.clock.now() });
    expect(svid.id.toString()).to.equal(ID);
    const jwks = createLocalJWKSet({ keys: f.authority.jwtAuthorities().map((a) => ({ ...jwkFromPublicKey(a.publicKeyDer), kid: a.kid, alg: 'ES256' })) as never });
    const verified = await jwtVerify(jwt.token, jwks, { audience: 'billing', currentDate: f.clock.now(), algorithms: ['ES256'] });
    expect(verified.payload.sub).to.equal(ID);
  });

  it('refuses JWT requests without audience, with an empty audience, or with a reserved claim', async () => {
    expect(await rejects(f.authority.mintJwtSvid({ spiffeId: ID, audience: [], ttl: 60 }))).to.equal('ERR_INPUT_INVALID');
    expect(await rejects(f.authority.mintJwtSvid({ spiffeId: ID, audience: [''], ttl: 60 }))).to.equal('ERR_INPUT_INVALID');
    expect(await rejects(f.authority.mintJwtSvid({ spiffeId: ID, audience: ['a'], ttl: 60, claims: { sub: 'x' } }))).to.equal('ERR_INPUT_INVALID');
    expect(await rejects(f.authority.mintJwtSvid({ spiffeId: 'spiffe://other.org/x', audience: ['a'], ttl: 60 }))).to.equal('ERR_SPIFFEID_NOT_MEMBER');
  });
});
