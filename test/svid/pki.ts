/**
 * Test PKI for the bundle and SVID tests: keys, CA/intermediate/leaf certificates and CRLs built
 * with @peculiar/x509 on Node's WebCrypto. Slow (about 200 certificates a second): build in before().
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, webcrypto } from 'node:crypto';
import { isWritError } from '../../src/errors.js';

const provider = webcrypto as never;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type SignAlg = webcrypto.Algorithm | webcrypto.EcdsaParams | webcrypto.RsaPssParams;
const subtle = webcrypto.subtle;

export type KeyKind = 'P-256' | 'P-384' | 'P-521' | 'RSA-2048' | 'RSA-PSS-2048' | 'Ed25519';

export interface TestKey {
  kind: KeyKind;
  pair: CryptoKeyPair;
  privateKey: KeyObject;
  publicKey: KeyObject;
  pkcs8: Buffer;
  spki: Buffer;
  signingAlgorithm: SignAlg;
}

function algorithmOf(kind: KeyKind): { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams | webcrypto.Algorithm; sign: SignAlg } {
  switch (kind) {
    case 'P-256':
      return { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'P-384':
      return { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'P-521':
      return { gen: { name: 'ECDSA', namedCurve: 'P-521' }, sign: { name: 'ECDSA', hash: 'SHA-512' } };
    case 'RSA-2048':
      return {
        gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5' },
      };
    case 'RSA-PSS-2048':
      return {
        gen: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        sign: { name: 'RSA-PSS', saltLength: 32 },
      };
    case 'Ed25519':
      return { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
  }
}

export async function newKey(kind: KeyKind = 'P-256'): Promise<TestKey> {
  const { gen, sign } = algorithmOf(kind);
  const pair = (await subtle.generateKey(gen as never, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  return {
    kind,
    pair,
    privateKey: KeyObject.from(pair.privateKey as never),
    publicKey: KeyObject.from(pair.publicKey as never),
    pkcs8: Buffer.from(await subtle.exportKey('pkcs8', pair.privateKey as never)),
    spki: Buffer.from(await subtle.exportKey('spki', pair.publicKey as never)),
    signingAlgorithm: sign,
  };
}

export const KU = x509.KeyUsageFlags;
export const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2', codeSigning: '1.3.6.1.5.5.7.3.3' };

export interface CertSpec {
  subject?: string;
  uris?: string[];
  dns?: string[];
  /** basicConstraints: true/false, or null to omit the extension. */
  ca?: boolean | null;
  pathLen?: number;
  /** keyUsage flags, or null to omit the extension. */
  keyUsage?: number | null;
  /** extKeyUsage OIDs, or null/undefined to omit. */
  eku?: string[] | null;
  notBefore?: Date;
  notAfter?: Date;
  serial?: string;
  extensions?: x509.Extension[];
}

export interface TestCert {
  der: Buffer;
  cert: x509.X509Certificate;
  key: TestKey;
  pem: string;
}

const HOUR = 3600_000;
let counter = 0;

export async function makeCert(spec: CertSpec, key: TestKey, issuer?: TestCert): Promise<TestCert> {
  const isCa = spec.ca === true;
  const subject = spec.subject ?? `CN=test ${++counter}, O=writ tests`;
  const extensions: x509.Extension[] = [];
  if (spec.ca !== null) extensions.push(new x509.BasicConstraintsExtension(isCa, spec.pathLen, true));
  const ku = spec.keyUsage === undefined ? (isCa ? KU.keyCertSign | KU.cRLSign : KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement) : spec.keyUsage;
  if (ku !== null) extensions.push(new x509.KeyUsagesExtension(ku, true));
  if (spec.eku) extensions.push(new x509.ExtendedKeyUsageExtension(spec.eku, false));
  const names: x509.JsonGeneralName[] = [...(spec.uris ?? []).map((u) => ({ type: 'url' as const, value: u })), ...(spec.dns ?? []).map((d) => ({ type: 'dns' as const, value: d }))];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(key.pair.publicKey as never, false, provider));
  if (issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.key.pair.publicKey as never, false, provider));
  extensions.push(...(spec.extensions ?? []));
  const signer = issuer?.key ?? key;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: spec.serial ?? randomSerial(),
      subject,
      issuer: issuer ? issuer.cert.subject : subject,
      notBefore: spec.notBefore ?? new Date(Date.now() - HOUR),
      notAfter: spec.notAfter ?? new Date(Date.now() + 24 * HOUR),
      publicKey: key.pair.publicKey as never,
      signingKey: signer.pair.privateKey as never,
      signingAlgorithm: signer.signingAlgorithm,
      extensions,
    },
    provider,
  );
  const der = Buffer.from(cert.rawData);
  return { der, cert, key, pem: cert.toString('pem') };
}

export function randomSerial(): string {
  // Positive 16-byte serial: first nibble 1..7.
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x3f) | 0x10;
  return Buffer.from(bytes).toString('hex');
}

/** A root CA for `td` (URI SAN spiffe://td). */
export async function makeRoot(td: string, kind: KeyKind = 'P-256', spec: CertSpec = {}): Promise<TestCert> {
  return makeCert({ subject: `CN=${td} root ${++counter}, O=writ tests`, uris: [`spiffe://${td}`], ca: true, ...spec }, await newKey(kind));
}

/** A CRL by `issuer` listing `serials` (hex). */
export async function makeCrl(issuer: TestCert, serials: string[], signingKey: TestKey = issuer.key): Promise<Buffer> {
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: issuer.cert.subject,
      thisUpdate: new Date(Date.now() - HOUR),
      nextUpdate: new Date(Date.now() + HOUR),
      entries: serials.map((s) => ({ serialNumber: s, revocationDate: new Date(Date.now() - HOUR) })),
      signingKey: signingKey.pair.privateKey as never,
      signingAlgorithm: signingKey.signingAlgorithm,
    },
    provider,
  );
  return Buffer.from(crl.rawData);
}

/** PEM of a DER CRL. */
export function encodeCrlPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}

/** A critical extension with an OID nobody processes. */
export function unknownCriticalExtension(): x509.Extension {
  return new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([0x05, 0x00]));
}

export function subjectOf(c: TestCert): string {
  return c.cert.subject;
}

/** The code of the WritError `fn` throws; 'NOT_A_WRIT_ERROR' for anything else; undefined if it returns. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isWritError(e) ? e.code : 'NOT_A_WRIT_ERROR';
  }
  return undefined;
}

/** The WritError `fn` throws (fails the test if it returns or throws something else). */
export function errorOf(fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (e) {
    if (isWritError(e)) return { code: e.code, message: e.message, details: e.details ?? {} };
    throw new Error(`expected a WritError, got ${String(e)}`);
  }
  throw new Error('expected a WritError, but nothing was thrown');
}
