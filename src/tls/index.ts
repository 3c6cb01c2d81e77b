/**
 * The mTLS library for Node services: server and client options for node:tls/https built from an
 * X509Source (kept current on every update), the strict SPIFFE peer check (own trust domain
 * bundle, X509-SVID rules, CRLs, authorizer), authorizers, an express middleware and a client.
 */
export {
  type Authorizer,
  authorizeAll,
  authorizeAny,
  authorizeAnyOf,
  authorizeId,
  authorizeMatch,
  authorizeMatcher,
  authorizeMemberOf,
  authorizeOneOf,
} from './authorize.js';
export { MtlsClient, type MtlsClientConfig, type MtlsClientOptions, type MtlsRequestInit, type MtlsResponse, mtlsClientOptions, mtlsFetch } from './client.js';
export { type RequirePeerOptions, peerOf, requirePeer } from './express.js';
export { type VerifiedPeer, type VerifyPeerOptions, verifyPeer } from './peer.js';
export { type PeerCheckBinding, type PeerCheckOptions, applyPeerCheck, createMtlsServer, mtlsServerOptions, verifiedPeerOf } from './server.js';
export type { TlsSource } from './state.js';
