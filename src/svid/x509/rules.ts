/** The X509-SVID rules (X509-SVID spec §2–5; RFC 5280 path validation), each with its error code. */
import { type ErrorCode, WritError } from '../../errors.js';

export const X509_SVID_RULES = [
  { name: 'chain-not-empty', code: 'ERR_SVID_X509_NO_CERTIFICATES', description: 'The chain holds at least one certificate; the first is the leaf.' },
  { name: 'certificate-der', code: 'ERR_SVID_X509_PARSE', description: 'Every certificate is one well-formed DER (or PEM CERTIFICATE) X.509 certificate.' },
  { name: 'leaf-one-uri-san', code: 'ERR_SVID_X509_URI_SAN', description: 'The leaf has exactly one URI SAN (X509-SVID §2).' },
  { name: 'leaf-spiffe-id', code: 'ERR_SVID_X509_SPIFFE_ID', description: 'The URI SAN of the leaf is a valid SPIFFE ID (SPIFFE-ID §2).' },
  { name: 'leaf-id-has-path', code: 'ERR_SVID_X509_SPIFFE_ID', description: 'The SPIFFE ID of the leaf has a non-empty path (X509-SVID §3.1).' },
  { name: 'leaf-not-ca', code: 'ERR_SVID_X509_CA_LEAF', description: 'The leaf is not a CA: basicConstraints cA is false or absent (X509-SVID §4.1).' },
  { name: 'leaf-digital-signature', code: 'ERR_SVID_X509_KEY_USAGE', description: 'The leaf has a keyUsage extension with digitalSignature set (X509-SVID §4.3).' },
  { name: 'leaf-no-cert-sign', code: 'ERR_SVID_X509_KEY_USAGE', description: 'The keyUsage of the leaf sets neither keyCertSign nor cRLSign (X509-SVID §4.3).' },
  {
    name: 'leaf-ext-key-usage',
    code: 'ERR_SVID_X509_EXT_KEY_USAGE',
    description: 'If the leaf has extKeyUsage, it includes both serverAuth and clientAuth, or anyExtendedKeyUsage (X509-SVID §4.4).',
  },
  { name: 'intermediate-ca', code: 'ERR_SVID_X509_INTERMEDIATE', description: 'Every certificate after the leaf is a CA: basicConstraints cA is true.' },
  { name: 'intermediate-key-cert-sign', code: 'ERR_SVID_X509_INTERMEDIATE', description: 'Every certificate after the leaf has keyUsage with keyCertSign set.' },
  { name: 'private-key-valid', code: 'ERR_SVID_X509_KEY', description: 'The private key, if given, is a private KeyObject, PKCS#8 DER or a PEM private key.' },
  { name: 'private-key-matches-leaf', code: 'ERR_SVID_X509_KEY_MISMATCH', description: 'The private key belongs to the public key of the leaf.' },
  { name: 'bundle-for-leaf-trust-domain', code: 'ERR_SVID_X509_NO_BUNDLE', description: "The bundle source has an X.509 bundle for the leaf's own trust domain." },
  { name: 'not-expired', code: 'ERR_SVID_X509_EXPIRED', description: 'No certificate of the verified chain is past its notAfter.' },
  { name: 'not-yet-valid', code: 'ERR_SVID_X509_NOT_YET_VALID', description: 'No certificate of the verified chain is before its notBefore.' },
  {
    name: 'critical-extensions',
    code: 'ERR_SVID_X509_CHAIN',
    description: 'The leaf and intermediates mark no extension critical that this verifier does not process (RFC 5280 §4.2); name constraints are not processed.',
  },
  {
    name: 'chain-to-authority',
    code: 'ERR_SVID_X509_CHAIN',
    description: "Issuer/subject links and signatures lead from the leaf, through the given intermediates, to a CA certificate of the leaf's trust domain bundle.",
  },
  { name: 'path-length', code: 'ERR_SVID_X509_CHAIN', description: 'No CA of the chain has more CAs below it than its pathLenConstraint allows.' },
  { name: 'crl-der', code: 'ERR_SVID_X509_PARSE', description: 'Every CRL given is one well-formed DER CRL.' },
  {
    name: 'not-revoked',
    code: 'ERR_SVID_X509_REVOKED',
    description: 'No leaf or intermediate serial is listed by a CRL of its issuer whose signature verifies with the issuer key.',
  },
] as const satisfies ReadonlyArray<{ name: string; code: ErrorCode; description: string }>;

export type X509SvidRule = (typeof X509_SVID_RULES)[number]['name'];

const CODES = new Map<string, ErrorCode>(X509_SVID_RULES.map((r) => [r.name, r.code]));

/** The error for a broken rule: its code, the sentence, and { rule, ...details }. */
export function x509Violation(rule: X509SvidRule, sentence: string, details: Record<string, unknown> = {}, cause?: unknown): WritError {
  return new WritError(CODES.get(rule)!, sentence, cause === undefined ? { details: { rule, ...details } } : { details: { rule, ...details }, cause });
}
