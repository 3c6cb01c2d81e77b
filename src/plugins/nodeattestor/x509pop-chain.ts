/**
 * Certificate path checks for the x509pop node attestor: parse the presented chain (leaf first),
 * build a path to one of the configured CAs, and check signatures, validity at the injected time,
 * CA flags and path lengths, the leaf's role and key usage, and critical extensions. Also derives
 * the x509pop selectors and template values from a verified path.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash } from 'node:crypto';
import { decodePem, parseCertificateDer } from '../../bundle/index.js';
import type { Selector } from '../../datastore/index.js';
import { WritError } from '../../errors.js';
import { attestationError } from './types.js';

const NAME = 'x509pop';
const KNOWN_CRITICAL = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.14', '2.5.29.35', '2.5.29.32']);

export interface ParsedCert {
  der: Buffer;
  node: X509Certificate;
  px: x509.X509Certificate;
  /** Lower-case hex SHA-1 of the DER. */
  sha1: string;
  basic: x509.BasicConstraintsExtension | null;
  keyUsage: x509.KeyUsagesExtension | null;
  /** DNS SANs; empty when there are none or the SAN extension holds names this parser can not read. */
  dns: string[];
}

export interface VerifiedPath {
  leaf: ParsedCert;
  /** The CAs above the leaf, nearest first; the last is the configured CA. */
  cas: ParsedCert[];
}

/** Parses one DER certificate and the extensions the checks need; undefined if anything is malformed. */
export function parseCert(der: Buffer): ParsedCert | undefined {
  const node = parseCertificateDer(der);
  if (!node) return undefined;
  try {
    const px = new x509.X509Certificate(der);
    return {
      der,
      node,
      px,
      sha1: createHash('sha1').update(der).digest('hex'),
      basic: px.getExtension(x509.BasicConstraintsExtension),
      keyUsage: px.getExtension(x509.KeyUsagesExtension),
      dns: readDnsNames(px),
    };
  } catch {
    return undefined;
  }
}

/** Reads the trusted CA bundle: PEM CERTIFICATE blocks, each a CA certificate (ERR_PLUGIN_CONFIG). */
export function parseCaBundle(pem: string, path: string): ParsedCert[] {
  const what = `the x509pop CA bundle "${path}"`;
  const blocks = decodePem(pem, 'ERR_PLUGIN_CONFIG', what, 'CERTIFICATE');
  if (blocks.length === 0) throw new WritError('ERR_PLUGIN_CONFIG', `The x509pop CA bundle "${path}" holds no certificate.`);
  return blocks.map((b, i) => {
    const c = parseCert(b.der);
    if (!c) throw new WritError('ERR_PLUGIN_CONFIG', `PEM block ${i + 1} of ${what} is not a valid X.509 certificate.`);
    if (!c.basic?.ca) throw new WritError('ERR_PLUGIN_CONFIG', `Certificate ${i + 1} of ${what} is not a CA certificate.`);
    return c;
  });
}

function issuedBy(child: ParsedCert, parent: ParsedCert): boolean {
  try {
    return child.node.checkIssued(parent.node) && child.node.verify(parent.node.publicKey);
  } catch {
    return false;
  }
}

function role(i: number, isAnchor: boolean): string {
  if (i === 0) return 'the leaf certificate';
  return isAnchor ? 'the trusted CA certificate' : `intermediate certificate ${i}`;
}

function checkCommon(c: ParsedCert, what: string, now: Date): void {
  if (now < c.px.notBefore) throw attestationError(NAME, `The x509pop attestation failed: ${what} is not valid yet.`);
  if (now > c.px.notAfter) throw attestationError(NAME, `The x509pop attestation failed: ${what} has expired.`);
  for (const ext of c.px.extensions) {
    if (ext.critical && !KNOWN_CRITICAL.has(ext.type)) {
      throw attestationError(NAME, `The x509pop attestation failed: ${what} has a critical extension (${ext.type}) that is not supported.`);
    }
  }
}

function checkCa(c: ParsedCert, what: string, below: number): void {
  if (!c.basic?.ca) throw attestationError(NAME, `The x509pop attestation failed: ${what} is not a CA certificate.`);
  if (c.keyUsage && (c.keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw attestationError(NAME, `The x509pop attestation failed: ${what} may not sign certificates (keyUsage lacks keyCertSign).`);
  }
  const max = c.basic.pathLength;
  if (max !== undefined && below > max) throw attestationError(NAME, `The x509pop attestation failed: ${what} allows ${max} intermediates below it, not ${below}.`);
}

/**
 * Builds and checks the path from presented[0] (the leaf) through the presented intermediates, in
 * order, to one of `roots`. Presented certificates after the point where a configured CA is reached
 * (the agent may include the root) are ignored. Throws ERR_NODE_ATTESTATION naming the reason.
 */
export function verifyChain(presented: readonly ParsedCert[], roots: readonly ParsedCert[], now: Date): VerifiedPath {
  const leaf = presented[0];
  if (!leaf) throw attestationError(NAME, 'The x509pop payload is malformed: it holds no certificate.');
  if (leaf.basic?.ca) throw attestationError(NAME, 'The x509pop attestation failed: the leaf certificate is a CA certificate.');
  if (leaf.keyUsage && (leaf.keyUsage.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    throw attestationError(NAME, 'The x509pop attestation failed: the leaf certificate may not sign (keyUsage lacks digitalSignature).');
  }
  checkCommon(leaf, role(0, false), now);

  const cas: ParsedCert[] = [];
  let current = leaf;
  for (let i = 1; ; i++) {
    const root = roots.find((r) => issuedBy(current, r));
    if (root) {
      checkCommon(root, role(i, true), now);
      checkCa(root, role(i, true), i - 1);
      cas.push(root);
      break;
    }
    const next = presented[i];
    if (!next || !issuedBy(current, next)) {
      throw attestationError(NAME, `The x509pop attestation failed: the certificate chain does not lead to a trusted CA.`);
    }
    checkCommon(next, role(i, false), now);
    checkCa(next, role(i, false), i - 1);
    cas.push(next);
    current = next;
  }
  return { leaf, cas };
}

/** The leaf's serial number as lower-case hex without leading zeros ("0" for zero). */
export function serialHex(c: ParsedCert): string {
  const hex = c.px.serialNumber.toLowerCase().replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

export function commonNames(c: ParsedCert): string[] {
  return c.px.subjectName.getField('CN');
}

function readDnsNames(px: x509.X509Certificate): string[] {
  try {
    const san = px.getExtension(x509.SubjectAlternativeNameExtension);
    return san ? san.names.items.filter((n) => n.type === 'dns').map((n) => n.value) : [];
  } catch {
    return [];
  }
}

/** x509pop selectors of a verified path (values only; the type is "x509pop"). */
export function pathSelectors(p: VerifiedPath): Selector[] {
  const values = [
    ...commonNames(p.leaf).map((cn) => `subject:cn:${cn}`),
    ...p.cas.map((ca) => `ca:fingerprint:${ca.sha1}`),
    `serialnumber:${serialHex(p.leaf)}`,
    ...p.leaf.dns.map((d) => `san:dns:${d}`),
  ];
  return values.map((value) => ({ type: NAME, value }));
}
