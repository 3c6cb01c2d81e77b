/** X509-SVIDs: parse and validate (X509-SVID spec §2–4), verify against bundles (§5). */
export { X509_SVID_RULES, type X509SvidRule } from './rules.js';
export { type CertificateChainInput, type PrivateKeyInput, X509Svid, parseX509Svid } from './svid.js';
export { type VerifiedX509Svid, type VerifyX509SvidOptions, verifyX509Svid } from './verify.js';
export { type CertInfo, readCertificate as readCertificateInfo } from './cert.js';
