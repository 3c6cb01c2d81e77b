import { expect } from 'chai';
import fc from 'fast-check';
import type { JsonWebKey } from 'node:crypto';
import { BundleSet, JwtBundle, SpiffeBundle, X509Bundle, jwkFromPublicKey } from '../../src/bundle/index.js';
import { isWritError } from '../../src/errors.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { type TestCert, type TestKey, codeOf, errorOf, makeRoot, newKey } from '../svid/pki.js';

const td = parseTrustDomain('example.org');
const other = parseTrustDomain('other.org');

function x509Key(c: TestCert): Record<string, unknown> {
  return { ...jwkFromPublicKey(c.key.publicKey), use: 'x509-svid', x5c: [c.der.toString('base64')] };
}
function jwtKey(k: TestKey, kid: string): Record<string, unknown> {
  return { ...jwkFromPublicKey(k.publicKey), use: 'jwt-svid', kid };
}

describe('bundle: SpiffeBundle and BundleSet', () => {
  let ecRoot: TestCert;
  let rsaRoot: TestCert;
  let p384Root: TestCert;
  let otherRoot: TestCert;
  let jwtEc: TestKey;
  let jwtRsa: TestKey;
  let jwtP384: TestKey;
  before(async () => {
    [ecRoot, rsaRoot, p384Root, otherRoot] = await Promise.all([
      makeRoot('example.org'),
      makeRoot('example.org', 'RSA-2048'),
      makeRoot('example.org', 'P-384'),
      makeRoot('other.org'),
    ]);
    [jwtEc, jwtRsa, jwtP384] = await Promise.all([newKey('P-256'), newKey('RSA-2048'), newKey('P-384')]);
  });

  it('parses the shape of the spec example (SPIFFE_Trust_Domain_and_Bundle.md App. A: one RSA x509-svid key)', () => {
    // Shape from spiffe/spiffe@standards/SPIFFE_Trust_Domain_and_Bundle.md Appendix A (quoted in
    // /work/shared/reference/spiffe-spire.md §4.1); the key and certificate are generated here.
    const doc = { spiffe_sequence: 1, spiffe_refresh_hint: 2419200, keys: [{ kty: 'RSA', use: 'x509-svid', x5c: [rsaRoot.der.toString('base64')], ...jwkFromPublicKey(rsaRoot.key.publicKey) }] };
    const b = SpiffeBundle.parse(td, JSON.stringify(doc));
    expect(b.sequenceNumber).to.equal(1);
    expect(b.refreshHint).to.equal(2419200);
    expect(b.x509Authorities).to.have.length(1);
    expect(b.x509Authorities[0]!.equals(rsaRoot.der)).to.equal(true);
    expect(b.jwtAuthorities.size).to.equal(0);
  });

  it('parses the shape of a SPIRE bundle endpoint body (reference §4.4: EC x509-svid and jwt-svid keys)', () => {
    // Member order as SPIRE's bundleutil.Marshal + go-jose write it: use first, then kty, kid, ...
    const jwk = jwkFromPublicKey(jwtEc.publicKey);
    const kid = 'Xk3pQ8aZr2LmN7bVc4Yt9WsHe6JdFq1u';
    const body = {
      keys: [
        { use: 'x509-svid', ...jwkFromPublicKey(ecRoot.key.publicKey), x5c: [ecRoot.der.toString('base64')] },
        { use: 'jwt-svid', kty: 'EC', kid, crv: jwk.crv, x: jwk.x, y: jwk.y },
      ],
      spiffe_refresh_hint: 300,
      spiffe_sequence: 42,
    };
    const b = SpiffeBundle.parse(td, Buffer.from(JSON.stringify(body, null, 2)));
    expect(b.sequenceNumber).to.equal(42);
    expect(b.refreshHint).to.equal(300);
    expect(b.x509Authorities[0]!.equals(ecRoot.der)).to.equal(true);
    expect(b.jwtAuthorities.get(kid)).to.deep.equal(jwk);
    expect(b.jwtBundle().publicKey(kid)).to.not.equal(undefined);
  });

  it('marshals stable JSON with members in a fixed order, and parses it back equal', () => {
    const b = new SpiffeBundle(td, {
      x509Authorities: [ecRoot.der, rsaRoot.der],
      jwtAuthorities: [['kid-ec', jwkFromPublicKey(jwtEc.publicKey)], ['kid-rsa', jwkFromPublicKey(jwtRsa.publicKey)]],
      sequenceNumber: 7,
      refreshHint: 300,
    });
    const json = b.marshal();
    expect(b.marshal()).to.equal(json);
    const doc = JSON.parse(json) as { keys: Array<Record<string, unknown>> } & Record<string, unknown>;
    expect(Object.keys(doc)).to.deep.equal(['spiffe_sequence', 'spiffe_refresh_hint', 'keys']);
    expect(doc.keys.map((k) => Object.keys(k))).to.deep.equal([
      ['kty', 'crv', 'x', 'y', 'use', 'x5c'],
      ['kty', 'n', 'e', 'use', 'x5c'],
      ['kty', 'crv', 'x', 'y', 'use', 'kid'],
      ['kty', 'n', 'e', 'use', 'kid'],
    ]);
    expect(doc.keys[0]!.x5c).to.deep.equal([ecRoot.der.toString('base64')]);
    const back = SpiffeBundle.parse(td, json);
    expect(back.equals(b)).to.equal(true);
    expect(back.marshal()).to.equal(json);
    expect(JSON.parse(b.marshal({ pretty: true }))).to.deep.equal(doc);
    expect(new SpiffeBundle(td).marshal()).to.equal('{"keys":[]}');
  });

  it('accepts keys: [] (every key revoked) as an empty bundle', () => {
    const b = SpiffeBundle.parse(td, '{"keys":[],"spiffe_sequence":0}');
    expect(b.isEmpty()).to.equal(true);
    expect(b.sequenceNumber).to.equal(0);
    expect(b.refreshHint).to.equal(undefined);
  });

  it('ignores keys with an unknown or missing use and keys of an unknown kty (spec §4.2.1–4.2.2)', () => {
    const doc = {
      keys: [
        { ...jwtKey(jwtEc, 'w'), use: 'wit-svid' },
        { ...jwtKey(jwtEc, 'n'), use: undefined },
        { kty: 'oct', use: 'jwt-svid', kid: 'sym', k: 'c2VjcmV0' },
        { kty: 'PQC', use: 'x509-svid', x5c: [] },
        jwtKey(jwtP384, 'kept'),
        x509Key(p384Root),
      ],
    };
    const b = SpiffeBundle.parse(td, JSON.stringify(doc));
    expect([...b.jwtAuthorities.keys()]).to.deep.equal(['kept']);
    expect(b.x509Authorities).to.have.length(1);
  });

  describe('malformed SPIFFE bundles', () => {
    const cases: Array<[string, () => unknown, string, RegExp]> = [
      ['not JSON', () => 'not json', 'ERR_BUNDLE_JSON', /SPIFFE bundle for example\.org is not valid JSON/],
      ['a JSON string', () => '"keys"', 'ERR_BUNDLE_JSON', /not a JSON object/],
      ['no keys member', () => ({ spiffe_sequence: 1 }), 'ERR_BUNDLE_JSON', /no "keys" array/],
      ['keys not an array', () => ({ keys: 'x' }), 'ERR_BUNDLE_JSON', /no "keys" array/],
      ['negative spiffe_sequence', () => ({ keys: [], spiffe_sequence: -1 }), 'ERR_BUNDLE_JSON', /"spiffe_sequence" -1, but it must be a non-negative integer/],
      ['float spiffe_sequence', () => ({ keys: [], spiffe_sequence: 1.5 }), 'ERR_BUNDLE_JSON', /"spiffe_sequence" 1\.5/],
      ['string spiffe_sequence', () => ({ keys: [], spiffe_sequence: '1' }), 'ERR_BUNDLE_JSON', /"spiffe_sequence" string/],
      ['spiffe_sequence beyond 2^53', () => '{"keys":[],"spiffe_sequence":18446744073709551615}', 'ERR_BUNDLE_JSON', /spiffe_sequence/],
      ['negative spiffe_refresh_hint', () => ({ keys: [], spiffe_refresh_hint: -5 }), 'ERR_BUNDLE_JSON', /"spiffe_refresh_hint" -5/],
      ['float spiffe_refresh_hint', () => ({ keys: [], spiffe_refresh_hint: 0.5 }), 'ERR_BUNDLE_JSON', /"spiffe_refresh_hint" 0\.5/],
      ['a key that is not an object', () => ({ keys: [null] }), 'ERR_BUNDLE_JWK', /JWK 1 in the bundle for example\.org is not a JSON object/],
      ['x509-svid key without x5c', () => ({ keys: [{ ...x509Key(ecRoot), x5c: undefined }] }), 'ERR_BUNDLE_JWK', /JWK 1 .* has use "x509-svid" but 0 x5c certificates; exactly one is required/],
      ['x509-svid key with empty x5c', () => ({ keys: [{ ...x509Key(ecRoot), x5c: [] }] }), 'ERR_BUNDLE_JWK', /but 0 x5c certificates/],
      [
        'x509-svid key with 2 x5c',
        () => ({ keys: [x509Key(ecRoot), { ...x509Key(ecRoot), x5c: [ecRoot.der.toString('base64'), rsaRoot.der.toString('base64')] }] }),
        'ERR_BUNDLE_JWK',
        /^JWK 2 in the bundle for example\.org has use "x509-svid" but 2 x5c certificates; exactly one is required\.$/,
      ],
      ['x5c not base64', () => ({ keys: [{ ...x509Key(ecRoot), x5c: ['***'] }] }), 'ERR_BUNDLE_JWK', /not standard base64/],
      ['x5c in base64url', () => ({ keys: [{ ...x509Key(ecRoot), x5c: ['-_' + ecRoot.der.toString('base64url')] }] }), 'ERR_BUNDLE_JWK', /not standard base64/],
      ['x5c not a certificate', () => ({ keys: [{ ...x509Key(ecRoot), x5c: ['aGVsbG8='] }] }), 'ERR_BUNDLE_JWK', /not a DER X\.509 certificate/],
      ['x509-svid key params that differ from the x5c key', () => ({ keys: [{ ...x509Key(ecRoot), ...jwkFromPublicKey(jwtEc.publicKey) }] }), 'ERR_BUNDLE_JWK', /differ from the public key of its x5c/],
      ['x509-svid key without kty', () => ({ keys: [{ ...x509Key(ecRoot), kty: undefined }] }), 'ERR_BUNDLE_JWK', /has no "kty"/],
      ['jwt-svid key without kid', () => ({ keys: [{ ...jwtKey(jwtEc, 'x'), kid: undefined }] }), 'ERR_BUNDLE_JWK', /JWK 1 .* has no "kid"/],
      ['jwt-svid keys sharing a kid', () => ({ keys: [jwtKey(jwtEc, 'x'), jwtKey(jwtRsa, 'x')] }), 'ERR_BUNDLE_JWK', /JWK 2 .* repeats the key ID "x"/],
      ['jwt-svid key with private material', () => ({ keys: [{ ...jwtKey(jwtEc, 'x'), d: 'AAAA' }] }), 'ERR_BUNDLE_JWK', /private or secret key material/],
    ];
    for (const [name, input, code, message] of cases) {
      it(`${name} → ${code}`, () => {
        const v = input();
        const e = errorOf(() => SpiffeBundle.parse(td, typeof v === 'string' ? v : JSON.stringify(v)));
        expect(e.code).to.equal(code);
        expect(e.message).to.match(message);
      });
    }
  });

  it('gives copies of its parts and is a source for its own trust domain only', () => {
    const b = new SpiffeBundle(td, { x509Authorities: [ecRoot.der], jwtAuthorities: { k: jwkFromPublicKey(jwtEc.publicKey) } });
    const x = b.x509Bundle();
    x.addAuthority(rsaRoot.der);
    expect(b.x509Authorities).to.have.length(1);
    expect(b.getX509BundleForTrustDomain(td).size).to.equal(1);
    expect(b.getJwtBundleForTrustDomain(td).hasAuthority('k')).to.equal(true);
    expect(b.getSpiffeBundleForTrustDomain(td)).to.equal(b);
    for (const fn of [() => b.getX509BundleForTrustDomain(other), () => b.getJwtBundleForTrustDomain(other), () => b.getSpiffeBundleForTrustDomain(other)]) {
      expect(codeOf(fn)).to.equal('ERR_BUNDLE_NOT_FOUND');
    }
  });

  it('refuses parts of another trust domain and invalid counters', () => {
    const b = new SpiffeBundle(td);
    expect(codeOf(() => b.setX509Bundle(new X509Bundle(other, [otherRoot.der])))).to.equal('ERR_BUNDLE_TRUST_DOMAIN');
    expect(codeOf(() => b.setJwtBundle(new JwtBundle(other)))).to.equal('ERR_BUNDLE_TRUST_DOMAIN');
    expect(codeOf(() => (b.sequenceNumber = -1))).to.equal('ERR_BUNDLE_JSON');
    expect(codeOf(() => (b.refreshHint = 1.25))).to.equal('ERR_BUNDLE_JSON');
    b.sequenceNumber = 3;
    b.addX509Authority(ecRoot.der);
    b.addJwtAuthority('a', jwkFromPublicKey(jwtEc.publicKey));
    expect(b.clone().equals(b)).to.equal(true);
    expect(b.removeX509Authority(ecRoot.der)).to.equal(true);
    expect(b.removeJwtAuthority('a')).to.equal(true);
    expect(b.isEmpty()).to.equal(true);
    expect(SpiffeBundle.fromX509Bundle(new X509Bundle(td, [ecRoot.der])).x509Authorities).to.have.length(1);
    expect(SpiffeBundle.fromJwtBundle(new JwtBundle(td, { a: jwkFromPublicKey(jwtEc.publicKey) })).jwtAuthorities.size).to.equal(1);
  });

  describe('BundleSet', () => {
    it('keeps one bundle per trust domain; X.509 and JWT parts merge', () => {
      const set = new BundleSet();
      set.add(new X509Bundle(td, [ecRoot.der]));
      set.add(new JwtBundle(td, { k: jwkFromPublicKey(jwtEc.publicKey) }));
      set.add(SpiffeBundle.fromX509Bundle(new X509Bundle(other, [otherRoot.der])));
      expect(set.size).to.equal(2);
      expect(set.trustDomainNames()).to.deep.equal(['example.org', 'other.org']);
      expect(set.has(td)).to.equal(true);
      expect(set.get(td)!.x509Authorities).to.have.length(1);
      expect(set.getJwtBundleForTrustDomain(td).hasAuthority('k')).to.equal(true);
      expect(set.getX509BundleForTrustDomain(other).authorities()[0]!.equals(otherRoot.der)).to.equal(true);
      expect(set.getJwtBundleForTrustDomain(other).isEmpty()).to.equal(true);
      expect(set.bundles().map((b) => b.trustDomain.name)).to.deep.equal(['example.org', 'other.org']);
      // A SpiffeBundle replaces everything for its trust domain.
      set.add(new SpiffeBundle(td, { x509Authorities: [rsaRoot.der] }));
      expect(set.getJwtBundleForTrustDomain(td).isEmpty()).to.equal(true);
      expect(set.remove(other)).to.equal(true);
      expect(set.remove(other)).to.equal(false);
      const missing = parseTrustDomain('missing.org');
      for (const fn of [() => set.getX509BundleForTrustDomain(other), () => set.getJwtBundleForTrustDomain(missing), () => set.getSpiffeBundleForTrustDomain(missing)]) {
        const e = errorOf(fn);
        expect(e.code).to.equal('ERR_BUNDLE_NOT_FOUND');
        expect(e.details).to.have.property('trust_domain');
      }
      expect(new BundleSet([new X509Bundle(td, [ecRoot.der])]).size).to.equal(1);
    });
  });

  describe('properties', () => {
    it('marshal → parse preserves authorities, sequence number and refresh hint', () => {
      const roots = [ecRoot, rsaRoot, p384Root];
      const jwts = [jwtEc, jwtRsa, jwtP384];
      const kid = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' });
      fc.assert(
        fc.property(
          fc.subarray(roots),
          fc.uniqueArray(fc.tuple(kid, fc.nat(jwts.length - 1)), { selector: ([k]) => k, maxLength: 6 }),
          fc.option(fc.maxSafeNat(), { nil: undefined }),
          fc.option(fc.maxSafeNat(), { nil: undefined }),
          (rs, ks, sequenceNumber, refreshHint) => {
            const jwtAuthorities = ks.map(([k, i]) => [k, jwkFromPublicKey(jwts[i]!.publicKey)] as [string, JsonWebKey]);
            const b = new SpiffeBundle(td, { x509Authorities: rs.map((r) => r.der), jwtAuthorities, sequenceNumber, refreshHint });
            const back = SpiffeBundle.parse(td, b.marshal());
            expect(back.equals(b)).to.equal(true);
            expect(back.sequenceNumber).to.equal(sequenceNumber);
            expect(back.refreshHint).to.equal(refreshHint);
            expect(back.x509Authorities.map((d) => d.toString('hex'))).to.deep.equal(rs.map((r) => r.der.toString('hex')));
            expect([...back.jwtAuthorities]).to.deep.equal(jwtAuthorities);
          },
        ),
        { numRuns: 150 },
      );
    });

    it('parse throws nothing but WritError on arbitrary strings, bytes and bundle-like JSON', () => {
      const good = new SpiffeBundle(td, { x509Authorities: [ecRoot.der], jwtAuthorities: { k: jwkFromPublicKey(jwtEc.publicKey) }, sequenceNumber: 1 }).marshal();
      const value = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.base64String());
      const keyArb = fc.record(
        { use: fc.constantFrom('x509-svid', 'jwt-svid', 'wit-svid', 1), kty: fc.constantFrom('EC', 'RSA', 'OKP', 'oct', 7), crv: value, x: value, y: value, n: value, e: value, kid: value, x5c: value },
        { requiredKeys: [] },
      );
      const inputs = fc.oneof(
        fc.string(),
        fc.uint8Array({ maxLength: 200 }),
        fc.json(),
        fc.record({ keys: fc.oneof(fc.array(keyArb, { maxLength: 4 }), value), spiffe_sequence: value, spiffe_refresh_hint: value }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
        fc.tuple(fc.nat(good.length - 1), fc.string({ maxLength: 2 })).map(([i, s]) => good.slice(0, i) + s + good.slice(i + 1)),
      );
      fc.assert(
        fc.property(inputs, (input) => {
          try {
            SpiffeBundle.parse(td, input);
          } catch (e) {
            if (!isWritError(e)) throw e;
            expect(e.code).to.match(/^ERR_BUNDLE_/);
          }
        }),
        { numRuns: 400 },
      );
    });
  });
});
