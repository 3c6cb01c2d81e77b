/**
 * The fast CSR path and workload keys, cross-checked with @peculiar/x509, node:crypto's own
 * encoders and `openssl req -verify`.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import fc from 'fast-check';
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCsrDer, newWorkloadKey, verifyCsrDer } from '../../src/ca/index.js';
import { encodePem } from '../../src/bundle/index.js';
import { isWritError } from '../../src/errors.js';
import { codeOf } from '../svid/pki.js';
import { OPENSSL_MISSING, hasOpenssl, openssl, skipBecause, writeFiles } from './helpers.js';

async function peculiarCsr(alg: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams, signing: webcrypto.Algorithm | webcrypto.RsaPssParams | webcrypto.EcdsaParams): Promise<{ der: Buffer; spki: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey(alg as never, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const req = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      keys: keys as never,
      signingAlgorithm: signing as never,
      name: 'CN=ignored, O=anything',
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'ignored.example' }])],
    },
    webcrypto as never,
  );
  return { der: Buffer.from(req.rawData), spki: Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)) };
}

describe('ca/csr', () => {
  it('builds CSRs that @peculiar/x509 reads and verifies, carrying exactly the key', async () => {
    for (const kind of ['ec', 'rsa'] as const) {
      const pair = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
      const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
      const der = buildCsrDer(spki, pair.privateKey);
      const csr = new x509.Pkcs10CertificateRequest(der);
      expect(await csr.verify(webcrypto as never)).to.equal(true);
      expect(Buffer.from(csr.publicKey.rawData).equals(spki)).to.equal(true);
      expect(verifyCsrDer(der).spki.equals(spki)).to.equal(true);
    }
  });

  it('accepts CSRs from another implementation, with subjects and extensions it ignores', async () => {
    const cases = [
      await peculiarCsr({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams),
      await peculiarCsr({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams),
      await peculiarCsr({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }),
    ];
    for (const c of cases) expect(verifyCsrDer(c.der).spki.equals(c.spki)).to.equal(true);
  });

  it('refuses tampered, truncated, trailing-garbage, PSS-signed and oversized CSRs with ERR_CA_CSR', async () => {
    const { der } = await peculiarCsr({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams);
    const tampered = Buffer.from(der);
    tampered[20] = tampered[20]! ^ 0x01;
    expect(codeOf(() => verifyCsrDer(tampered))).to.equal('ERR_CA_CSR');
    expect(codeOf(() => verifyCsrDer(der.subarray(0, der.length - 3)))).to.equal('ERR_CA_CSR');
    expect(codeOf(() => verifyCsrDer(Buffer.concat([der, Buffer.from([0])])))).to.equal('ERR_CA_CSR');
    expect(codeOf(() => verifyCsrDer(Buffer.alloc(20_000, 0x30)))).to.equal('ERR_CA_CSR');
    const pss = await peculiarCsr({ name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSA-PSS', saltLength: 32 } as webcrypto.RsaPssParams);
    expect(codeOf(() => verifyCsrDer(pss.der))).to.equal('ERR_CA_CSR');
  });

  it('throws nothing but WritError on arbitrary bytes and on mutated CSRs', async () => {
    const { der } = await peculiarCsr({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams);
    const check = (b: Uint8Array) => {
      try {
        verifyCsrDer(b);
      } catch (e) {
        expect(isWritError(e), String(e)).to.equal(true);
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), check), { numRuns: 500 });
    fc.assert(
      fc.property(fc.nat({ max: der.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = Buffer.from(der);
        m[i] = m[i]! ^ x;
        check(m);
      }),
      { numRuns: 500 },
    );
  });

  it('is accepted by openssl req -verify', function () {
    if (!hasOpenssl()) skipBecause(this, OPENSSL_MISSING);
    const dir = mkdtempSync(join(tmpdir(), 'writ-csr-'));
    try {
      const k = newWorkloadKey();
      const files = writeFiles(dir, { 'req.pem': encodePem('CERTIFICATE REQUEST', buildCsrDer(k.spki, k.privateKey)) });
      const r = openssl(['req', '-in', files['req.pem']!, '-noout', '-verify'], dir);
      expect(r.status, r.out).to.equal(0);
      expect(r.out).to.match(/verify OK|Certificate request self-signature verify OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ca/workloadkey', () => {
  it('writes PKCS#8 and SPKI DER byte-identical to OpenSSL\'s encoders (2,000 keys, so leading zero bytes occur)', () => {
    for (let i = 0; i < 2000; i++) {
      const k = newWorkloadKey();
      const obj = createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' });
      expect(obj.export({ type: 'pkcs8', format: 'der' }).equals(k.pkcs8)).to.equal(true);
      expect(createPublicKey(obj).export({ type: 'spki', format: 'der' }).equals(k.spki)).to.equal(true);
    }
  });
});
