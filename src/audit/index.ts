/**
 * The hash-chained audit log: append (group-committed, fsynced, one writer per file), read with
 * filters, verify, and a service's own decision log. Uses node:fs and node:crypto only, so
 * services can use it as well as the server.
 */
export { DecisionLog, type DecisionOutcome, type DecisionPeer, type DecisionRequest } from './decisionlog.js';
export { processStartTime } from './lock.js';
export { AuditLog, type AuditLogOptions, type TornRecovery } from './log.js';
export { type AuditFilter, auditFilter, readAudit } from './read.js';
export {
  AUDIT_KINDS,
  type AuditActors,
  type AuditDecision,
  type AuditInput,
  type AuditParty,
  type AuditRecord,
  GENESIS_PREV,
  MAX_RECORD_BYTES,
  parseAuditLine,
  recordHash,
} from './record.js';
export { type AuditFailureCode, type VerifyOptions, type VerifyResult, verifyAudit } from './verify.js';
