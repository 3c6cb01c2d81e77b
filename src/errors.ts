/**
 * One error class for the whole project, with a closed set of stable string codes.
 * Each code maps to exactly one gRPC status and one HTTP status (the table below).
 * Messages are one human sentence and never contain secrets (keys, tokens).
 */

/** gRPC status numbers (grpc/status.proto); kept here so the library layer needs no gRPC package. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const G = GrpcStatus;
type Row = readonly [grpc: number, http: number];
const bad: Row = [G.INVALID_ARGUMENT, 400];

/** The closed set of error codes: code -> [gRPC status, HTTP status]. */
export const ERROR_TABLE = {
  // SPIFFE IDs and trust domains
  ERR_SPIFFEID_EMPTY: bad,
  ERR_SPIFFEID_SCHEME: bad,
  ERR_SPIFFEID_TRUST_DOMAIN_MISSING: bad,
  ERR_SPIFFEID_TRUST_DOMAIN_CHARS: bad,
  ERR_SPIFFEID_TRUST_DOMAIN_TOO_LONG: bad,
  ERR_SPIFFEID_PATH: bad,
  ERR_SPIFFEID_TOO_LONG: bad,
  ERR_SPIFFEID_NOT_MEMBER: bad,
  ERR_SPIFFEID_RESERVED: bad,
  ERR_SPIFFEID_NOT_MATCHED: [G.PERMISSION_DENIED, 403],
  // bundles
  ERR_BUNDLE_PEM: bad,
  ERR_BUNDLE_DER: bad,
  ERR_BUNDLE_JSON: bad,
  ERR_BUNDLE_JWK: bad,
  ERR_BUNDLE_EMPTY: bad,
  ERR_BUNDLE_TRUST_DOMAIN: bad,
  ERR_BUNDLE_NOT_FOUND: [G.NOT_FOUND, 404],
  // X509-SVIDs
  ERR_SVID_X509_PARSE: bad,
  ERR_SVID_X509_NO_CERTIFICATES: bad,
  ERR_SVID_X509_URI_SAN: bad,
  ERR_SVID_X509_SPIFFE_ID: bad,
  ERR_SVID_X509_CA_LEAF: bad,
  ERR_SVID_X509_KEY_USAGE: bad,
  ERR_SVID_X509_EXT_KEY_USAGE: bad,
  ERR_SVID_X509_INTERMEDIATE: bad,
  ERR_SVID_X509_NO_BUNDLE: [G.PERMISSION_DENIED, 403],
  ERR_SVID_X509_CHAIN: [G.PERMISSION_DENIED, 403],
  ERR_SVID_X509_EXPIRED: [G.PERMISSION_DENIED, 403],
  ERR_SVID_X509_NOT_YET_VALID: [G.PERMISSION_DENIED, 403],
  ERR_SVID_X509_REVOKED: [G.PERMISSION_DENIED, 403],
  ERR_SVID_X509_KEY_MISMATCH: bad,
  ERR_SVID_X509_KEY: bad,
  // JWT-SVIDs
  ERR_SVID_JWT_MALFORMED: bad,
  ERR_SVID_JWT_ALG: bad,
  ERR_SVID_JWT_TYP: bad,
  ERR_SVID_JWT_HEADER: bad,
  ERR_SVID_JWT_KID: bad,
  ERR_SVID_JWT_SUB: bad,
  ERR_SVID_JWT_AUD: bad,
  ERR_SVID_JWT_EXP: bad,
  ERR_SVID_JWT_EXPIRED: bad,
  ERR_SVID_JWT_NOT_YET_VALID: bad,
  ERR_SVID_JWT_NO_BUNDLE: bad,
  ERR_SVID_JWT_KEY_NOT_FOUND: bad,
  ERR_SVID_JWT_SIGNATURE: bad,
  // certificate authority and key managers
  ERR_CA_NOT_READY: [G.UNAVAILABLE, 503],
  ERR_CA_CSR: bad,
  ERR_CA_KEY_TYPE: bad,
  ERR_CA_TTL: bad,
  ERR_CA_AUTHORITY_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_CA_AUTHORITY_STATE: [G.FAILED_PRECONDITION, 409],
  ERR_KEYMANAGER_KEY_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_KEYMANAGER_IO: [G.INTERNAL, 500],
  // registry and datastore
  ERR_ENTRY_INVALID: bad,
  ERR_ENTRY_EXISTS: [G.ALREADY_EXISTS, 409],
  ERR_ENTRY_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_SVID_NOT_FOUND: [G.NOT_FOUND, 404],
  // requesters proven by an OIDC ID token (server/oidc-requester.ts)
  ERR_REQUESTER_TOKEN_INVALID: [G.UNAUTHENTICATED, 401],
  ERR_REQUESTER_TOKEN_EXPIRED: [G.UNAUTHENTICATED, 401],
  ERR_REQUESTER_OIDC_UNAVAILABLE: [G.UNAVAILABLE, 503],
  ERR_SELECTOR_INVALID: bad,
  ERR_TTL_INVALID: bad,
  ERR_DNS_NAME_INVALID: bad,
  ERR_FILTER_INVALID: bad,
  ERR_PAGE_TOKEN_INVALID: bad,
  ERR_DATASTORE: [G.INTERNAL, 500],
  ERR_DATASTORE_CONFLICT: [G.ABORTED, 409],
  ERR_TOKEN_INVALID: [G.PERMISSION_DENIED, 403],
  ERR_TOKEN_EXPIRED: [G.PERMISSION_DENIED, 403],
  ERR_TOKEN_USED: [G.PERMISSION_DENIED, 403],
  ERR_AGENT_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_AGENT_BANNED: [G.PERMISSION_DENIED, 403],
  // node attestation, agents and the node API
  ERR_NODE_ATTESTATION: [G.PERMISSION_DENIED, 403],
  ERR_NODE_NOT_AUTHORIZED: [G.PERMISSION_DENIED, 403],
  ERR_AGENT_NOT_READY: [G.UNAVAILABLE, 503],
  // plugins
  ERR_PLUGIN_UNKNOWN: bad,
  ERR_PLUGIN_CONFIG: bad,
  // Workload API (agent side) and its client
  ERR_WORKLOAD_HEADER: bad,
  ERR_WORKLOAD_ATTESTATION: [G.UNAVAILABLE, 503],
  ERR_WORKLOAD_NO_IDENTITY: [G.PERMISSION_DENIED, 403],
  ERR_WORKLOADAPI_ENDPOINT: bad,
  ERR_WORKLOADAPI_UNAVAILABLE: [G.UNAVAILABLE, 503],
  ERR_WORKLOADAPI_RESPONSE: [G.INTERNAL, 502],
  ERR_UNIMPLEMENTED: [G.UNIMPLEMENTED, 501],
  // audit: the hash-chained audit log (src/audit); ERR_AUDIT_TORN..HEAD are what verify reports
  ERR_AUDIT_RECORD_INVALID: bad,
  ERR_AUDIT_LOCKED: [G.FAILED_PRECONDITION, 409],
  ERR_AUDIT_CLOSED: [G.FAILED_PRECONDITION, 409],
  ERR_AUDIT_IO: [G.INTERNAL, 500],
  ERR_AUDIT_TORN: [G.DATA_LOSS, 500],
  ERR_AUDIT_PARSE: [G.DATA_LOSS, 500],
  ERR_AUDIT_SEQ: [G.DATA_LOSS, 500],
  ERR_AUDIT_CHAIN: [G.DATA_LOSS, 500],
  ERR_AUDIT_HASH: [G.DATA_LOSS, 500],
  ERR_AUDIT_HEAD: [G.DATA_LOSS, 500],
  // policy: canonical JSON, the delegation record, Cedar policies (src/policy)
  ERR_CANONICAL_JSON: bad,
  ERR_DELEGATION_INVALID: bad,
  ERR_DELEGATION_TOO_LARGE: bad,
  ERR_DELEGATION_EXTENSION: bad,
  ERR_DELEGATION_MISMATCH: [G.PERMISSION_DENIED, 403],
  ERR_POLICY_READ: bad,
  ERR_POLICY_PARSE: bad,
  ERR_POLICY_INVALID: bad,
  ERR_POLICY_SCHEMA: bad,
  ERR_POLICY_REQUEST: bad,
  ERR_POLICY_ENGINE: [G.INTERNAL, 500],
  // agents and tasks: registered AI-agent identities, delegated tasks (src/server/tasks)
  ERR_AGENT_IDENTITY_INVALID: bad,
  ERR_AGENT_IDENTITY_EXISTS: [G.ALREADY_EXISTS, 409],
  ERR_AGENT_IDENTITY_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_TASK_INVALID: bad,
  ERR_TASK_EXISTS: [G.ALREADY_EXISTS, 409],
  ERR_TASK_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_TASK_AGENT_UNKNOWN: [G.NOT_FOUND, 404],
  ERR_TASK_AGENT_DISABLED: [G.FAILED_PRECONDITION, 409],
  ERR_TASK_TTL_TOO_LONG: bad,
  ERR_TASK_DELEGATOR_NOT_ALLOWED: [G.PERMISSION_DENIED, 403],
  ERR_TASK_POLICY_DENIED: [G.PERMISSION_DENIED, 403],
  ERR_TASK_ENDED: [G.FAILED_PRECONDITION, 409],
  ERR_TASK_PROCESS: bad,
  // federation: relationships, bundle endpoint fetches, foreign bundles
  ERR_FEDERATION_INVALID: bad,
  ERR_FEDERATION_EXISTS: [G.ALREADY_EXISTS, 409],
  ERR_FEDERATION_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_FEDERATION_OWN_TRUST_DOMAIN: [G.FAILED_PRECONDITION, 400],
  ERR_FEDERATION_BUNDLE_IN_USE: [G.FAILED_PRECONDITION, 409],
  ERR_FEDERATION_NO_ENDPOINT_BUNDLE: [G.FAILED_PRECONDITION, 409],
  ERR_FEDERATION_FETCH: [G.UNAVAILABLE, 502],
  ERR_FEDERATION_TIMEOUT: [G.DEADLINE_EXCEEDED, 504],
  ERR_FEDERATION_TLS: [G.UNAVAILABLE, 502],
  ERR_FEDERATION_ENDPOINT_ID: [G.PERMISSION_DENIED, 502],
  ERR_FEDERATION_HTTP_STATUS: [G.UNAVAILABLE, 502],
  ERR_FEDERATION_REDIRECT: [G.UNAVAILABLE, 502],
  ERR_FEDERATION_TOO_LARGE: [G.RESOURCE_EXHAUSTED, 502],
  ERR_FEDERATION_NOT_JSON: [G.INVALID_ARGUMENT, 502],
  ERR_FEDERATION_BUNDLE_INVALID: [G.INVALID_ARGUMENT, 502],
  ERR_FEDERATION_BUNDLE_TRUST_DOMAIN: [G.INVALID_ARGUMENT, 502],
  ERR_FEDERATION_STALE_SEQUENCE: [G.FAILED_PRECONDITION, 502],
  // mTLS library (src/tls): peer checks of node:tls/https servers and clients
  ERR_TLS_PEER_MISSING: [G.UNAUTHENTICATED, 401],
  ERR_TLS_PEER_INVALID: [G.UNAUTHENTICATED, 401],
  ERR_TLS_PEER_NOT_AUTHORIZED: [G.PERMISSION_DENIED, 403],
  ERR_TLS_SOURCE_NOT_READY: [G.UNAVAILABLE, 503],
  ERR_TLS_PATTERN: bad,
  ERR_TLS_NOT_CONFIGURED: [G.FAILED_PRECONDITION, 500],
  ERR_TLS_CONNECTION: [G.UNAVAILABLE, 503],
  // config, input files, CLI, admin API
  ERR_CONFIG_READ: bad,
  ERR_CONFIG_PARSE: bad,
  ERR_CONFIG_INVALID: bad,
  ERR_INPUT_INVALID: bad,
  ERR_INPUT_READ: bad,
  ERR_OUTPUT_WRITE: [G.INTERNAL, 500],
  ERR_REQUEST_TOO_LARGE: [G.RESOURCE_EXHAUSTED, 413],
  ERR_NOT_FOUND: [G.NOT_FOUND, 404],
  ERR_PERMISSION_DENIED: [G.PERMISSION_DENIED, 403],
  ERR_UNAUTHENTICATED: [G.UNAUTHENTICATED, 401],
  ERR_SERVER_UNREACHABLE: [G.UNAVAILABLE, 503],
  ERR_SERVER_RESPONSE: [G.INTERNAL, 502],
  ERR_SERVER_NOT_READY: [G.UNAVAILABLE, 503],
  ERR_SOCKET_IN_USE: [G.FAILED_PRECONDITION, 409],
  ERR_PEERCRED: [G.INTERNAL, 500],
  ERR_INTERNAL: [G.INTERNAL, 500],
  // bundle endpoint: the https_web serving certificate and key files
  ERR_SERVING_CERT: bad,
  ERR_KEY_FILE_MODE: bad,
} as const satisfies Record<string, Row>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_TABLE, code);
}

export interface WritErrorOptions {
  cause?: unknown;
  /** Machine-readable details safe to show a user (never secrets). */
  details?: Record<string, unknown>;
}

export class WritError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: WritErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WritError';
    this.code = code;
    this.details = options.details;
  }

  get grpcStatus(): number {
    return grpcStatusOf(this.code);
  }

  get httpStatus(): number {
    return httpStatusOf(this.code);
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isWritError(e: unknown): e is WritError {
  return e instanceof WritError;
}

export function grpcStatusOf(code: ErrorCode): number {
  return ERROR_TABLE[code][0];
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_TABLE[code][1];
}

/** Wraps anything thrown into a WritError; unknown errors become ERR_INTERNAL with a generic sentence. */
export function toWritError(e: unknown, fallback: ErrorCode = 'ERR_INTERNAL', sentence = 'An internal error occurred.'): WritError {
  if (e instanceof WritError) return e;
  return new WritError(fallback, sentence, { cause: e });
}
