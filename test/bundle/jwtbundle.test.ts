import { expect } from 'chai';
import fc from 'fast-check';
import { type JsonWebKey, createPublicKey } from 'node:crypto';
import { JwtBundle, jwkFromPublicKey } from '../../src/bundle/index.js';
import { isWritError } from '../../src/errors.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { type KeyKind, type TestKey, codeOf, errorOf, newKey } from '../svid/pki.js';

const td = parseTrustDomain('example.org');

describe('bundle: JWKs and JwtBundle', () => {
  const keys = new Map<KeyKind, TestKey>();
  before(async () => {
    for (const kind of ['P-256', 'P-384', 'P-521', 'RSA-2048', 'Ed25519'] as const) keys.set(kind, await newKey(kind));
  });
  const key = (k: KeyKind): TestKey => keys.get(k)!;

  describe('jwkFromPublicKey', () => {
    for (const kind of ['P-256', 'P-384', 'P-521', 'RSA-2048', 'Ed25519'] as const) {
      it(`builds the JWK of a ${kind} key from a KeyObject, a private KeyObject or SPKI DER, without JWK export`, () => {
        const k = key(kind);
        const fromPublic = jwkFromPublicKey(k.publicKey);
        expect(jwkFromPublicKey(k.privateKey)).to.deep.equal(fromPublic);
        expect(jwkFromPublicKey(k.spki)).to.deep.equal(fromPublic);
        const back = createPublicKey({ key: fromPublic, format: 'jwk' }).export({ type: 'spki', format: 'der' });
        expect(back.equals(k.spki)).to.equal(true);
      });
    }

    it('gives exactly the public members, in JWK form', () => {
      const ec = jwkFromPublicKey(key('P-256').publicKey);
      expect(Object.keys(ec)).to.deep.equal(['kty', 'crv', 'x', 'y']);
      expect(ec.crv).to.equal('P-256');
      expect(Buffer.from(ec.x!, 'base64url')).to.have.length(32);
      const rsa = jwkFromPublicKey(key('RSA-2048').publicKey);
      expect(Object.keys(rsa)).to.deep.equal(['kty', 'n', 'e']);
      expect(rsa.e).to.equal('AQAB');
      expect(Buffer.from(rsa.n!, 'base64url')).to.have.length(256);
    });

    it('refuses bytes that are not SPKI DER', () => {
      expect(codeOf(() => jwkFromPublicKey(Buffer.from('nope')))).to.equal('ERR_BUNDLE_JWK');
    });
  });

  describe('JwtBundle', () => {
    it('adds, finds, removes and marshals authorities; imports each key once', () => {
      const b = new JwtBundle(td);
      const jwk = jwkFromPublicKey(key('P-256').publicKey);
      b.addAuthority('k1', jwk);
      b.addAuthority('k2', jwkFromPublicKey(key('RSA-2048').publicKey));
      expect(b.hasAuthority('k1')).to.equal(true);
      expect(b.findAuthority('k1')).to.deep.equal(jwk);
      expect(b.findAuthority('nope')).to.equal(undefined);
      expect(b.publicKey('k1')!.export({ type: 'spki', format: 'der' }).equals(key('P-256').spki)).to.equal(true);
      expect([...b.authorities().keys()]).to.deep.equal(['k1', 'k2']);
      const again = JwtBundle.parse(td, b.marshal());
      expect(again.equals(b)).to.equal(true);
      expect(JSON.parse(b.marshal()).keys[0]).to.deep.equal({ ...jwk, kid: 'k1' });
      expect(b.removeAuthority('k1')).to.equal(true);
      expect(b.removeAuthority('k1')).to.equal(false);
      expect(b.size).to.equal(1);
    });

    it('keeps only public members of a JWK', () => {
      const b = new JwtBundle(td, { k: { ...jwkFromPublicKey(key('P-256').publicKey), alg: 'ES256', use: 'sig', key_ops: ['verify'] } as JsonWebKey });
      expect(Object.keys(b.findAuthority('k')!)).to.deep.equal(['kty', 'crv', 'x', 'y']);
    });

    it('skips keys of a full SPIFFE bundle that are not jwt-svid keys', () => {
      const jwk = jwkFromPublicKey(key('P-256').publicKey);
      const b = JwtBundle.parse(td, JSON.stringify({ keys: [{ ...jwk, use: 'x509-svid', x5c: ['AA=='] }, { ...jwk, use: 'jwt-svid', kid: 'j' }, { ...jwk, kid: 'plain' }] }));
      expect([...b.authorities().keys()]).to.deep.equal(['j', 'plain']);
    });

    it('is a source for its own trust domain only', () => {
      const b = new JwtBundle(td);
      expect(b.getJwtBundleForTrustDomain(td)).to.equal(b);
      expect(codeOf(() => b.getJwtBundleForTrustDomain(parseTrustDomain('other.org')))).to.equal('ERR_BUNDLE_NOT_FOUND');
    });

    describe('malformed JWK Sets and JWKs', () => {
      const ec = (): JsonWebKey => jwkFromPublicKey(key('P-256').publicKey);
      const cases: Array<[string, () => unknown, string, RegExp]> = [
        ['not JSON', () => '{"keys": [', 'ERR_BUNDLE_JSON', /not valid JSON/],
        ['a JSON array', () => [], 'ERR_BUNDLE_JSON', /not a JSON object/],
        ['no keys', () => ({}), 'ERR_BUNDLE_JSON', /no "keys" array/],
        ['keys not an array', () => ({ keys: {} }), 'ERR_BUNDLE_JSON', /no "keys" array/],
        ['a key without kid', () => ({ keys: [ec()] }), 'ERR_BUNDLE_JWK', /JWK 1 .* has no "kid"/],
        ['an empty kid', () => ({ keys: [{ ...ec(), kid: '' }] }), 'ERR_BUNDLE_JWK', /no "kid"/],
        ['a repeated kid', () => ({ keys: [{ ...ec(), kid: 'a' }, { ...ec(), kid: 'a' }] }), 'ERR_BUNDLE_JWK', /JWK 2 .* repeats the key ID "a"/],
        ['a key that is not an object', () => ({ keys: [42] }), 'ERR_BUNDLE_JWK', /JWK 1/],
        ['private key material', () => ({ keys: [{ ...ec(), kid: 'a', d: 'AAAA' }] }), 'ERR_BUNDLE_JWK', /private or secret key material \("d"\)/],
        ['a symmetric key', () => ({ keys: [{ kty: 'oct', k: 'AAAA', kid: 'a' }] }), 'ERR_BUNDLE_JWK', /secret key material/],
        ['an unknown kty', () => ({ keys: [{ kty: 'XYZ', kid: 'a' }] }), 'ERR_BUNDLE_JWK', /key type "XYZ"/],
        ['an unknown curve', () => ({ keys: [{ ...ec(), crv: 'secp256k1', kid: 'a' }] }), 'ERR_BUNDLE_JWK', /curve "secp256k1"/],
        ['a short x', () => ({ keys: [{ ...ec(), x: 'AAAA', kid: 'a' }] }), 'ERR_BUNDLE_JWK', /"x" member of the wrong length/],
        ['a point off the curve', () => ({ keys: [{ ...ec(), y: Buffer.alloc(32, 1).toString('base64url'), kid: 'a' }] }), 'ERR_BUNDLE_JWK', /not a valid public key/],
        ['RSA without e', () => ({ keys: [{ kty: 'RSA', n: 'AQAB', kid: 'a' }] }), 'ERR_BUNDLE_JWK', /no valid "e"/],
        ['x not base64url', () => ({ keys: [{ ...ec(), x: 'a+b/', kid: 'a' }] }), 'ERR_BUNDLE_JWK', /no valid "x"/],
      ];
      for (const [name, input, code, message] of cases) {
        it(`${name} → ${code}`, () => {
          const v = input();
          const e = errorOf(() => JwtBundle.parse(td, typeof v === 'string' ? v : JSON.stringify(v)));
          expect(e.code).to.equal(code);
          expect(e.message).to.match(message);
          expect(e.message).to.not.contain(ec().x!);
        });
      }

      it('addAuthority validates the kid and the key', () => {
        const b = new JwtBundle(td);
        expect(codeOf(() => b.addAuthority('', ec()))).to.equal('ERR_BUNDLE_JWK');
        expect(codeOf(() => b.addAuthority('a', { kty: 'EC' }))).to.equal('ERR_BUNDLE_JWK');
        b.addAuthority('a', ec());
        b.addAuthority('a', jwkFromPublicKey(key('P-384').publicKey)); // replaces
        expect(b.findAuthority('a')!.crv).to.equal('P-384');
      });
    });

    it('parse throws nothing but WritError on arbitrary input', () => {
      const member = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.base64String());
      const jwkArb = fc.record(
        { kty: fc.constantFrom('EC', 'RSA', 'OKP', 'oct', 'x'), crv: fc.constantFrom('P-256', 'P-384', 'Ed25519', 'x'), x: member, y: member, n: member, e: member, kid: member, use: member },
        { requiredKeys: [] },
      );
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.json(), fc.array(jwkArb).map((keys) => JSON.stringify({ keys }))), (s) => {
          try {
            JwtBundle.parse(td, s);
          } catch (e) {
            if (!isWritError(e)) throw e;
          }
        }),
        { numRuns: 300 },
      );
    });
  });
});
