/**
 * Forced CA rotation on an injected clock: prepare → activate → taint → revoke for the X.509
 * authority (root + its signing CAs) and the JWT key, every wrong order refused, the bundle after
 * each step, SVIDs of a revoked authority refused by verifyX509Svid and openssl, and the states
 * kept across a restart. No sleeping.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JwtBundle, X509Bundle, encodePem, jwkFromPublicKey } from '../../src/bundle/index.js';
import { type AuthorityView, type ForcedRotationEvent, activateAt, certificateKeyIds, chainIssuerIds } from '../../src/ca/index.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { parseAndValidateJwtSvid, verifyX509Svid } from '../../src/svid/index.js';
import { AgentCache } from '../../src/agent/cache.js';
import { dueEntries } from '../../src/agent/sync.js';
import { renderBundleDocument } from '../../src/server/bundle.js';
import { type CaFixture, HOUR, OPENSSL_MISSING, TD, caFixture, hasOpenssl, openssl, skipBecause, workloadKey, writeFiles } from './helpers.js';

const ID = `spiffe://${TD}/agent/summarizer`;
const td = parseTrustDomain(TD);

const codeOf = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: { code?: string }) => e.code ?? 'NOT_A_WRIT_ERROR',
  );

const errorOf = async (p: Promise<unknown>): Promise<{ code?: string; message: string }> =>
  p.then(
    () => ({ message: 'resolved' }),
    (e: { code?: string; message: string }) => e,
  );

function one(f: CaFixture, kind: 'x509' | 'jwt', status: AuthorityView['status']): AuthorityView {
  const v = f.authority.localAuthorities(kind).filter((a) => a.status === status);
  expect(v, `${kind} ${status}`).to.have.length(1);
  return v[0]!;
}

const bundleOf = (f: CaFixture) => new X509Bundle(td, f.authority.x509Authorities());
const skiOf = (der: Buffer) => certificateKeyIds(der).ski!;
const mint = (f: CaFixture) => f.authority.mintX509Svid({ spiffeId: ID, publicKey: workloadKey().publicKey, ttl: HOUR });

describe('ca/forced rotation (injected clock)', function () {
  this.timeout(120_000);
  let f: CaFixture;
  let events: ForcedRotationEvent[];
  beforeEach(async () => {
    f = await caFixture();
    events = [];
    f.authority.onAuthorityChange((ev) => {
      events.push(ev);
    });
  });
  afterEach(async () => f?.cleanup());

  it('runs prepare → activate → taint → revoke for the X.509 authority, with the bundle right after each step', async () => {
    const r1 = one(f, 'x509', 'active');
    expect(r1.signingCas!.map((s) => s.status)).to.deep.equal(['active']);
    const before = await mint(f);
    expect(chainIssuerIds(before.chain)).to.deep.equal([before.issuerSki, r1.authorityId]);

    f.clock.advance(60_000);
    const r2 = await f.authority.prepareAuthority('x509');
    expect(r2.status).to.equal('prepared');
    expect(r2.authorityId).to.match(/^[0-9a-f]{40}$/).and.not.equal(r1.authorityId);
    expect(r2.signingCas!.map((s) => s.status)).to.deep.equal(['prepared']);
    // Published at once: both roots are in the bundle, the old one still signs.
    expect(f.authority.x509Authorities().map(skiOf)).to.deep.equal([r1.authorityId, r2.authorityId]);
    expect((await mint(f)).issuerSki).to.equal(r1.signingCas![0]!.ski);

    f.clock.advance(60_000);
    const active = await f.authority.activateAuthority('x509', r2.authorityId);
    expect(active.status).to.equal('active');
    expect(one(f, 'x509', 'old').authorityId).to.equal(r1.authorityId);
    const after = await mint(f);
    expect(after.issuerSki).to.equal(r2.signingCas![0]!.ski);
    expect(chainIssuerIds(after.chain)).to.deep.equal([after.issuerSki, r2.authorityId]);
    const now = f.clock.now();
    verifyX509Svid(after.chain, bundleOf(f), { now });
    verifyX509Svid(before.chain, bundleOf(f), { now }); // the old authority is still published
    expect(f.authority.taintedX509Authorities()).to.deep.equal([]);

    f.clock.advance(60_000);
    const tainted = await f.authority.taintAuthority('x509', r1.authorityId);
    expect(tainted.tainted).to.equal(true);
    expect(new Set(f.authority.taintedX509Authorities())).to.deep.equal(new Set([r1.authorityId, before.issuerSki]));
    expect(f.authority.x509Authorities()).to.have.length(2);

    f.clock.advance(60_000);
    await f.authority.revokeAuthority('x509', r1.authorityId);
    expect(f.authority.x509Authorities().map(skiOf)).to.deep.equal([r2.authorityId]);
    expect(f.authority.localAuthorities('x509').map((a) => a.authorityId)).to.deep.equal([r2.authorityId]);
    expect(f.authority.signingCas().map((c) => c.ski)).to.deep.equal([after.issuerSki]);
    expect(f.authority.taintedX509Authorities()).to.deep.equal([]);
    const crls = (await f.authority.crls([])).map((c) => c.der);
    expect(() => verifyX509Svid(before.chain, bundleOf(f), { now: f.clock.now(), crls })).to.throw(/does not chain to an authority/);
    verifyX509Svid(after.chain, bundleOf(f), { now: f.clock.now(), crls });
    // The keys are gone from the key manager too.
    expect(await f.keyManager.getKey(`x509-root-${r1.slot}`)).to.equal(undefined);

    expect(events.map((e) => `${e.action} ${e.kind}`)).to.deep.equal(['prepare x509', 'activate x509', 'taint x509', 'revoke x509']);
    expect(events[3]!.changes.filter((c) => c.event === 'dropped').map((c) => c.kind).sort()).to.deep.equal(['x509-root', 'x509-signing']);
  });

  it('slotsKey changes with every step of the kinds asked for and at expiry, and only then', async () => {
    const a = f.authority;
    const x509 = () => a.slotsKey('x509-root', 'x509-signing');
    const jwt = () => a.slotsKey('jwt');
    const seen = new Set<string>();
    const fresh = (k: string) => {
      expect(seen.has(k), `key ${k} seen before`).to.equal(false);
      seen.add(k);
      return k;
    };
    let k = fresh(x509());
    expect(x509(), 'no change, same key').to.equal(k);
    const j = jwt();
    const r1 = one(f, 'x509', 'active').authorityId;
    const r2 = (await a.prepareAuthority('x509')).authorityId;
    k = fresh(x509());
    await a.activateAuthority('x509', r2);
    k = fresh(x509());
    await a.taintAuthority('x509', r1);
    k = fresh(x509());
    await a.revokeAuthority('x509', r1);
    k = fresh(x509());
    expect(jwt(), 'X.509 steps leave the JWT key alone').to.equal(j);
    await a.prepareAuthority('jwt');
    expect(jwt()).to.not.equal(j);
    expect(x509(), 'a JWT step leaves the X.509 key alone').to.equal(k);
    // Past every slot's notAfter, without a rotation tick: nothing is left in the key.
    f.clock.advance(400 * 24 * HOUR * 1000);
    expect(x509()).to.equal('');
  });

  it('keeps nothing of a revoked authority that openssl would accept', async function () {
    if (!hasOpenssl()) skipBecause(this, OPENSSL_MISSING);
    const old = await mint(f);
    const r1 = one(f, 'x509', 'active').authorityId;
    const r2 = (await f.authority.prepareAuthority('x509')).authorityId;
    await f.authority.activateAuthority('x509', r2);
    const fresh = await mint(f);
    await f.authority.taintAuthority('x509', r1);
    await f.authority.revokeAuthority('x509', r1);
    const dir = mkdtempSync(join(tmpdir(), 'writ-forced-'));
    try {
      const crls = await f.authority.crls([]);
      const p = writeFiles(dir, {
        'bundle.pem': f.authority.x509Authorities().map((d) => encodePem('CERTIFICATE', d)).join(''),
        'crl.pem': crls.map((c) => encodePem('X509 CRL', c.der)).join(''),
        'old-leaf.pem': encodePem('CERTIFICATE', old.chain[0]!),
        'old-inter.pem': encodePem('CERTIFICATE', old.chain[1]!),
        'new-leaf.pem': encodePem('CERTIFICATE', fresh.chain[0]!),
        'new-inter.pem': encodePem('CERTIFICATE', fresh.chain[1]!),
      });
      // openssl checks at the real time; the fixture's clock is elsewhere, so pass it as -attime.
      const at = String(Math.floor(f.clock.nowMs() / 1000));
      const verify = (who: 'old' | 'new') =>
        openssl(['verify', '-attime', at, '-x509_strict', '-crl_check_all', '-CAfile', p['bundle.pem']!, '-CRLfile', p['crl.pem']!, '-untrusted', p[`${who}-inter.pem`]!, p[`${who}-leaf.pem`]!], dir);
      const bad = verify('old');
      expect(bad.status, bad.out).to.not.equal(0);
      expect(bad.out).to.match(/unable to get (local )?issuer certificate/);
      const good = verify('new');
      expect(good.status, good.out).to.equal(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the same steps for the JWT key; a token of the revoked key no longer validates', async () => {
    const k1 = one(f, 'jwt', 'active');
    const oldToken = await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['billing'], ttl: 300 });
    const k2 = await f.authority.prepareAuthority('jwt');
    expect(k2.authorityId).to.match(/^[A-Za-z0-9]{32}$/);
    expect(f.authority.jwtAuthorities().map((a) => a.kid)).to.deep.equal([k1.authorityId, k2.authorityId]);
    expect((await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['billing'], ttl: 300 })).kid).to.equal(k1.authorityId);
    await f.authority.activateAuthority('jwt', k2.authorityId);
    const newToken = await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['billing'], ttl: 300 });
    expect(newToken.kid).to.equal(k2.authorityId);
    await f.authority.taintAuthority('jwt', k1.authorityId);
    expect(f.authority.taintedJwtKids()).to.deep.equal([k1.authorityId]);
    expect(f.authority.jwtAuthorities().find((a) => a.kid === k1.authorityId)!.tainted).to.equal(true);
    await f.authority.revokeAuthority('jwt', k1.authorityId);
    expect(f.authority.jwtAuthorities().map((a) => a.kid)).to.deep.equal([k2.authorityId]);
    const bundle = new JwtBundle(td, f.authority.jwtAuthorities().map((a) => [a.kid, jwkFromPublicKey(a.publicKeyDer)] as const));
    expect(() => parseAndValidateJwtSvid(oldToken.token, bundle, ['billing'], { now: f.clock.now() })).to.throw();
    expect(parseAndValidateJwtSvid(newToken.token, bundle, ['billing'], { now: f.clock.now() }).id.toString()).to.equal(ID);
    // The X.509 side was not touched.
    expect(f.authority.localAuthorities('x509')).to.have.length(1);
  });

  it('refuses every step out of order with ERR_CA_AUTHORITY_STATE and says what to do first', async () => {
    const r1 = one(f, 'x509', 'active').authorityId;
    const refuse = async (p: Promise<unknown>, hint: RegExp) => {
      const e = await errorOf(p);
      expect(e.code, e.message).to.equal('ERR_CA_AUTHORITY_STATE');
      expect(e.message).to.match(hint);
    };
    await refuse(f.authority.activateAuthority('x509', r1), /already active/);
    await refuse(f.authority.taintAuthority('x509', r1), /active one; prepare and activate its successor first/);
    await refuse(f.authority.revokeAuthority('x509', r1), /not tainted; activate its successor and taint it first/);
    const r2 = (await f.authority.prepareAuthority('x509')).authorityId;
    await refuse(f.authority.prepareAuthority('x509'), new RegExp(`${r2} is already prepared; activate it`));
    await refuse(f.authority.taintAuthority('x509', r2), /prepared, not old/);
    await refuse(f.authority.revokeAuthority('x509', r2), /not tainted/);
    await f.authority.activateAuthority('x509', r2);
    await refuse(f.authority.activateAuthority('x509', r1), /is old; only a prepared authority can be activated/);
    await refuse(f.authority.revokeAuthority('x509', r1), new RegExp(`not tainted; taint it first \\(writ authority x509 taint --authority-id ${r1}\\)`));
    await refuse(f.authority.prepareAuthority('x509'), new RegExp(`still holds the old X.509 authority ${r1}.*taint and revoke it first`));
    await f.authority.taintAuthority('x509', r1);
    await refuse(f.authority.taintAuthority('x509', r1), /already tainted; revoke it next/);
    await refuse(f.authority.prepareAuthority('x509'), /still holds the old X.509 authority .*; revoke it first/);
    await f.authority.revokeAuthority('x509', r1);
    // With the slot free again, the next rotation can be prepared.
    expect((await f.authority.prepareAuthority('x509')).status).to.equal('prepared');

    expect(await codeOf(f.authority.activateAuthority('x509', 'ab'.repeat(20)))).to.equal('ERR_CA_AUTHORITY_NOT_FOUND');
    expect(await codeOf(f.authority.taintAuthority('jwt', r1))).to.equal('ERR_CA_AUTHORITY_NOT_FOUND');
    expect(await codeOf(f.authority.revokeAuthority('x509', ''))).to.equal('ERR_INPUT_INVALID');
    // A refused step changes nothing and tells no listener.
    expect(events.map((e) => e.action)).to.deep.equal(['prepare', 'activate', 'taint', 'revoke', 'prepare']);
  });

  it('accepts an X.509 authority ID in upper case or with colons, as openssl prints it', async () => {
    const r2 = (await f.authority.prepareAuthority('x509')).authorityId;
    const typed = r2.toUpperCase().match(/../g)!.join(':');
    expect((await f.authority.activateAuthority('x509', typed)).authorityId).to.equal(r2);
  });

  it('replaces the old signing CA of a scheduled rotation when it prepares, and its SVIDs verify until the root is revoked', async () => {
    const s0 = f.authority.signingCa();
    f.clock.set(activateAt({ notBefore: Math.floor(s0.notBefore.getTime() / 1000), notAfter: Math.floor(s0.notAfter.getTime() / 1000) }) * 1000);
    await f.authority.rotate();
    expect(f.authority.signingCas().map((c) => c.status).sort()).to.deep.equal(['active', 'old']);
    const r1 = one(f, 'x509', 'active');
    expect(r1.signingCas!.map((c) => c.status).sort()).to.deep.equal(['active', 'old']);
    const underS1 = await mint(f);
    const r2 = await f.authority.prepareAuthority('x509');
    expect(one(f, 'x509', 'active').signingCas!.map((c) => c.status)).to.deep.equal(['active']);
    expect(r2.signingCas).to.have.length(1);
    await f.authority.activateAuthority('x509', r2.authorityId);
    verifyX509Svid(underS1.chain, bundleOf(f), { now: f.clock.now() });
    await f.authority.taintAuthority('x509', r1.authorityId);
    await f.authority.revokeAuthority('x509', r1.authorityId);
    expect(() => verifyX509Svid(underS1.chain, bundleOf(f), { now: f.clock.now() })).to.throw(/does not chain/);
  });

  it('keeps the states across a restart and goes on from there', async () => {
    const r1 = one(f, 'x509', 'active').authorityId;
    const k1 = one(f, 'jwt', 'active').authorityId;
    const r2 = (await f.authority.prepareAuthority('x509')).authorityId;
    const k2 = (await f.authority.prepareAuthority('jwt')).authorityId;
    await f.authority.activateAuthority('x509', r2);
    await f.authority.activateAuthority('jwt', k2);
    await f.authority.taintAuthority('x509', r1);
    await f.authority.taintAuthority('jwt', k1);
    const seen = (a: typeof f.authority) => a.localAuthorities().map((v) => `${v.kind} ${v.authorityId} ${v.status} ${v.tainted} ${(v.signingCas ?? []).map((c) => `${c.status}/${c.tainted}`).join(',')}`);
    const before = seen(f.authority);
    const again = await f.reopen();
    expect(await again.rotate()).to.deep.equal([]);
    expect(seen(again)).to.deep.equal(before);
    expect(new Set(again.taintedX509Authorities())).to.deep.equal(new Set(f.authority.taintedX509Authorities()));
    expect(again.taintedJwtKids()).to.deep.equal([k1]);
    expect(again.signingCa().ski).to.equal(f.authority.signingCa().ski);
    await again.revokeAuthority('x509', r1);
    await again.revokeAuthority('jwt', k1);
    const third = await f.reopen();
    expect(third.localAuthorities().map((v) => v.authorityId)).to.deep.equal([r2, k2]);
    expect(third.x509Authorities().map(skiOf)).to.deep.equal([r2]);
  });

  it('lets the schedule activate a prepared authority at five sixths of the active one\'s life', async () => {
    const r1 = one(f, 'x509', 'active');
    f.clock.advance(HOUR * 1000);
    const r2 = await f.authority.prepareAuthority('x509');
    f.clock.set(activateAt({ notBefore: Math.floor(r1.notBefore.getTime() / 1000), notAfter: Math.floor(r1.notAfter.getTime() / 1000) }) * 1000);
    await f.authority.rotate();
    expect(one(f, 'x509', 'active').authorityId).to.equal(r2.authorityId);
    expect(one(f, 'x509', 'old').authorityId).to.equal(r1.authorityId);
    expect(f.authority.signingCa().ski).to.not.equal(r1.signingCas![0]!.ski);
    const svid = await mint(f);
    expect(chainIssuerIds(svid.chain)[1]).to.equal(r2.authorityId);
  });
});

describe('agent cache and forced rotation', function () {
  this.timeout(60_000);
  let f: CaFixture;
  beforeEach(async () => {
    f = await caFixture();
  });
  afterEach(async () => f?.cleanup());

  it('makes an SVID under a tainted authority due at once, and drops JWT-SVIDs of a tainted or unpublished kid', async () => {
    const cache = new AgentCache(TD);
    const entry = { id: 'e1', spiffeId: ID, parentId: `spiffe://${TD}/host/a`, selectors: [{ type: 'unix', value: 'uid:0' }], x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null, revision: 1, createdAt: 1 };
    cache.putEntry(entry);
    const old = await mint(f);
    const now = f.clock.nowMs();
    cache.svids.set('e1', { entryId: 'e1', spiffeId: ID, chain: old.chain, key: Buffer.alloc(0), serial: old.serial, notBefore: now, notAfter: now + HOUR * 1000, rotateAt: now + (HOUR * 1000) / 2, revision: 1 });
    const jwt = await f.authority.mintJwtSvid({ spiffeId: ID, audience: ['a'], ttl: 300 });
    const publish = () => cache.setBundle(renderBundleDocument(TD, f.authority.x509Authorities(), f.authority.jwtAuthorities(), 300, 1));
    publish();
    expect(dueEntries(cache, now)).to.deep.equal([]);
    expect(cache.jwtKeyUsable(jwt.token)).to.equal(true);

    const r1 = one(f, 'x509', 'active').authorityId;
    const k1 = one(f, 'jwt', 'active').authorityId;
    for (const kind of ['x509', 'jwt'] as const) {
      const next = await f.authority.prepareAuthority(kind);
      await f.authority.activateAuthority(kind, next.authorityId);
    }
    await f.authority.taintAuthority('x509', r1);
    await f.authority.taintAuthority('jwt', k1);
    expect(cache.setTainted(f.authority.taintedX509Authorities(), f.authority.taintedJwtKids())).to.equal(true);
    expect(cache.setTainted(f.authority.taintedX509Authorities(), f.authority.taintedJwtKids())).to.equal(false);
    expect(dueEntries(cache, now), 'due long before half life').to.deep.equal(['e1']);
    expect(cache.jwtKeyUsable(jwt.token)).to.equal(false);
    // An SVID signed under the new authority is not due.
    const fresh = await mint(f);
    cache.svids.set('e1', { ...cache.svids.get('e1')!, chain: fresh.chain });
    expect(dueEntries(cache, now)).to.deep.equal([]);
    // Old servers send no tainted lists; a kid that left the bundle is dropped all the same.
    cache.setTainted([], []);
    await f.authority.revokeAuthority('jwt', k1);
    publish();
    expect(cache.jwtKeyUsable(jwt.token)).to.equal(false);
    expect(cache.jwtKeyUsable('not a token')).to.equal(false);
  });
});
