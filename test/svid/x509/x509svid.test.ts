import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { BundleSet, X509Bundle } from '../../../src/bundle/index.js';
import { isWritError } from '../../../src/errors.js';
import { parseTrustDomain } from '../../../src/spiffeid/index.js';
import { X509_SVID_RULES, type X509SvidRule, parseX509Svid, verifyX509Svid } from '../../../src/svid/index.js';
import { EKU, KU, encodeCrlPem, type TestCert, type TestKey, codeOf, errorOf, makeCert, makeCrl, makeRoot, newKey, unknownCriticalExtension } from '../pki.js';

const td = parseTrustDomain('example.org');
const otherTd = parseTrustDomain('other.org');
const HOUR = 3600_000;
const BOTH = [EKU.serverAuth, EKU.clientAuth];

describe('svid/x509', () => {
  let root: TestCert;
  let rootRsa: TestCert;
  let rootOther: TestCert;
  let inter: TestCert;
  let leaf: TestCert; // spiffe://example.org/workload, signed by root
  let leafViaInter: TestCert;
  let leafRsa: TestCert;
  let leafOther: TestCert; // spiffe://other.org/w, signed by rootOther
  let strangerKey: TestKey;
  let bundle: X509Bundle;
  let set: BundleSet;
  const bad: Partial<Record<string, TestCert>> = {};

  before(async function () {
    this.timeout(60_000);
    [root, rootRsa, rootOther, strangerKey] = await Promise.all([makeRoot('example.org'), makeRoot('example.org', 'RSA-2048'), makeRoot('other.org'), newKey()]);
    inter = await makeCert({ uris: ['spiffe://example.org'], ca: true }, await newKey('P-384'), root);
    const mk = async (spec: Parameters<typeof makeCert>[0], issuer: TestCert = root, kind: Parameters<typeof newKey>[0] = 'P-256') =>
      makeCert({ uris: ['spiffe://example.org/workload'], eku: BOTH, ...spec }, await newKey(kind), issuer);
    [leaf, leafViaInter, leafRsa, leafOther] = await Promise.all([
      mk({}),
      mk({ uris: ['spiffe://example.org/via/inter'] }, inter),
      mk({ uris: ['spiffe://example.org/rsa'] }, rootRsa, 'RSA-2048'),
      mk({ uris: ['spiffe://other.org/w'] }, rootOther),
    ]);
    const specs: Record<string, () => Promise<TestCert>> = {
      noUri: () => mk({ uris: [], dns: ['w.example.org'] }),
      twoUris: () => mk({ uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }),
      httpsUri: () => mk({ uris: ['https://example.org/a'] }),
      upperTd: () => mk({ uris: ['spiffe://Example.org/a'] }),
      tdOnly: () => mk({ uris: ['spiffe://example.org'] }),
      caLeaf: () => mk({ ca: true, keyUsage: KU.digitalSignature }),
      noKu: () => mk({ keyUsage: null }),
      kuNoDs: () => mk({ keyUsage: KU.keyEncipherment }),
      kuCertSign: () => mk({ keyUsage: KU.digitalSignature | KU.keyCertSign }),
      kuCrlSign: () => mk({ keyUsage: KU.digitalSignature | KU.cRLSign }),
      ekuServerOnly: () => mk({ eku: [EKU.serverAuth] }),
      ekuCodeSigning: () => mk({ eku: [EKU.codeSigning] }),
      ekuAny: () => mk({ eku: ['2.5.29.37.0'] }),
      noEku: () => mk({ eku: null }),
      noBc: () => mk({ ca: null }),
      interNoCertSign: async () => makeCert({ uris: ['spiffe://example.org'], ca: true, keyUsage: KU.digitalSignature }, await newKey(), root),
      expired: () => mk({ notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }),
      future: () => mk({ notBefore: new Date(Date.now() + HOUR), notAfter: new Date(Date.now() + 2 * HOUR) }),
      critical: () => mk({ extensions: [unknownCriticalExtension()] }),
      wrongIssuer: () => mk({}, rootOther), // example.org ID signed by other.org's root
      expiredInter: async () => makeCert({ uris: ['spiffe://example.org'], ca: true, notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }, await newKey(), root),
      expiredRoot: () => makeRoot('example.org', 'P-256', { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }),
      pathLenRoot: () => makeRoot('example.org', 'P-256', { pathLen: 0 }),
      notCaRoot: () => makeRoot('example.org', 'P-256', { ca: false, keyUsage: KU.keyCertSign }),
    };
    const built = await Promise.all(Object.entries(specs).map(async ([k, f]) => [k, await f()] as const));
    for (const [k, c] of built) bad[k] = c;
    bad.leafViaExpiredInter = await mk({}, bad.expiredInter);
    bad.leafOfExpiredRoot = await mk({}, bad.expiredRoot);
    bad.pathLenInter = await makeCert({ uris: ['spiffe://example.org'], ca: true }, await newKey(), bad.pathLenRoot);
    bad.leafTooDeep = await mk({}, bad.pathLenInter);
    bad.leafOfNotCaRoot = await mk({}, bad.notCaRoot);
    bundle = new X509Bundle(td, [root.der, rootRsa.der]);
    set = new BundleSet([bundle, new X509Bundle(otherTd, [rootOther.der])]);
  });

  const c = (k: string): TestCert => {
    const v = bad[k];
    if (!v) throw new Error(`no fixture ${k}`);
    return v;
  };

  describe('parseX509Svid', () => {
    it('parses a leaf and its private key in every accepted form', () => {
      const forms = [
        () => parseX509Svid([leaf.der], leaf.key.pkcs8),
        () => parseX509Svid(leaf.pem, leaf.key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
        () => parseX509Svid(leaf.der, leaf.key.privateKey),
        () => parseX509Svid(Buffer.from(leaf.der), leaf.key.privateKey.export({ type: 'sec1', format: 'pem' }).toString()),
        () => parseX509Svid([leaf.der], Buffer.from(leaf.key.privateKey.export({ type: 'pkcs8', format: 'pem' }))),
      ];
      for (const f of forms) {
        const svid = f();
        expect(svid.id.toString()).to.equal('spiffe://example.org/workload');
        expect(svid.certificates).to.have.length(1);
        expect(svid.certificates[0]!.equals(leaf.der)).to.equal(true);
        expect(svid.privateKey!.type).to.equal('private');
      }
    });

    it('parses a chain with intermediates, keeps the hint, and marshals back', () => {
      const svid = parseX509Svid([leafViaInter.der, inter.der], leafViaInter.key.pkcs8, { hint: 'internal' });
      expect(svid.id.toString()).to.equal('spiffe://example.org/via/inter');
      expect(svid.hint).to.equal('internal');
      expect(svid.expiresAt.getTime()).to.equal(leafViaInter.cert.notAfter.getTime());
      const again = parseX509Svid(svid.chainPem(), svid.privateKeyPem());
      expect(again.chainDer().equals(Buffer.concat([leafViaInter.der, inter.der]))).to.equal(true);
      expect(parseX509Svid(svid.chainDer(), svid.privateKeyDer()).certificates).to.have.length(2);
      expect(svid.leaf.subject).to.equal(leafViaInter.cert.subject.replace(/, /g, '\n'));
    });

    it('accepts a leaf without the key and without extKeyUsage or basicConstraints, or with anyExtendedKeyUsage', () => {
      for (const k of ['noEku', 'noBc', 'ekuAny']) expect(parseX509Svid([c(k).der]).id.path).to.equal('/workload');
      expect(parseX509Svid([leaf.der]).privateKey).to.equal(undefined);
    });
  });

  describe('verifyX509Svid', () => {
    it('verifies a leaf issued by a bundle authority', () => {
      const r = verifyX509Svid([leaf.der], bundle);
      expect(r.id.toString()).to.equal('spiffe://example.org/workload');
      expect(r.verifiedChains).to.have.length(1);
      expect(r.verifiedChains[0]!.map((d) => d.toString('hex'))).to.deep.equal([leaf.der, root.der].map((d) => d.toString('hex')));
    });

    it('verifies a chain through an intermediate, in any order, with extra certificates and with the root included', () => {
      const expected = [leafViaInter.der, inter.der, root.der].map((d) => d.toString('hex'));
      for (const chain of [
        [leafViaInter.der, inter.der],
        [leafViaInter.der, rootOther.der, inter.der],
        [inter.der, leafViaInter.der].reverse(),
        [leafViaInter.der, inter.der, root.der],
        Buffer.concat([leafViaInter.der, inter.der]),
        leafViaInter.pem + inter.pem,
      ]) {
        const r = verifyX509Svid(chain, set);
        expect(r.verifiedChains.map((ch) => ch.map((d) => d.toString('hex')))).to.deep.include(expected);
      }
    });

    it('verifies RSA chains', () => {
      expect(verifyX509Svid([leafRsa.der], bundle).id.path).to.equal('/rsa');
    });

    it("uses the bundle of the leaf's own trust domain only", () => {
      expect(verifyX509Svid([leafOther.der], set).id.trustDomain.name).to.equal('other.org');
      // Signed by other.org's root, which the set holds, but the leaf names example.org.
      const e = errorOf(() => verifyX509Svid([c('wrongIssuer').der], set));
      expect(e.code).to.equal('ERR_SVID_X509_CHAIN');
      expect(e.details.rule).to.equal('chain-to-authority');
      // A bundle of example.org is not a source for other.org.
      expect(codeOf(() => verifyX509Svid([leafOther.der], bundle))).to.equal('ERR_SVID_X509_NO_BUNDLE');
    });

    it('checks validity at opts.now for every certificate', () => {
      expect(verifyX509Svid([leaf.der], bundle, { now: new Date(Date.now() + HOUR) }).id.path).to.equal('/workload');
      expect(codeOf(() => verifyX509Svid([leaf.der], bundle, { now: new Date(Date.now() + 48 * HOUR) }))).to.equal('ERR_SVID_X509_EXPIRED');
      expect(codeOf(() => verifyX509Svid([leaf.der], bundle, { now: new Date(Date.now() - 2 * HOUR) }))).to.equal('ERR_SVID_X509_NOT_YET_VALID');
      const e = errorOf(() => verifyX509Svid([c('leafOfExpiredRoot').der], new X509Bundle(td, [c('expiredRoot').der])));
      expect(e.code).to.equal('ERR_SVID_X509_EXPIRED');
      expect(e.details.certificate).to.equal('authority');
    });

    it('accepts a CRL that does not list the certificate, or that is not signed by its issuer', async () => {
      const unrelated = await makeCrl(root, ['0123456789abcdef']);
      const forged = await makeCrl(root, [leaf.cert.serialNumber], rootOther.key); // root's name, other key
      const otherIssuer = await makeCrl(rootOther, [leaf.cert.serialNumber]);
      expect(verifyX509Svid([leaf.der], bundle, { crls: [unrelated, forged, otherIssuer] }).id.path).to.equal('/workload');
    });
  });

  describe('rules', () => {
    interface Case {
      rule: X509SvidRule;
      name: string;
      run: () => unknown;
      message?: RegExp;
    }
    const verify = (certs: () => Buffer[], opts: () => Parameters<typeof verifyX509Svid>[2] = () => ({})) => () => verifyX509Svid(certs(), set, opts());
    const cases: Case[] = [
      { rule: 'chain-not-empty', name: 'empty chain', run: () => parseX509Svid([]) },
      { rule: 'chain-not-empty', name: 'empty PEM', run: () => verifyX509Svid('', set) },
      { rule: 'certificate-der', name: 'garbage DER', run: () => parseX509Svid([Buffer.from('junk')]), message: /The leaf certificate is not a valid DER/ },
      { rule: 'certificate-der', name: 'garbage intermediate', run: () => parseX509Svid([leaf.der, Buffer.from([0x30, 0])]), message: /Certificate 2 of the chain/ },
      { rule: 'certificate-der', name: 'PEM of a key', run: () => parseX509Svid('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n') },
      { rule: 'certificate-der', name: 'truncated concatenated DER', run: () => parseX509Svid(leaf.der.subarray(0, 50)) },
      { rule: 'leaf-one-uri-san', name: 'no URI SAN', run: () => parseX509Svid([c('noUri').der]), message: /has no URI SAN; an X509-SVID has exactly one/ },
      { rule: 'leaf-one-uri-san', name: 'two URI SANs', run: () => verifyX509Svid([c('twoUris').der], set), message: /has 2 URI SANs/ },
      { rule: 'leaf-spiffe-id', name: 'https URI', run: () => parseX509Svid([c('httpsUri').der]), message: /"https:\/\/example.org\/a" .* not a valid SPIFFE ID/ },
      { rule: 'leaf-spiffe-id', name: 'upper-case trust domain', run: () => parseX509Svid([c('upperTd').der]) },
      { rule: 'leaf-id-has-path', name: 'trust domain ID', run: () => parseX509Svid([c('tdOnly').der]), message: /needs a path/ },
      { rule: 'leaf-not-ca', name: 'CA leaf', run: () => verifyX509Svid([c('caLeaf').der], set) },
      { rule: 'leaf-digital-signature', name: 'no keyUsage', run: () => parseX509Svid([c('noKu').der]), message: /no keyUsage/ },
      { rule: 'leaf-digital-signature', name: 'keyUsage without digitalSignature', run: () => parseX509Svid([c('kuNoDs').der]) },
      { rule: 'leaf-no-cert-sign', name: 'keyCertSign', run: () => parseX509Svid([c('kuCertSign').der]), message: /keyCertSign/ },
      { rule: 'leaf-no-cert-sign', name: 'cRLSign', run: () => verifyX509Svid([c('kuCrlSign').der], set), message: /cRLSign/ },
      { rule: 'leaf-ext-key-usage', name: 'serverAuth only', run: () => parseX509Svid([c('ekuServerOnly').der]), message: /lacks clientAuth/ },
      { rule: 'leaf-ext-key-usage', name: 'codeSigning only', run: () => parseX509Svid([c('ekuCodeSigning').der]), message: /lacks serverAuth and clientAuth/ },
      { rule: 'intermediate-ca', name: 'a leaf as intermediate', run: () => verifyX509Svid([leafViaInter.der, leaf.der], set), message: /Certificate 2 .* not a CA/ },
      { rule: 'intermediate-key-cert-sign', name: 'CA without keyCertSign', run: () => parseX509Svid([leaf.der, c('interNoCertSign').der]) },
      { rule: 'private-key-valid', name: 'garbage DER key', run: () => parseX509Svid([leaf.der], Buffer.from('junk')) },
      { rule: 'private-key-valid', name: 'garbage PEM key', run: () => parseX509Svid([leaf.der], 'not a key') },
      { rule: 'private-key-valid', name: 'a public key', run: () => parseX509Svid([leaf.der], leaf.key.publicKey) },
      { rule: 'private-key-matches-leaf', name: "another key", run: () => parseX509Svid([leaf.der], strangerKey.pkcs8) },
      { rule: 'private-key-matches-leaf', name: "the issuer's key", run: () => parseX509Svid([leafViaInter.der, inter.der], inter.key.privateKey) },
      { rule: 'bundle-for-leaf-trust-domain', name: 'no bundle in the set', run: () => verifyX509Svid([leafOther.der], new BundleSet([bundle])), message: /no X\.509 bundle for other\.org/ },
      { rule: 'bundle-for-leaf-trust-domain', name: 'a bundle of another trust domain', run: () => verifyX509Svid([leafOther.der], bundle) },
      { rule: 'not-expired', name: 'expired leaf', run: verify(() => [c('expired').der]), message: /The leaf certificate expired at/ },
      { rule: 'not-expired', name: 'expired intermediate', run: verify(() => [c('leafViaExpiredInter').der, c('expiredInter').der]), message: /Certificate 2 of the chain expired/ },
      { rule: 'not-expired', name: 'expired authority', run: () => verifyX509Svid([c('leafOfExpiredRoot').der], new X509Bundle(td, [c('expiredRoot').der])), message: /bundle authority/ },
      { rule: 'not-yet-valid', name: 'leaf from the future', run: verify(() => [c('future').der]), message: /not valid before/ },
      { rule: 'not-yet-valid', name: 'now before notBefore', run: verify(() => [leaf.der], () => ({ now: new Date(Date.now() - 3 * HOUR) })) },
      { rule: 'critical-extensions', name: 'unknown critical extension', run: verify(() => [c('critical').der]), message: /critical extension 1\.3\.6\.1\.4\.1\.99999\.1/ },
      { rule: 'chain-to-authority', name: 'signed by another trust domain', run: verify(() => [c('wrongIssuer').der]), message: /does not chain to an authority of the X\.509 bundle for example\.org/ },
      { rule: 'chain-to-authority', name: 'intermediate missing', run: verify(() => [leafViaInter.der]) },
      { rule: 'chain-to-authority', name: 'bundle without authorities', run: () => verifyX509Svid([leaf.der], new X509Bundle(td)), message: /holds no CA certificate/ },
      { rule: 'chain-to-authority', name: 'bundle authority that is not a CA', run: () => verifyX509Svid([c('leafOfNotCaRoot').der], new X509Bundle(td, [c('notCaRoot').der])) },
      { rule: 'path-length', name: 'pathLen 0 with an intermediate below', run: () => verifyX509Svid([c('leafTooDeep').der, c('pathLenInter').der], new X509Bundle(td, [c('pathLenRoot').der])) },
      { rule: 'crl-der', name: 'garbage CRL', run: verify(() => [leaf.der], () => ({ crls: [Buffer.from('junk')] })), message: /CRL 1 is not a well-formed DER CRL/ },
      { rule: 'crl-der', name: 'a certificate given as CRL', run: verify(() => [leaf.der], () => ({ crls: [root.der] })) },
    ];
    const revokedCases: Array<{ name: string; chain: () => Buffer[]; crl: () => Promise<Buffer>; message: RegExp }> = [
      { name: 'revoked leaf', chain: () => [leaf.der], crl: () => makeCrl(root, [leaf.cert.serialNumber]), message: /The leaf certificate \(serial [0-9a-f]+\) is revoked by CRL 2/ },
      { name: 'revoked intermediate', chain: () => [leafViaInter.der, inter.der], crl: () => makeCrl(root, [inter.cert.serialNumber]), message: /Certificate 2 of the chain .* revoked/ },
      { name: 'leaf revoked by its intermediate', chain: () => [leafViaInter.der, inter.der], crl: () => makeCrl(inter, [leafViaInter.cert.serialNumber]), message: /leaf certificate/ },
      { name: 'revoked RSA leaf', chain: () => [leafRsa.der], crl: () => makeCrl(rootRsa, ['05', leafRsa.cert.serialNumber]), message: /revoked/ },
    ];

    for (const k of cases) {
      const code = X509_SVID_RULES.find((r) => r.name === k.rule)!.code;
      it(`${k.rule}: ${k.name} → ${code}`, () => {
        const e = errorOf(k.run);
        expect(e.code).to.equal(code);
        expect(e.details.rule).to.equal(k.rule);
        if (k.message) expect(e.message).to.match(k.message);
      });
    }
    for (const k of revokedCases) {
      it(`not-revoked: ${k.name} → ERR_SVID_X509_REVOKED`, async () => {
        const [unrelated, crl] = await Promise.all([makeCrl(rootOther, ['01']), k.crl()]);
        const e = errorOf(() => verifyX509Svid(k.chain(), set, { crls: [unrelated, crl] }));
        expect(e.code).to.equal('ERR_SVID_X509_REVOKED');
        expect(e.details.rule).to.equal('not-revoked');
        expect(e.message).to.match(k.message);
      });
    }

    it('every rule of X509_SVID_RULES has a failing case, and names are unique', () => {
      const names = X509_SVID_RULES.map((r) => r.name);
      expect(new Set(names).size).to.equal(names.length);
      const covered = new Set<string>([...cases.map((k) => k.rule), 'not-revoked']);
      expect(names.filter((n) => !covered.has(n))).to.deep.equal([]);
      for (const r of X509_SVID_RULES) expect(r.description).to.match(/\.$/);
    });
  });

  describe('agreement with openssl verify -x509_strict (an independent RFC 5280 path validator)', () => {
    const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
    interface Peer {
      name: string;
      chain: () => TestCert[];
      roots: () => TestCert[];
      crl?: () => Promise<Buffer>;
    }
    const peers: Peer[] = [
      { name: 'leaf signed by the root', chain: () => [leaf], roots: () => [root] },
      { name: 'leaf through an intermediate', chain: () => [leafViaInter, inter], roots: () => [root, rootRsa] },
      { name: 'RSA leaf', chain: () => [leafRsa], roots: () => [rootRsa] },
      { name: 'expired leaf', chain: () => [c('expired')], roots: () => [root] },
      { name: 'leaf from the future', chain: () => [c('future')], roots: () => [root] },
      { name: 'expired intermediate', chain: () => [c('leafViaExpiredInter'), c('expiredInter')], roots: () => [root] },
      { name: 'expired root', chain: () => [c('leafOfExpiredRoot')], roots: () => [c('expiredRoot')] },
      { name: 'signed by another root', chain: () => [c('wrongIssuer')], roots: () => [root] },
      { name: 'intermediate missing', chain: () => [leafViaInter], roots: () => [root] },
      { name: 'path length exceeded', chain: () => [c('leafTooDeep'), c('pathLenInter')], roots: () => [c('pathLenRoot')] },
      { name: 'unknown critical extension', chain: () => [c('critical')], roots: () => [root] },
      { name: 'revoked leaf', chain: () => [leaf], roots: () => [root], crl: () => makeCrl(root, [leaf.cert.serialNumber]) },
      { name: 'CRL listing another serial', chain: () => [leaf], roots: () => [root], crl: () => makeCrl(root, ['0badc0de']) },
    ];
    for (const p of peers) {
      it(`${p.name}: same verdict`, async function () {
        if (!hasOpenssl) this.skip(); // install with: apt-get install -y openssl
        const dir = mkdtempSync(join(tmpdir(), 'writ-x509-'));
        try {
          const chain = p.chain();
          const crl = p.crl ? await p.crl() : undefined;
          writeFileSync(join(dir, 'leaf.pem'), chain[0]!.pem);
          writeFileSync(join(dir, 'roots.pem'), p.roots().map((r) => r.pem).join('\n'));
          const args = ['verify', '-x509_strict', '-CAfile', join(dir, 'roots.pem')];
          if (chain.length > 1) {
            writeFileSync(join(dir, 'inter.pem'), chain.slice(1).map((x) => x.pem).join('\n'));
            args.push('-untrusted', join(dir, 'inter.pem'));
          }
          if (crl) {
            writeFileSync(join(dir, 'crl.pem'), encodeCrlPem(crl));
            args.push('-crl_check', '-CRLfile', join(dir, 'crl.pem'));
          }
          args.push(join(dir, 'leaf.pem'));
          const openssl = spawnSync('openssl', args, { encoding: 'utf8' });
          const ours = codeOf(() => verifyX509Svid(chain.map((x) => x.der), new X509Bundle(td, p.roots().map((r) => r.der)), crl ? { crls: [crl] } : {}));
          expect(ours === undefined, `openssl: ${openssl.stdout}${openssl.stderr}; ours: ${ours}`).to.equal(openssl.status === 0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });

  describe('properties', () => {
    it('parse and verify throw nothing but WritError on arbitrary bytes, strings and mutated certificates', () => {
      const leafBytes = leafViaInter.der;
      const inputs = fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((b) => [Buffer.from(b)]),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc.string(),
        fc.array(fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), { maxLength: 3 }),
        fc.tuple(fc.nat(leafBytes.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
          const m = Buffer.from(leafBytes);
          m[i] = v;
          return [m, inter.der];
        }),
      );
      fc.assert(
        fc.property(inputs, fc.option(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), { nil: undefined }), (chain, crl) => {
          for (const fn of [() => parseX509Svid(chain), () => verifyX509Svid(chain, set, crl ? { crls: [crl] } : {})]) {
            try {
              fn();
            } catch (e) {
              if (!isWritError(e)) throw e;
              expect(e.code).to.match(/^ERR_SVID_X509_/);
            }
          }
        }),
        { numRuns: 400 },
      );
    });

    it('a valid SVID verifies at every instant inside the validity of its chain, and only then', () => {
      const from = Math.max(leafViaInter.cert.notBefore.getTime(), inter.cert.notBefore.getTime(), root.cert.notBefore.getTime());
      const to = Math.min(leafViaInter.cert.notAfter.getTime(), inter.cert.notAfter.getTime(), root.cert.notAfter.getTime());
      fc.assert(
        fc.property(fc.integer({ min: from - 10 * HOUR, max: to + 10 * HOUR }), (t) => {
          const code = codeOf(() => verifyX509Svid([leafViaInter.der, inter.der], set, { now: new Date(t) }));
          if (t >= from && t <= to) expect(code).to.equal(undefined);
          else expect(code).to.be.oneOf(['ERR_SVID_X509_EXPIRED', 'ERR_SVID_X509_NOT_YET_VALID']);
        }),
        { numRuns: 100 },
      );
    });
  });

});
