import { expect } from 'chai';
import fc from 'fast-check';
import { SignJWT, jwtVerify } from 'jose';
import { type KeyObject, constants, generateKeyPairSync, sign } from 'node:crypto';
import { BundleSet, JwtBundle, SpiffeBundle, jwkFromPublicKey } from '../../../src/bundle/index.js';
import { isWritError } from '../../../src/errors.js';
import { parseTrustDomain } from '../../../src/spiffeid/index.js';
import {
  DEFAULT_JWT_CLOCK_SKEW_SECONDS,
  JWT_SVID_ALGORITHMS,
  JWT_SVID_RULES,
  type JwtSvidRule,
  parseAndValidateJwtSvid,
  parseInsecureJwtSvid,
} from '../../../src/svid/index.js';
import { type TestKey, codeOf, errorOf, newKey } from '../pki.js';

const td = parseTrustDomain('example.org');
const otherTd = parseTrustDomain('other.org');
const SUB = 'spiffe://example.org/agent/reports';
const AUD = ['reports-api'];
const now = () => Math.floor(Date.now() / 1000);

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs any header and claims with node:crypto, so tests can build tokens jose would refuse to. */
function rawToken(header: Record<string, unknown>, claims: unknown, key: KeyObject | undefined, alg = String(header.alg)): string {
  const input = `${b64(header)}.${b64(claims)}`;
  if (!key) return `${input}.${Buffer.from('sig').toString('base64url')}`;
  const hash = `sha${alg.slice(2)}`;
  let sig: Buffer;
  if (alg.startsWith('ES')) sig = sign(hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg.startsWith('PS')) sig = sign(hash, Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  else sig = sign(hash, Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}

describe('svid/jwt', () => {
  const keys: Record<string, TestKey> = {};
  let rsa1024: { privateKey: KeyObject; publicKey: KeyObject };
  let bundle: JwtBundle;
  let set: BundleSet;
  const KIDS = { ES256: 'kid-es256', ES384: 'kid-es384', ES512: 'kid-es512', RS: 'kid-rsa', SMALL: 'kid-rsa1024', OTHER: 'kid-other' };

  before(async () => {
    [keys.ES256, keys.ES384, keys.ES512, keys.RS, keys.OTHER, keys.STRANGER] = await Promise.all([
      newKey('P-256'),
      newKey('P-384'),
      newKey('P-521'),
      newKey('RSA-2048'),
      newKey('P-256'),
      newKey('P-256'),
    ]);
    rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    bundle = new JwtBundle(td, [
      [KIDS.ES256, jwkFromPublicKey(keys.ES256!.publicKey)],
      [KIDS.ES384, jwkFromPublicKey(keys.ES384!.publicKey)],
      [KIDS.ES512, jwkFromPublicKey(keys.ES512!.publicKey)],
      [KIDS.RS, jwkFromPublicKey(keys.RS!.publicKey)],
      [KIDS.SMALL, jwkFromPublicKey(rsa1024.publicKey)],
    ]);
    set = new BundleSet([bundle, new JwtBundle(otherTd, { [KIDS.OTHER]: jwkFromPublicKey(keys.OTHER!.publicKey) })]);
  });

  const claims = (extra: Record<string, unknown> = {}) => ({ sub: SUB, aud: AUD, exp: now() + 300, iat: now(), ...extra });
  const es256 = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    rawToken({ alg: 'ES256', kid: KIDS.ES256, typ: 'JWT', ...header }, claims(extra), keys.ES256!.privateKey);

  describe('happy paths', () => {
    it('validates tokens signed by jose with every allowed algorithm family', async () => {
      const cases: Array<[string, TestKey, string]> = [
        ['ES256', keys.ES256!, KIDS.ES256],
        ['ES384', keys.ES384!, KIDS.ES384],
        ['ES512', keys.ES512!, KIDS.ES512],
        ['RS256', keys.RS!, KIDS.RS],
        ['RS384', keys.RS!, KIDS.RS],
        ['RS512', keys.RS!, KIDS.RS],
        ['PS256', keys.RS!, KIDS.RS],
        ['PS384', keys.RS!, KIDS.RS],
        ['PS512', keys.RS!, KIDS.RS],
      ];
      expect(cases.map(([a]) => a).sort()).to.deep.equal([...JWT_SVID_ALGORITHMS].sort());
      for (const [alg, key, kid] of cases) {
        const token = await new SignJWT({ 'writ.dev/delegation': { task: 't1' } })
          .setProtectedHeader({ alg, kid, typ: 'JWT' })
          .setSubject(SUB)
          .setAudience('reports-api')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(key.privateKey);
        const svid = parseAndValidateJwtSvid(token, set, ['other', 'reports-api']);
        expect(svid.id.toString(), alg).to.equal(SUB);
        expect(svid.audience).to.deep.equal(['reports-api']);
        expect(svid.header).to.deep.equal({ alg, kid, typ: 'JWT' });
        expect(svid.claims['writ.dev/delegation']).to.deep.equal({ task: 't1' });
        expect(svid.expiry.getTime()).to.be.closeTo(Date.now() + 300_000, 5_000);
        expect(svid.issuedAt).to.be.instanceOf(Date);
        expect(svid.token).to.equal(token);
        expect(svid.marshal()).to.equal(token);
      }
    });

    it('validates the token shape SPIRE produces (reference §3.1), with typ JOSE or no typ', () => {
      // Shape from /work/shared/reference/spiffe-spire.md §3.1 (values regenerated, times relative to now).
      const kid = 'Xk3pQ8aZr2LmN7bVc4Yt9WsHe6JdFq1u';
      const b = new JwtBundle(td, { [kid]: jwkFromPublicKey(keys.ES256!.publicKey) });
      for (const typ of ['JWT', 'JOSE', undefined]) {
        const header = typ ? { alg: 'ES256', kid, typ } : { alg: 'ES256', kid };
        const token = rawToken(header, { sub: 'spiffe://example.org/ns/prod/sa/web', aud: ['reports'], exp: now() + 300, iat: now() }, keys.ES256!.privateKey);
        const svid = parseAndValidateJwtSvid(token, b, ['reports']);
        expect(svid.id.path).to.equal('/ns/prod/sa/web');
        expect(svid.header.typ).to.equal(typ);
      }
    });

    it('takes bundles from a JwtBundle, a SpiffeBundle or a BundleSet', () => {
      const token = es256();
      expect(parseAndValidateJwtSvid(token, bundle, AUD).id.toString()).to.equal(SUB);
      expect(parseAndValidateJwtSvid(token, SpiffeBundle.fromJwtBundle(bundle), AUD).id.toString()).to.equal(SUB);
      const other = rawToken({ alg: 'ES256', kid: KIDS.OTHER }, claims({ sub: 'spiffe://other.org/x' }), keys.OTHER!.privateKey);
      expect(parseAndValidateJwtSvid(other, set, AUD).id.trustDomain.name).to.equal('other.org');
    });

    it('accepts tokens that jose also accepts, and jose accepts ours', async () => {
      const token = es256();
      const { payload } = await jwtVerify(token, keys.ES256!.publicKey, { audience: AUD, algorithms: [...JWT_SVID_ALGORITHMS] });
      expect(parseAndValidateJwtSvid(token, set, AUD).claims).to.deep.equal(payload);
    });

    it(`allows ${DEFAULT_JWT_CLOCK_SKEW_SECONDS} s of clock skew by default, and a configured skew`, () => {
      const justExpired = es256({ exp: now() - 10 });
      expect(parseAndValidateJwtSvid(justExpired, set, AUD).id.toString()).to.equal(SUB);
      expect(codeOf(() => parseAndValidateJwtSvid(justExpired, set, AUD, { clockSkewSeconds: 0 }))).to.equal('ERR_SVID_JWT_EXPIRED');
      const slightlyFuture = es256({ iat: now() + 10, nbf: now() + 10 });
      expect(parseAndValidateJwtSvid(slightlyFuture, set, AUD).id.toString()).to.equal(SUB);
      expect(codeOf(() => parseAndValidateJwtSvid(slightlyFuture, set, AUD, { clockSkewSeconds: 0 }))).to.equal('ERR_SVID_JWT_NOT_YET_VALID');
      const t = es256({ exp: 2_000_000_000 });
      expect(codeOf(() => parseAndValidateJwtSvid(t, set, AUD, { now: new Date(2_000_000_029_000) }))).to.equal(undefined);
      expect(codeOf(() => parseAndValidateJwtSvid(t, set, AUD, { now: new Date(2_000_000_030_000) }))).to.equal('ERR_SVID_JWT_EXPIRED');
      expect(codeOf(() => parseAndValidateJwtSvid(t, set, AUD, { now: new Date(2_000_000_000_000), clockSkewSeconds: 0 }))).to.equal('ERR_SVID_JWT_EXPIRED');
      expect(codeOf(() => parseAndValidateJwtSvid(t, set, AUD, { now: new Date(1_999_999_999_000), clockSkewSeconds: 0 }))).to.equal(undefined);
    });

    it('parseInsecureJwtSvid skips the signature but not the claims', () => {
      const forged = rawToken({ alg: 'ES256', kid: 'anything' }, claims({ sub: 'spiffe://nowhere.org/x' }), undefined);
      expect(parseInsecureJwtSvid(forged, AUD).id.toString()).to.equal('spiffe://nowhere.org/x');
      expect(codeOf(() => parseInsecureJwtSvid(forged, ['someone-else']))).to.equal('ERR_SVID_JWT_AUD');
      expect(codeOf(() => parseInsecureJwtSvid(rawToken({ alg: 'ES256', kid: 'k' }, claims({ exp: now() - 3600 }), undefined), AUD))).to.equal('ERR_SVID_JWT_EXPIRED');
      expect(codeOf(() => parseInsecureJwtSvid(rawToken({ alg: 'none', kid: 'k' }, claims(), undefined), AUD))).to.equal('ERR_SVID_JWT_ALG');
    });

    it('never shows the token when logged', () => {
      const token = es256();
      const svid = parseAndValidateJwtSvid(token, set, AUD);
      expect(JSON.stringify(svid)).to.not.contain(token.split('.')[2]!);
      expect(JSON.parse(JSON.stringify(svid))).to.have.keys(['spiffe_id', 'audience', 'expiry', 'kid']);
    });
  });

  describe('rules', () => {
    interface Case {
      rule: JwtSvidRule;
      name: string;
      token: () => string | Promise<string>;
      audience?: string[];
      message?: RegExp;
      insecureToo?: boolean;
    }
    const es = (header: Record<string, unknown>, c: unknown) => rawToken({ alg: 'ES256', kid: KIDS.ES256, ...header }, c, keys.ES256!.privateKey, 'ES256');
    const cases: Case[] = [
      { rule: 'compact-jws', name: 'two parts', token: () => 'a.b', message: /2 dot-separated parts/, insecureToo: true },
      { rule: 'compact-jws', name: 'five parts (JWE)', token: () => 'a.b.c.d.e', insecureToo: true },
      { rule: 'compact-jws', name: 'empty string', token: () => '' },
      { rule: 'compact-jws', name: 'empty signature', token: () => es256().replace(/\.[^.]+$/, '.'), message: /empty or not base64url/ },
      { rule: 'compact-jws', name: 'header not base64url JSON', token: () => `${b64('{nope')}.${b64(claims())}.AAAA`, message: /header is not base64url-encoded JSON/ },
      { rule: 'compact-jws', name: 'header a JSON array', token: () => `${b64([1])}.${b64(claims())}.AAAA`, message: /header is not a JSON object/ },
      { rule: 'compact-jws', name: 'claims a JSON string', token: () => es({}, '"hello"'), message: /claims is not a JSON object/ },
      { rule: 'compact-jws', name: 'padding characters', token: () => `${es256()}=`, insecureToo: true },
      { rule: 'alg-allowed', name: 'alg none', token: () => `${b64({ alg: 'none', kid: 'k' })}.${b64(claims())}.`, message: /alg is "none"/, insecureToo: true },
      { rule: 'alg-allowed', name: 'HS256', token: () => new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: KIDS.ES256 }).sign(new Uint8Array(32)), message: /"HS256"/ },
      { rule: 'alg-allowed', name: 'EdDSA', token: () => rawToken({ alg: 'EdDSA', kid: 'k' }, claims(), undefined) },
      { rule: 'alg-allowed', name: 'missing alg', token: () => rawToken({ kid: 'k' }, claims(), undefined), message: /alg is undefined/ },
      { rule: 'alg-allowed', name: 'lower-case es256', token: () => rawToken({ alg: 'es256', kid: 'k' }, claims(), undefined) },
      { rule: 'typ-jwt-or-jose', name: 'typ at+jwt', token: () => es256({}, { typ: 'at+jwt' }), message: /typ is "at\+jwt"/, insecureToo: true },
      { rule: 'typ-jwt-or-jose', name: 'typ wit+jwt', token: () => es256({}, { typ: 'wit+jwt' }) },
      { rule: 'typ-jwt-or-jose', name: 'typ a number', token: () => es256({}, { typ: 1 }) },
      { rule: 'header-members', name: 'jku header', token: () => es256({}, { jku: 'https://evil.example/jwks' }), message: /"jku"; a JWT-SVID header may hold only alg, kid and typ/, insecureToo: true },
      { rule: 'header-members', name: 'crit header', token: () => es256({}, { crit: ['exp'] }) },
      { rule: 'header-members', name: 'embedded jwk', token: () => es256({}, { jwk: jwkFromPublicKey(keys.STRANGER!.publicKey) }) },
      { rule: 'kid-present', name: 'no kid', token: () => es256({}, { kid: undefined }), message: /no kid/, insecureToo: true },
      { rule: 'kid-present', name: 'empty kid', token: () => es256({}, { kid: '' }) },
      { rule: 'kid-present', name: 'numeric kid', token: () => es256({}, { kid: 7 }) },
      { rule: 'sub-spiffe-id', name: 'no sub', token: () => es256({ sub: undefined }), message: /sub claim is missing/, insecureToo: true },
      { rule: 'sub-spiffe-id', name: 'sub not a SPIFFE ID', token: () => es256({ sub: 'alice@example.org' }), message: /"alice@example.org" is not a valid SPIFFE ID/ },
      { rule: 'sub-spiffe-id', name: 'sub with upper-case trust domain', token: () => es256({ sub: 'spiffe://Example.org/x' }) },
      { rule: 'sub-spiffe-id', name: 'sub a number', token: () => es256({ sub: 42 }) },
      { rule: 'aud-present', name: 'no aud', token: () => es256({ aud: undefined }), message: /aud claim is missing/, insecureToo: true },
      { rule: 'aud-present', name: 'empty aud array', token: () => es256({ aud: [] }) },
      { rule: 'aud-present', name: 'empty aud string', token: () => es256({ aud: '' }) },
      { rule: 'aud-present', name: 'aud of numbers', token: () => es256({ aud: [1] }) },
      { rule: 'exp-present', name: 'no exp', token: () => es256({ exp: undefined }), message: /exp claim is missing; JWT-SVIDs must expire/, insecureToo: true },
      { rule: 'exp-present', name: 'exp a string', token: () => es256({ exp: String(now() + 60) }), message: /not a NumericDate/ },
      { rule: 'time-claims', name: 'iat a string', token: () => es256({ iat: 'yesterday' }), insecureToo: true },
      { rule: 'time-claims', name: 'nbf null', token: () => es256({ nbf: null }) },
      { rule: 'bundle-for-sub-trust-domain', name: 'unknown trust domain', token: () => es256({ sub: 'spiffe://unknown.org/x' }), message: /no JWT bundle for unknown\.org/ },
      { rule: 'key-for-kid', name: 'unknown kid', token: () => es256({}, { kid: 'nope' }), message: /has no key with ID "nope"/ },
      { rule: 'key-for-kid', name: "a kid of another trust domain's bundle", token: () => es256({}, { kid: KIDS.OTHER }) },
      { rule: 'signature', name: 'tampered claims', token: () => { const [h, , s] = es256().split('.'); return `${h}.${b64(claims({ sub: 'spiffe://example.org/admin' }))}.${s}`; }, message: /signature does not verify/ },
      { rule: 'signature', name: 'signed by a stranger with a known kid', token: () => rawToken({ alg: 'ES256', kid: KIDS.ES256 }, claims(), keys.STRANGER!.privateKey) },
      { rule: 'signature', name: 'RS256 header on an EC key', token: () => rawToken({ alg: 'RS256', kid: KIDS.ES256 }, claims(), keys.RS!.privateKey), message: /RS256 needs an RSA key but the key is ec/ },
      { rule: 'signature', name: 'ES384 header on a P-256 key', token: () => rawToken({ alg: 'ES384', kid: KIDS.ES256 }, claims(), keys.ES384!.privateKey), message: /needs an EC P-384 key/ },
      { rule: 'signature', name: 'RSA key under 2048 bits', token: () => rawToken({ alg: 'RS256', kid: KIDS.SMALL }, claims(), rsa1024.privateKey), message: /at least 2048 bits/ },
      { rule: 'signature', name: 'DER ECDSA signature instead of JOSE r||s', token: () => { const input = `${b64({ alg: 'ES256', kid: KIDS.ES256 })}.${b64(claims())}`; return `${input}.${sign('sha256', Buffer.from(input), keys.ES256!.privateKey).toString('base64url')}`; } },
      { rule: 'signature', name: 'PS256 signature under RS256', token: () => { const t = rawToken({ alg: 'PS256', kid: KIDS.RS }, claims(), keys.RS!.privateKey); const [, p, s] = t.split('.'); return `${b64({ alg: 'RS256', kid: KIDS.RS })}.${p}.${s}`; } },
      { rule: 'not-expired', name: 'expired an hour ago', token: () => es256({ exp: now() - 3600 }), message: /expired at/, insecureToo: true },
      { rule: 'not-before', name: 'nbf in an hour', token: () => es256({ nbf: now() + 3600 }), message: /nbf is .* in the future/, insecureToo: true },
      { rule: 'not-before', name: 'iat in an hour', token: () => es256({ iat: now() + 3600 }), message: /iat is/ },
      { rule: 'aud-match', name: 'another audience', token: () => es256({ aud: ['billing'] }), message: /does not include "reports-api"/, insecureToo: true },
      { rule: 'aud-match', name: 'none of several', token: () => es256({ aud: 'billing' }), audience: ['a', 'b'], message: /any of the expected audiences/ },
      { rule: 'aud-match', name: 'no expected audience', token: () => es256(), audience: [], message: /No expected audience/, insecureToo: true },
    ];

    for (const k of cases) {
      const code = JWT_SVID_RULES.find((r) => r.name === k.rule)!.code;
      it(`${k.rule}: ${k.name} → ${code}`, async () => {
        const token = await k.token();
        const e = errorOf(() => parseAndValidateJwtSvid(token, set, k.audience ?? AUD));
        expect(e.code).to.equal(code);
        expect(e.details.rule).to.equal(k.rule);
        if (k.message) expect(e.message).to.match(k.message);
        const sig = token.split('.')[2];
        if (sig && sig.length > 8) expect(e.message).to.not.contain(sig);
        if (k.insecureToo) expect(errorOf(() => parseInsecureJwtSvid(token, k.audience ?? AUD)).details.rule).to.equal(k.rule);
      });
    }

    it('every rule of JWT_SVID_RULES has a failing case, and names are unique', () => {
      const names = JWT_SVID_RULES.map((r) => r.name);
      expect(new Set(names).size).to.equal(names.length);
      const covered = new Set(cases.map((k) => k.rule));
      expect(names.filter((n) => !covered.has(n))).to.deep.equal([]);
    });

    it('refuses a negative clock skew as a programming error', () => {
      expect(() => parseAndValidateJwtSvid(es256(), set, AUD, { clockSkewSeconds: -1 })).to.throw(RangeError);
    });
  });

  describe('properties', () => {
    it('throws nothing but WritError on arbitrary strings and on three-part tokens of arbitrary JSON', () => {
      const json = fc.oneof(fc.json(), fc.dictionary(fc.constantFrom('alg', 'kid', 'typ', 'sub', 'aud', 'exp', 'iat', 'nbf', 'x'), fc.jsonValue()).map((o) => JSON.stringify(o)));
      const tokens = fc.oneof(
        fc.string(),
        fc.string({ unit: fc.constantFrom(...'ab.-_=AZ09'.split('')) }),
        fc.tuple(json, json, fc.base64String()).map(([h, c, s]) => `${b64(h)}.${b64(c)}.${s}`),
        fc.tuple(fc.constantFrom(...JWT_SVID_ALGORITHMS, 'none', 'HS256'), fc.jsonValue(), fc.jsonValue(), fc.jsonValue()).map(([alg, sub, aud, exp]) =>
          rawToken({ alg, kid: KIDS.ES256 }, { sub, aud, exp }, undefined),
        ),
      );
      fc.assert(
        fc.property(tokens, (t) => {
          for (const fn of [() => parseAndValidateJwtSvid(t, set, AUD), () => parseInsecureJwtSvid(t, AUD)]) {
            try {
              fn();
            } catch (e) {
              if (!isWritError(e)) throw e;
              expect(e.code).to.match(/^ERR_SVID_JWT_/);
            }
          }
        }),
        { numRuns: 500 },
      );
    });

    it('a one-character change to a valid token never yields different claims', () => {
      const token = es256({ 'writ.dev/task': 'abc' });
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
      fc.assert(
        fc.property(fc.nat(token.length - 1), fc.constantFrom(...alphabet.split('')), (i, ch) => {
          const t = token.slice(0, i) + ch + token.slice(i + 1);
          try {
            const svid = parseAndValidateJwtSvid(t, set, AUD);
            // Only changes to unused bits of a final base64url character can keep a token valid.
            expect(svid.claims).to.deep.equal(parseAndValidateJwtSvid(token, set, AUD).claims);
          } catch (e) {
            if (!isWritError(e)) throw e;
          }
        }),
        { numRuns: 300 },
      );
    });

    it('what is signed is what is read: random subjects, audiences and claims round-trip', () => {
      const seg = fc.string({ unit: fc.constantFrom(...'abcXYZ019._-'.split('')), minLength: 1, maxLength: 10 }).filter((s) => s !== '.' && s !== '..');
      fc.assert(
        fc.property(fc.array(seg, { minLength: 1, maxLength: 4 }), fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 8 }).map((k) => `x-${k}`), fc.jsonValue()), (segs, aud, extra) => {
          const sub = `spiffe://example.org/${segs.join('/')}`;
          const c = { ...extra, sub, aud, exp: now() + 60 };
          const svid = parseAndValidateJwtSvid(rawToken({ alg: 'ES256', kid: KIDS.ES256 }, c, keys.ES256!.privateKey), set, [aud[aud.length - 1]!]);
          expect(svid.id.toString()).to.equal(sub);
          expect(svid.audience).to.deep.equal(aud);
          expect(svid.claims).to.deep.equal(JSON.parse(JSON.stringify(c)));
        }),
        { numRuns: 100 },
      );
    });
  });
});
