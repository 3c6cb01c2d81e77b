/**
 * The delegation record: who asked an agent to run a task, who approved it, how each of them
 * was authenticated, until when, and which policy decision allowed it. It is stored by the
 * server, written to the audit log, carried in the task's X509-SVID (extension.ts) and JWT-SVIDs
 * (jwtclaim.ts), and handed to the service's policy (Cedar context.delegation).
 *
 * The parser is strict: unknown members, wrong types, out-of-range times and over-long strings
 * are refused with ERR_DELEGATION_INVALID naming the field; a record whose canonical JSON
 * exceeds MAX_DELEGATION_BYTES with ERR_DELEGATION_TOO_LARGE. A new format gets a new OID and
 * claim name rather than new members, so strictness does not hurt compatibility.
 */
import { WritError } from '../errors.js';
import { type SpiffeId, parseSpiffeId } from '../spiffeid/index.js';
import { agentIdParts } from './agentid.js';
import { canonicalJson } from './canonical.js';

export const AUTH_METHODS = ['os-user', 'spiffe-id', 'oidc', 'unverified'] as const;
/** How a requester or approver was authenticated: admin-socket peer credentials, an admin mTLS SVID, a verified OIDC ID token, or not at all. */
export type AuthMethod = (typeof AUTH_METHODS)[number];

export interface DelegationParty {
  /** OS user name, SPIFFE ID, OIDC `sub`, or the free text given (unverified). */
  id: string;
  authenticatedBy: AuthMethod;
  /** The OIDC issuer URL (required for 'oidc'); never set for 'unverified'. */
  issuer?: string;
}

export interface DelegationRecord {
  taskId: string;
  /** The agent's SPIFFE ID, spiffe://<td>/agent/<name>. */
  agent: string;
  requester: DelegationParty;
  approver: DelegationParty;
  purpose: string;
  /** Unix seconds; the task and its SVIDs end here. */
  deadline: number;
  /** The id of the policy decision that allowed the task. */
  decisionId: string;
  /** Unix seconds. */
  issuedAt: number;
}

/** Cap on the canonical JSON of one record, so certificates and tokens stay small. */
export const MAX_DELEGATION_BYTES = 4096;
/** Latest accepted time (9999-12-31T23:59:59Z), in Unix seconds. */
const MAX_TIME = 253402300799;
const TASK_ID = /^[A-Za-z0-9._-]{1,128}$/;
const DECISION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
// C0 and C1 controls and DEL; a delegation record is shown to people, so none of these.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const RECORD_KEYS = new Set(['taskId', 'agent', 'requester', 'approver', 'purpose', 'deadline', 'decisionId', 'issuedAt']);
const PARTY_KEYS = new Set(['id', 'authenticatedBy', 'issuer']);

function invalid(field: string, sentence: string): never {
  throw new WritError('ERR_DELEGATION_INVALID', sentence, { details: { field } });
}

function objectOf(v: unknown, field: string, keys: Set<string>): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(field, `The delegation ${field} must be an object.`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!keys.has(k)) invalid(`${field}.${k}`, `The delegation ${field} has an unknown member "${k.slice(0, 40)}".`);
  }
  return o;
}

function text(v: unknown, field: string, max: number, min = 1): string {
  if (typeof v !== 'string') invalid(field, `The delegation ${field} must be a string.`);
  if (v.length < min || v.length > max) invalid(field, `The delegation ${field} must be ${min} to ${max} characters long.`);
  if (CONTROL.test(v) || /\p{Cs}/u.test(v)) invalid(field, `The delegation ${field} contains a control character or a lone surrogate.`);
  return v;
}

function time(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_TIME) {
    invalid(field, `The delegation ${field} must be whole Unix seconds between 0 and ${MAX_TIME}.`);
  }
  return v;
}

