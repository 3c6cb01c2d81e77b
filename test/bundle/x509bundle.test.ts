import { expect } from 'chai';
import fc from 'fast-check';
import { X509Bundle, decodePem, encodePem } from '../../src/bundle/index.js';
import { isWritError } from '../../src/errors.js';
import { parseTrustDomain } from '../../src/spiffeid/index.js';
import { type TestCert, codeOf, errorOf, makeRoot } from '../svid/pki.js';

const td = parseTrustDomain('example.org');
const other = parseTrustDomain('other.org');

describe('bundle: X509Bundle and PEM', () => {
  let a: TestCert;
  let b: TestCert;
  let c: TestCert;
  before(async () => {
    [a, b, c] = await Promise.all([makeRoot('example.org'), makeRoot('example.org', 'RSA-2048'), makeRoot('example.org', 'P-384')]);
  });

  it('round-trips through PEM and DER, in order, without duplicates', () => {
    const bundle = new X509Bundle(td, [a.der, b.der, a.der, c.der]);
    expect(bundle.size).to.equal(3);
    expect(bundle.authorities().map((d) => d.toString('hex'))).to.deep.equal([a.der, b.der, c.der].map((d) => d.toString('hex')));
    const fromPem = X509Bundle.parsePem(td, bundle.toPem());
    const fromDer = X509Bundle.parseDer(td, bundle.toDer());
    expect(fromPem.equals(bundle)).to.equal(true);
    expect(fromDer.equals(bundle)).to.equal(true);
    expect(X509Bundle.parsePem(td, Buffer.from(bundle.toPem())).equals(bundle)).to.equal(true);
    expect(bundle.toPem()).to.equal(a.pem.replace(/\r\n/g, '\n').trimEnd() + '\n' + b.pem.replace(/\r\n/g, '\n').trimEnd() + '\n' + c.pem.replace(/\r\n/g, '\n').trimEnd() + '\n');
  });

  it('accepts PEM written by other tools: CRLF line ends, blank lines between blocks', () => {
    const text = `\r\n${a.pem.replace(/\n/g, '\r\n')}\r\n\r\n${b.pem}\n\n`;
    expect(X509Bundle.parsePem(td, text).size).to.equal(2);
  });

  it('adds, finds and removes authorities', () => {
    const bundle = new X509Bundle(td);
    expect(bundle.isEmpty()).to.equal(true);
    bundle.addAuthority(a.der);
    bundle.addAuthority(a.der);
    expect(bundle.hasAuthority(a.der)).to.equal(true);
    expect(bundle.hasAuthority(b.der)).to.equal(false);
    expect(bundle.removeAuthority(b.der)).to.equal(false);
    expect(bundle.removeAuthority(a.der)).to.equal(true);
    expect(bundle.size).to.equal(0);
    expect(bundle.authorityCertificates()).to.deep.equal([]);
  });

  it('refuses authorities that are not exactly one DER certificate', () => {
    const bundle = new X509Bundle(td);
    expect(codeOf(() => bundle.addAuthority(Buffer.from('not a cert')))).to.equal('ERR_BUNDLE_DER');
    expect(codeOf(() => bundle.addAuthority(Buffer.concat([a.der, b.der])))).to.equal('ERR_BUNDLE_DER');
    expect(codeOf(() => bundle.addAuthority(Buffer.from(a.pem)))).to.equal('ERR_BUNDLE_DER');
    expect(codeOf(() => new X509Bundle(td, [a.der.subarray(0, 100)]))).to.equal('ERR_BUNDLE_DER');
  });

  it('is a source for its own trust domain only', () => {
    const bundle = new X509Bundle(td, [a.der]);
    expect(bundle.getX509BundleForTrustDomain(parseTrustDomain('example.org'))).to.equal(bundle);
    const e = errorOf(() => bundle.getX509BundleForTrustDomain(other));
    expect(e.code).to.equal('ERR_BUNDLE_NOT_FOUND');
    expect(e.message).to.contain('other.org');
  });

  describe('malformed PEM', () => {
    const cases: Array<[string, () => string, string, RegExp]> = [
      ['empty text', () => '', 'ERR_BUNDLE_EMPTY', /holds no certificate/],
      ['only whitespace', () => ' \n\t\r\n', 'ERR_BUNDLE_EMPTY', /holds no certificate/],
      ['garbage', () => 'hello world', 'ERR_BUNDLE_PEM', /PEM block 1 .* at the start/],
      ['garbage after a block', () => `${a.pem}\njunk`, 'ERR_BUNDLE_PEM', /PEM block 2 .* after block 1/],
      ['a comment line before a block', () => `# root\n${a.pem}`, 'ERR_BUNDLE_PEM', /PEM block 1/],
      ['a private key block', () => `${a.pem}${encodePem('PRIVATE KEY', Buffer.from([1, 2, 3]))}`, 'ERR_BUNDLE_PEM', /block 2 .* "PRIVATE KEY" block/],
      ['a CRL block', () => encodePem('X509 CRL', a.der), 'ERR_BUNDLE_PEM', /block 1 .* "X509 CRL"/],
      ['mismatched BEGIN and END', () => a.pem.replace('END CERTIFICATE', 'END X509 CRL'), 'ERR_BUNDLE_PEM', /begins as "CERTIFICATE" but ends as "X509 CRL"/],
      ['missing END', () => a.pem.replace(/-----END CERTIFICATE-----\s*$/, ''), 'ERR_BUNDLE_PEM', /PEM block 1/],
      ['bad base64', () => '-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n', 'ERR_BUNDLE_PEM', /not hold valid base64/],
      ['empty body', () => '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'ERR_BUNDLE_PEM', /not hold valid base64/],
      ['base64 that is not a certificate', () => `${a.pem}${encodePem('CERTIFICATE', Buffer.from('hello'))}`, 'ERR_BUNDLE_PEM', /block 2 .* not a valid X\.509/],
      ['a certificate with trailing bytes', () => encodePem('CERTIFICATE', Buffer.concat([a.der, Buffer.from([0])])), 'ERR_BUNDLE_PEM', /block 1 .* not a valid X\.509/],
      ['two certificates in one block', () => encodePem('CERTIFICATE', Buffer.concat([a.der, b.der])), 'ERR_BUNDLE_PEM', /block 1/],
    ];
    for (const [name, input, code, message] of cases) {
      it(`${name} → ${code}`, () => {
        const e = errorOf(() => X509Bundle.parsePem(td, input()));
        expect(e.code).to.equal(code);
        expect(e.message).to.match(message);
        expect(e.message).to.contain('example.org');
      });
    }
  });

  describe('malformed DER', () => {
    const cases: Array<[string, () => Buffer, string, RegExp]> = [
      ['no bytes', () => Buffer.alloc(0), 'ERR_BUNDLE_EMPTY', /holds no certificate/],
      ['truncated', () => a.der.subarray(0, a.der.length - 1), 'ERR_BUNDLE_DER', /not a sequence of complete DER elements/],
      ['trailing byte', () => Buffer.concat([a.der, Buffer.from([0x30])]), 'ERR_BUNDLE_DER', /complete DER/],
      ['an empty sequence', () => Buffer.from([0x30, 0x00]), 'ERR_BUNDLE_DER', /Certificate 1 .* not a valid X\.509/],
      ['a bad second element', () => Buffer.concat([a.der, Buffer.from([0x02, 0x01, 0x05])]), 'ERR_BUNDLE_DER', /Certificate 2/],
      ['PEM text', () => Buffer.from(a.pem), 'ERR_BUNDLE_DER', /DER/],
      ['indefinite length', () => Buffer.from([0x30, 0x80, 0x00, 0x00]), 'ERR_BUNDLE_DER', /complete DER/],
    ];
    for (const [name, input, code, message] of cases) {
      it(`${name} → ${code}`, () => {
        const e = errorOf(() => X509Bundle.parseDer(td, input()));
        expect(e.code).to.equal(code);
        expect(e.message).to.match(message);
      });
    }
  });

  describe('properties', () => {
    it('parsePem and parseDer throw nothing but WritError on arbitrary input', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' })), fc.uint8Array({ maxLength: 300 }), (s, bytes) => {
          for (const fn of [() => X509Bundle.parsePem(td, s), () => X509Bundle.parseDer(td, bytes), () => decodePem(s, 'ERR_BUNDLE_PEM', 'x')]) {
            try {
              fn();
            } catch (e) {
              if (!isWritError(e)) throw e;
            }
          }
        }),
        { numRuns: 300 },
      );
    });

    it('mutated PEM and DER bundles either parse or fail with a bundle code', () => {
      const pem = new X509Bundle(td, [a.der, b.der]).toPem();
      const der = Buffer.concat([a.der, b.der]);
      fc.assert(
        fc.property(fc.nat(pem.length - 1), fc.string({ minLength: 0, maxLength: 3 }), fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 }), (i, ins, j, byte) => {
          const p = pem.slice(0, i) + ins + pem.slice(i + 1);
          const d = Buffer.from(der);
          d[j] = byte;
          for (const fn of [() => X509Bundle.parsePem(td, p), () => X509Bundle.parseDer(td, d)]) {
            const code = codeOf(fn);
            expect([undefined, 'ERR_BUNDLE_PEM', 'ERR_BUNDLE_DER', 'ERR_BUNDLE_EMPTY']).to.include(code);
          }
        }),
        { numRuns: 300 },
      );
    });

    it('encodePem/decodePem round-trip any bytes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.constantFrom('CERTIFICATE', 'X509 CRL', 'PRIVATE KEY'), (bytes, label) => {
          const [block, ...rest] = decodePem(encodePem(label, bytes), 'ERR_BUNDLE_PEM', 'x');
          expect(rest).to.deep.equal([]);
          expect(block!.label).to.equal(label);
          expect(block!.der.equals(Buffer.from(bytes))).to.equal(true);
        }),
      );
    });
  });
});
