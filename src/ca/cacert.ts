/**
 * CA certificates with @peculiar/x509: the self-signed root and the signing CA it issues.
 * Both carry the trust domain's ID as their URI SAN, SKI and AKI, keyUsage keyCertSign|cRLSign
 * (critical) and a unique subject (the serialNumber attribute holds the certificate serial, as
 * SPIRE does, so bundles with many CAs never hold two identical names).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { webcrypto } from 'node:crypto';
import { printableString, rdn, seq, unsignedInteger, utf8String } from './asn1.js';
import type { ManagedKey } from './keymanager.js';
import { OIDS, certificateSubject, keyIdentifier } from './leaf.js';

export interface CaSubject {
  country?: string[];
  organization?: string[];
  commonName?: string;
}

export type CaCertKind = 'root' | 'signing';

export interface CaCertParams {
  kind: CaCertKind;
  trustDomain: string;
  subject: CaSubject;
  /** Big-endian magnitude of the serial (16 random bytes). */
  serial: Buffer;
  key: ManagedKey;
  /** Absent for a root (self-signed). */
  issuer?: { certificate: Buffer; key: ManagedKey };
  notBefore: Date;
  notAfter: Date;
  crypto: webcrypto.Crypto;
}

/** The hex content of the DER INTEGER for `serial` (what @peculiar/x509 takes). */
export function serialHex(serial: Buffer): string {
  const der = unsignedInteger(serial);
  return der.subarray(2).toString('hex');
}

export function caSubjectName(p: { kind: CaCertKind; subject: CaSubject; serial: Buffer }): Buffer {
  const cn = p.subject.commonName ?? (p.kind === 'root' ? 'writ root CA' : 'writ signing CA');
  return seq(
    ...(p.subject.country ?? []).map((c) => rdn(OIDS.countryName, printableString(c))),
    ...(p.subject.organization ?? ['writ']).map((o) => rdn(OIDS.organizationName, utf8String(o))),
    rdn(OIDS.commonName, utf8String(cn)),
    rdn(OIDS.serialNumber, printableString(serialHex(p.serial))),
  );
}

export async function buildCaCertificate(p: CaCertParams): Promise<Buffer> {
  const subject = caSubjectName(p);
  const ski = keyIdentifier(p.key.publicKeyDer);
  const issuerKey = p.issuer?.key ?? p.key;
  const aki = p.issuer ? keyIdentifier(p.issuer.key.publicKeyDer) : ski;
  const issuerName = p.issuer ? certificateSubject(p.issuer.certificate) : subject;
  const signer = await issuerKey.cryptoKeyPair();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialHex(p.serial),
      subject: new x509.Name(subject),
      issuer: new x509.Name(issuerName),
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey: p.key.publicKeyDer,
      signingKey: signer.privateKey as never,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as never,
      extensions: [
        new x509.BasicConstraintsExtension(true, p.kind === 'signing' ? 0 : undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.SubjectKeyIdentifierExtension(ski.toString('hex')),
        new x509.AuthorityKeyIdentifierExtension(aki.toString('hex')),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${p.trustDomain}` }], false),
      ],
    },
    p.crypto as never,
  );
  return Buffer.from(cert.rawData);
}
