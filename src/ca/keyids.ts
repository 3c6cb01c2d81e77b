/**
 * Key identifiers read from certificates: the subjectKeyIdentifier (a CA's authority ID) and the
 * keyIdentifier of the authorityKeyIdentifier (which CA signed it), as lower-case hex. Forced
 * rotation uses them to tell which root issued a signing CA, and agents to tell whether an SVID's
 * chain runs through a tainted authority.
 */
import { readCertificateInfo } from '../svid/index.js';
import { readChildren, readTlv } from './asn1.js';
import { OIDS } from './leaf.js';

export interface CertificateKeyIds {
  ski?: string;
  aki?: string;
}

/** The SKI and AKI keyIdentifier of a DER certificate; a field is absent when the extension is. */
export function certificateKeyIds(der: Buffer): CertificateKeyIds {
  const info = readCertificateInfo(der);
  const out: CertificateKeyIds = {};
  const ski = info.extensions.get(OIDS.subjectKeyIdentifier)?.value;
  if (ski) {
    const t = readTlv(ski, 0);
    if (t.tag === 0x04) out.ski = ski.subarray(t.contentStart, t.end).toString('hex');
  }
  const aki = info.extensions.get(OIDS.authorityKeyIdentifier)?.value;
  if (aki) {
    const root = readTlv(aki, 0);
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, ... }
    const id = root.tag === 0x30 ? readChildren(aki, root).find((c) => c.tag === 0x80) : undefined;
    if (id) out.aki = aki.subarray(id.contentStart, id.end).toString('hex');
  }
  return out;
}

/** The AKI of every certificate of a chain (leaf first): the authorities the chain runs through. */
export function chainIssuerIds(chain: readonly Buffer[]): string[] {
  const out: string[] = [];
  for (const c of chain) {
    try {
      const aki = certificateKeyIds(c).aki;
      if (aki) out.push(aki);
    } catch {
      // A certificate writ cannot read names no authority.
    }
  }
  return out;
}

/** An authority ID as typed: hex SKIs may come upper case or with colons (as openssl prints them). */
export function normalizeAuthorityId(raw: string, x509: boolean): string {
  const s = raw.trim();
  return x509 ? s.replace(/:/g, '').toLowerCase() : s;
}