function party(v: unknown, field: string): DelegationParty {
  const o = objectOf(v, field, PARTY_KEYS);
  const id = text(o.id, `${field}.id`, 256);
  const by = o.authenticatedBy;
  if (typeof by !== 'string' || !(AUTH_METHODS as readonly string[]).includes(by)) {
    invalid(`${field}.authenticatedBy`, `The delegation ${field}.authenticatedBy must be one of ${AUTH_METHODS.join(', ')}.`);
  }
  const out: DelegationParty = { id, authenticatedBy: by as AuthMethod };
  if (o.issuer !== undefined) out.issuer = text(o.issuer, `${field}.issuer`, 256);
  if (out.authenticatedBy === 'spiffe-id') {
    try {
      parseSpiffeId(id);
    } catch {
      invalid(`${field}.id`, `The delegation ${field}.id must be a SPIFFE ID when authenticatedBy is spiffe-id.`);
    }
  }
  if (out.authenticatedBy === 'oidc') {
    if (out.issuer === undefined || !/^https:\/\/[^\s/]+/.test(out.issuer)) {
      invalid(`${field}.issuer`, `The delegation ${field} was authenticated by OIDC, so its issuer must be an https URL.`);
    }
  } else if (out.authenticatedBy === 'unverified' && out.issuer !== undefined) {
    invalid(`${field}.issuer`, `The delegation ${field} is unverified, so it cannot name an issuer.`);
  }
  return out;
}

function agentKind(agent: string): string {
  try {
    return agentIdParts(agent).kind;
  } catch {
    invalid('agent', 'The delegation agent must be a valid SPIFFE ID.');
  }
}

/** Validates `input` (e.g. parsed JSON) as a delegation record and returns a normalized copy. */
export function parseDelegation(input: unknown): DelegationRecord {
  const o = objectOf(input, 'record', RECORD_KEYS);
  const taskId = text(o.taskId, 'taskId', 128);
  if (!TASK_ID.test(taskId) || taskId === '.' || taskId === '..') {
    invalid('taskId', 'The delegation taskId must be one SPIFFE ID path segment (a-z, A-Z, 0-9, ".", "-", "_").');
  }
  const agent = text(o.agent, 'agent', 2048);
  if (agentKind(agent) !== 'agent') invalid('agent', 'The delegation agent must be an agent ID of the form spiffe://<trust-domain>/agent/<name>.');
  const record: DelegationRecord = {
    taskId,
    agent,
    requester: party(o.requester, 'requester'),
    approver: party(o.approver, 'approver'),
    purpose: text(o.purpose, 'purpose', 512),
    deadline: time(o.deadline, 'deadline'),
    decisionId: text(o.decisionId, 'decisionId', 128),
    issuedAt: time(o.issuedAt, 'issuedAt'),
  };
  if (!DECISION_ID.test(record.decisionId)) invalid('decisionId', 'The delegation decisionId may hold only a-z, A-Z, 0-9, ".", ":", "-" and "_".');
  if (record.deadline <= record.issuedAt) invalid('deadline', 'The delegation deadline must be later than its issuedAt.');
  const size = Buffer.byteLength(canonicalJson(record));
  if (size > MAX_DELEGATION_BYTES) {
    throw new WritError('ERR_DELEGATION_TOO_LARGE', `The delegation record is ${size} bytes as JSON; the limit is ${MAX_DELEGATION_BYTES}.`);
  }
  return record;
}

/** Parses the JSON text of a delegation record (as carried in a certificate). */
export function parseDelegationJson(json: string): DelegationRecord {
  if (Buffer.byteLength(json) > MAX_DELEGATION_BYTES) {
    throw new WritError('ERR_DELEGATION_TOO_LARGE', `The delegation record is longer than ${MAX_DELEGATION_BYTES} bytes.`);
  }
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new WritError('ERR_DELEGATION_INVALID', 'The delegation record is not valid JSON.', { details: { field: 'record' } });
  }
  return parseDelegation(v);
}

/** The canonical JSON (RFC 8785) of a validated record. */
export function delegationJson(record: DelegationRecord): string {
  return canonicalJson(parseDelegation(record));
}

/**
 * Throws ERR_DELEGATION_MISMATCH unless `id` is the task ID the record was issued for:
 * spiffe://<td>/agent/<name>/task/<taskId> with the record's agent and task.
 */
export function checkDelegationSubject(record: DelegationRecord, id: SpiffeId | string): void {
  const p = agentIdParts(id);
  if (p.kind !== 'task' || p.agentId !== record.agent || p.taskId !== record.taskId) {
    throw new WritError('ERR_DELEGATION_MISMATCH', 'The delegation record was issued for another task than the SVID names.');
  }
}
