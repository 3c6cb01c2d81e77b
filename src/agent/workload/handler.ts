/**
 * The contract between the agent's Workload API endpoints (gRPC and HTTP on Unix sockets) and the
 * agent's cache. The endpoints identify the caller from the kernel, ask the handler to attest it,
 * and render what the handler returns; the handler never sees a socket.
 *
 * Errors are WritErrors; their codes map to gRPC statuses through src/errors.ts:
 * ERR_WORKLOAD_ATTESTATION → Unavailable, ERR_WORKLOAD_NO_IDENTITY → PermissionDenied,
 * ERR_AGENT_NOT_READY → Unavailable, ERR_INPUT_INVALID and ERR_SVID_JWT_* → InvalidArgument.
 */
import type { Selector } from '../../datastore/types.js';

/** The calling process, as the kernel reported it for the connection. */
export interface PeerProcess {
  pid: number;
  uid: number;
  gid: number;
  /** A pidfd for the process (SO_PEERPIDFD or pidfd_open), or -1 where the kernel has none. */
  pidfd: number;
  /** /proc/<pid>/status of this process, held open since it connected (reads fail once it exits), or -1. */
  statusFd?: number;
  /** Its start time (/proc/<pid>/stat field 22), read once when it connected; undefined if it was gone then. */
  startTime?: string;
}

/** One X509-SVID as the Workload API sends it. */
export interface X509SvidState {
  spiffeId: string;
  /** DER certificates, leaf first, then intermediates. */
  certificates: Buffer[];
  /** PKCS#8 DER, unencrypted. */
  privateKey: Buffer;
  /** DER CA certificates of the SVID's own trust domain bundle. */
  bundle: Buffer[];
  hint: string;
  /** Epoch ms of the leaf's notAfter; a rendered message holding it is not reused past it (absent: never reused). */
  notAfter?: number;
}

/** The full X.509 state for one caller (FetchX509SVID sends all of it in every message). */
export interface X509State {
  /** Empty: the caller has no identity (PermissionDenied). The first is the default SVID. */
  svids: X509SvidState[];
  /** DER CRLs of the caller's trust domain. */
  crls: Buffer[];
  /** Trust domain name ("partner.org") → DER CA certificates, for entries with federates_with. */
  federatedBundles: Map<string, Buffer[]>;
}

export interface X509BundlesState {
  /** Trust domain name → DER CA certificates; always holds the agent's own trust domain. */
  bundles: Map<string, Buffer[]>;
  crls: Buffer[];
}

export interface JwtSvidState {
  spiffeId: string;
  token: string;
  hint: string;
}

export interface WorkloadHandler {
  /** False while the agent has no trust bundle yet (answers Unavailable). */
  ready(): boolean;
  /** Runs the workload attestors on the process; throws ERR_WORKLOAD_ATTESTATION when they fail. */
  attest(peer: PeerProcess): Promise<Selector[]>;
  /** What a caller with these selectors gets now. */
  x509State(selectors: readonly Selector[]): X509State;
  /**
   * Own and federated bundles for a caller with these selectors: the federated ones its entries
   * federate with. ERR_WORKLOAD_NO_IDENTITY when it matches no entry, unless unauthenticated
   * verifiers are allowed (then the own trust domain's bundle only).
   */
  x509Bundles(selectors: readonly Selector[]): X509BundlesState;
  /** Trust domain name → JWKS JSON (keys with kid, no `use`, no spiffe_* members); the same rule as x509Bundles. */
  jwtBundles(selectors: readonly Selector[]): Map<string, string>;
  /**
   * Calls `listener` after every change of the cache (SVID rotated, entry added or removed, bundle
   * or CRL changed). Streams then recompute their state and send it if it differs. Returns an
   * unsubscribe function.
   */
  subscribe(listener: () => void): () => void;
  /** JWT-SVIDs for `audience` (one per identity, or only `spiffeId`); ERR_WORKLOAD_NO_IDENTITY when none. */
  fetchJwtSvids(selectors: readonly Selector[], audience: readonly string[], spiffeId?: string): Promise<JwtSvidState[]>;
  /**
   * Validates a JWT-SVID for a caller with these selectors against the JWT bundles jwtBundles()
   * gives it (so ERR_WORKLOAD_NO_IDENTITY for a caller with no entry unless unauthenticated
   * verifiers are allowed); ERR_SVID_JWT_* when the token is invalid.
   */
  validateJwtSvid(selectors: readonly Selector[], token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }>;
}
