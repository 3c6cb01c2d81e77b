/**
 * Request-time policy (Cedar) and the delegation record: its type and strict parser, its
 * X.509 extension and JWT claim encodings, RFC 8785 canonical JSON, and the mapping of SPIFFE
 * IDs to Cedar entities. Library layer: no server-only dependencies; Cedar loads on first use.
 */
export { type AgentIdParts, agentIdParts, taskSpiffeId } from './agentid.js';
export { type JsonValue, MAX_DEPTH as CANONICAL_JSON_MAX_DEPTH, canonicalJson, canonicalJsonBytes } from './canonical.js';
export {
  AUTH_METHODS,
  type AuthMethod,
  type DelegationParty,
  type DelegationRecord,
  MAX_DELEGATION_BYTES,
  checkDelegationSubject,
  delegationJson,
  parseDelegation,
  parseDelegationJson,
} from './delegation.js';
export {
  CEDAR_TYPES,
  type CedarEntityRef,
  type CedarResource,
  type CedarValue,
  WRIT_CEDAR_DECLARATIONS,
  delegationValue as delegationCedarValue,
  workloadEntities as cedarWorkloadEntities,
  writCedarSchema,
} from './entities.js';
export {
  DELEGATION_OID,
  DELEGATION_UUID,
  type DelegationExtension,
  decodeDelegationFromCertificate,
  decodeDelegationValue,
  encodeDelegationExtension,
  encodeOidContent,
} from './extension.js';
export { DELEGATION_CLAIM, decodeDelegationFromClaims, delegationClaims } from './jwtclaim.js';
export {
  type AuthorizeContext,
  type AuthorizeRequest,
  type AuthorizeResult,
  type PolicyError,
  type PolicyInfo,
  PolicySet,
  type PolicySetOptions,
  type PolicySource,
} from './policyset.js';
