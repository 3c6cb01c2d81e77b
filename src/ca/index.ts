/** The certificate authority: key managers, rotating CA slots, X509-SVID and JWT-SVID minting, CRLs. */
export { Authority, LEAF_BACKDATE_SECONDS, type JwtSvidRequest, type MintedJwtSvid, type MintedX509Svid, type SigningCaInfo, type X509SvidRequest } from './authority.js';
export { CA_BACKDATE_SECONDS, type AuthorityConfig, type AuthorityOptions, type CaSlotStore, type JwtAuthority } from './rotation.js';
export { CA_KEY_TYPES, MemoryKeyManager, SoftwareKey, type CaKeyType, type KeyManager, type ManagedKey } from './keymanager.js';
export { DiskKeyManager } from './diskkeys.js';
export { LeafKey, LeafTemplate, keyIdentifier, type LeafParams } from './leaf.js';
export { buildCaCertificate, caSubjectName, serialHex, type CaSubject } from './cacert.js';
export { buildCrl, type CrlEntry } from './crl.js';
export { activateAt, prepareAt, type RotationEvent } from './slots.js';
export { AUTHORITY_KINDS, type AuthorityKind, type AuthorityView, type ForcedAction, type ForcedRotationEvent, type SigningCaView } from './forced.js';
export { certificateKeyIds, chainIssuerIds, normalizeAuthorityId, type CertificateKeyIds } from './keyids.js';
export { MAX_CSR_BYTES, buildCsrDer, verifyCsrDer } from './csr.js';
export { newWorkloadKey, type WorkloadKey } from './workloadkey.js';
