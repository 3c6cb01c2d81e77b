/**
 * RFC 5280 v2 CRLs, built with @peculiar/x509 and signed by the CA that issued the revoked
 * certificates: issuer = that CA's subject, authorityKeyIdentifier = its SKI, a cRLNumber that
 * only grows, thisUpdate now and nextUpdate after the configured interval.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { webcrypto } from 'node:crypto';
import { smallInteger } from './asn1.js';
import type { ManagedKey } from './keymanager.js';
import { certificateSubject, keyIdentifier } from './leaf.js';

export const OID_CRL_NUMBER = '2.5.29.20';

export interface CrlEntry {
  /** Lower-case hex of the DER INTEGER content of the serial. */
  serial: string;
  revokedAt: Date;
}

export interface CrlParams {
  /** The issuing CA certificate (DER). */
  issuer: Buffer;
  key: ManagedKey;
  entries: readonly CrlEntry[];
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: number;
  crypto: webcrypto.Crypto;
}

export async function buildCrl(p: CrlParams): Promise<Buffer> {
  const pair = await p.key.cryptoKeyPair();
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.Name(certificateSubject(p.issuer)),
      thisUpdate: p.thisUpdate,
      nextUpdate: p.nextUpdate,
      entries: p.entries.map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt })),
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(keyIdentifier(p.key.publicKeyDer).toString('hex')),
        new x509.Extension(OID_CRL_NUMBER, false, smallInteger(p.crlNumber)),
      ],
      signingKey: pair.privateKey as never,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as never,
    },
    p.crypto as never,
  );
  return Buffer.from(crl.rawData);
}
