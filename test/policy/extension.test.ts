import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DELEGATION_OID, DELEGATION_UUID, decodeDelegationFromCertificate, decodeDelegationValue, encodeDelegationExtension, encodeOidContent } from '../../src/policy/index.js';
import { parseX509Svid } from '../../src/svid/index.js';
import { codeOf, sampleDelegation } from './fixtures.js';

const run = promisify(execFile);

/** A self-signed certificate made by openssl with one extra extension given as DER hex. */
async function opensslCert(dir: string, name: string, ext: string | undefined): Promise<string> {
  const out = join(dir, `${name}.pem`);
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${name}.key`), '-out', out, '-subj', '/CN=writ test', '-days', '1'];
  if (ext) args.push('-addext', ext);
  await run('openssl', args, { timeout: 15_000 });
  return readFile(out, 'utf8');
}

describe('policy/extension: the delegation record in an X509-SVID', function () {
  let dir: string;
  const record = sampleDelegation();
  const ext = encodeDelegationExtension(record);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'writ-ext-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('uses the documented OID: 2.25 and the UUID as an integer', () => {
    expect(DELEGATION_OID).to.equal(`2.25.${BigInt('0x' + DELEGATION_UUID.replace(/-/g, '')).toString()}`);
    expect(ext).to.include({ oid: DELEGATION_OID, critical: false });
  });

  it('encodes OIDs byte for byte as openssl does, also with arcs beyond 64 bits', async () => {
    const oids = ['1.2.840.10045.2.1', '2.5.29.17', '2.25.329800735698586629295641978511506172918', '2.999.1', DELEGATION_OID];
    for (const oid of oids) {
      const out = join(dir, 'oid.der');
      await run('openssl', ['asn1parse', '-genstr', `OID:${oid}`, '-out', out, '-noout'], { timeout: 15_000 });
      const der = await readFile(out);
      expect(der.subarray(2).toString('hex'), oid).to.equal(encodeOidContent(oid).toString('hex'));
    }
    expect(codeOf(() => encodeOidContent('1.40'))).to.equal('ERR_INPUT_INVALID');
    expect(codeOf(() => encodeOidContent('2.025'))).to.equal('ERR_INPUT_INVALID');
  });

  it('round-trips through a certificate openssl builds, and openssl shows the OID and the JSON', async () => {
    const pem = await opensslCert(dir, 'with', `${DELEGATION_OID}=DER:${ext.valueDer.toString('hex')}`);
    const cert = new X509Certificate(pem);
    expect(cert.raw.includes(ext.der), 'the Extension SEQUENCE appears verbatim in the certificate').to.equal(true);
    for (const input of [pem, cert.raw, cert, new Uint8Array(cert.raw)]) expect(decodeDelegationFromCertificate(input)).to.deep.equal(record);
    const { stdout } = await run('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'with.pem')], { timeout: 15_000 });
    expect(stdout).to.contain(`${DELEGATION_OID}:`);
    expect(stdout).to.contain(record.purpose);
    expect(stdout).to.not.match(new RegExp(`${DELEGATION_OID}: critical`));
  });

  it('reads nothing from a certificate without the extension', async () => {
    expect(decodeDelegationFromCertificate(await opensslCert(dir, 'without', undefined))).to.equal(undefined);
  });

  const malformed: [string, string, string][] = [
    ['an OCTET STRING instead of a UTF8String', '0403616263', 'ERR_DELEGATION_EXTENSION'],
    ['trailing bytes after the UTF8String', '0c017b00', 'ERR_DELEGATION_EXTENSION'],
    ['invalid UTF-8', '0c02c328', 'ERR_DELEGATION_EXTENSION'],
    ['text that is not JSON', '0c03616263', 'ERR_DELEGATION_INVALID record'],
    ['JSON that is not a delegation record', `0c${Buffer.from('{"taskId":"t"}').length.toString(16).padStart(2, '0')}${Buffer.from('{"taskId":"t"}').toString('hex')}`, 'ERR_DELEGATION_INVALID agent'],
  ];
  for (const [what, hex, code] of malformed) {
    it(`refuses an extension holding ${what}`, async () => {
      expect(codeOf(() => decodeDelegationValue(Buffer.from(hex, 'hex')))).to.equal(code);
      const pem = await opensslCert(dir, `bad-${code}-${hex.length}`, `${DELEGATION_OID}=DER:${hex}`);
      expect(codeOf(() => decodeDelegationFromCertificate(pem))).to.equal(code);
    });
  }

  it('refuses bytes that are not a certificate', () => {
    expect(codeOf(() => decodeDelegationFromCertificate(Buffer.from('3003020101', 'hex')))).to.equal('ERR_DELEGATION_EXTENSION');
  });

  describe('in an X509-SVID signed by an openssl CA', () => {
    let leafPem: string;
    before(async () => {
      const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectAltName=URI:spiffe://example.org'];
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=writ test root', '-days', '1', ...ca], { timeout: 15_000 });
      await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.csr'), '-subj', '/CN=leaf'], { timeout: 15_000 });
      const cnf = [
        '[v3]',
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth,clientAuth',
        'subjectAltName=URI:spiffe://example.org/agent/summarizer/task/t-01J9X5K7Q2',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid',
        `${DELEGATION_OID}=DER:${ext.valueDer.toString('hex')}`,
      ].join('\n');
      await writeFile(join(dir, 'leaf.cnf'), cnf + '\n');
      await run('openssl', ['x509', '-req', '-in', join(dir, 'leaf.csr'), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-set_serial', '0x3a5f0c1d2e3f405162738495a6b7c8d9', '-days', '1', '-extfile', join(dir, 'leaf.cnf'), '-extensions', 'v3', '-out', join(dir, 'leaf.pem')], { timeout: 15_000 });
      leafPem = await readFile(join(dir, 'leaf.pem'), 'utf8');
    });

    it('passes openssl verify -x509_strict (the extension is non-critical) and decodes', async () => {
      const { stdout } = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')], { timeout: 15_000 });
      expect(stdout).to.match(/: OK/);
      expect(decodeDelegationFromCertificate(leafPem)).to.deep.equal(record);
    });

    it("leaves the SVID acceptable to writ's own X509-SVID parser", () => {
      expect(parseX509Svid(leafPem).id.toString()).to.equal('spiffe://example.org/agent/summarizer/task/t-01J9X5K7Q2');
    });
  });
});
