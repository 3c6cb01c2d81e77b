/**
 * One audit record, its validation, and its place in the chain. A record is one line of the log
 * file: the RFC 8785 canonical JSON of
 *
 *   { seq, time, kind, actors?, decision?, details?, prev, hash }
 *
 * seq counts from 1; time is ISO 8601 UTC from the injected clock; prev is the previous record's
 * hash (GENESIS_PREV, 64 zeros, for record 1); hash is the SHA-256 (hex) of the canonical JSON
 * of the record without `hash`. Because the line itself is canonical, any changed byte changes
 * either the hash input or the canonical form, and verify names that record.
 */
import { createHash } from 'node:crypto';
import { type ErrorCode, WritError } from '../errors.js';
import { AUTH_METHODS, type AuthMethod, type JsonValue, canonicalJson } from '../policy/index.js';
import { isSpiffeId } from '../spiffeid/index.js';

export const GENESIS_PREV = '0'.repeat(64);
/** A record's line (canonical JSON and newline) may not be longer than this. */
export const MAX_RECORD_BYTES = 64 * 1024;

/** The kinds writ itself writes; services may add their own (lower-case dotted names). */
export const AUDIT_KINDS = [
  'entry.create',
  'entry.update',
  'entry.delete',
  'agent.attest',
  'agent.ban',
  'svid.issue',
  'task.start',
  'task.end',
  'revoke',
  'policy.decision',
  'audit.recovered',
] as const;

export interface AuditParty {
  id: string;
  authenticatedBy?: AuthMethod;
  issuer?: string;
}

export interface AuditActors {
  /** The human who asked for the action. */
  requester?: AuditParty;
  /** The operator who approved it. */
  approver?: AuditParty;
  /** The agent's SPIFFE ID (spiffe://<td>/agent/<name>). */
  agent?: string;
  /** The task id. */
  task?: string;
  /** The SPIFFE ID of the calling workload, when it is not just the agent. */
  workload?: string;
}

export interface AuditDecision {
  effect: 'allow' | 'deny';
  reason?: string;
  policyIds?: string[];
  /** The decision's own id (e.g. the delegation record's decisionId). */
  id?: string;
}

/** What a caller appends. `details` must be plain JSON and must never hold secrets. */
export interface AuditInput {
  kind: string;
  actors?: AuditActors;
  decision?: AuditDecision;
  details?: { [key: string]: JsonValue };
}

export interface AuditRecord extends AuditInput {
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

const KIND = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/;
const HEX64 = /^[0-9a-f]{64}$/;
const TASK = /^[A-Za-z0-9._-]{1,128}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

type Fail = (field: string, sentence: string) => never;

function failWith(code: ErrorCode): Fail {
  return (field, sentence) => {
    throw new WritError(code, sentence, { details: { field } });
  };
}

function obj(v: unknown, field: string, keys: readonly string[], fail: Fail): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, `The audit ${field} must be an object.`);
  for (const k of Object.keys(v)) if (!keys.includes(k)) fail(`${field}.${k}`, `The audit ${field} has an unknown member "${k.slice(0, 40)}".`);
  return v as Record<string, unknown>;
}

function str(v: unknown, field: string, max: number, fail: Fail): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max || CONTROL.test(v)) {
    fail(field, `The audit ${field} must be a string of 1 to ${max} characters without control characters.`);
  }
  return v;
}

function party(v: unknown, field: string, fail: Fail): AuditParty {
  const o = obj(v, field, ['id', 'authenticatedBy', 'issuer'], fail);
  const out: AuditParty = { id: str(o.id, `${field}.id`, 256, fail) };
  if (o.authenticatedBy !== undefined) {
    if (!(AUTH_METHODS as readonly unknown[]).includes(o.authenticatedBy)) fail(`${field}.authenticatedBy`, `The audit ${field}.authenticatedBy must be one of ${AUTH_METHODS.join(', ')}.`);
    out.authenticatedBy = o.authenticatedBy as AuthMethod;
  }
  if (o.issuer !== undefined) out.issuer = str(o.issuer, `${field}.issuer`, 256, fail);
  return out;
}

function spiffe(v: unknown, field: string, fail: Fail): string {
  const s = str(v, field, 2048, fail);
  if (!isSpiffeId(s)) fail(field, `The audit ${field} must be a SPIFFE ID.`);
  return s;
}

function actors(v: unknown, fail: Fail): AuditActors {
  const o = obj(v, 'actors', ['requester', 'approver', 'agent', 'task', 'workload'], fail);
  const out: AuditActors = {};
  if (o.requester !== undefined) out.requester = party(o.requester, 'actors.requester', fail);
  if (o.approver !== undefined) out.approver = party(o.approver, 'actors.approver', fail);
  if (o.agent !== undefined) out.agent = spiffe(o.agent, 'actors.agent', fail);
  if (o.task !== undefined) {
    out.task = str(o.task, 'actors.task', 128, fail);
    if (!TASK.test(out.task)) fail('actors.task', 'The audit actors.task must be a task id (a-z, A-Z, 0-9, ".", "-", "_").');
  }
  if (o.workload !== undefined) out.workload = spiffe(o.workload, 'actors.workload', fail);
  return out;
}

function decision(v: unknown, fail: Fail): AuditDecision {
  const o = obj(v, 'decision', ['effect', 'reason', 'policyIds', 'id'], fail);
  if (o.effect !== 'allow' && o.effect !== 'deny') fail('decision.effect', 'The audit decision.effect must be "allow" or "deny".');
  const out: AuditDecision = { effect: o.effect };
  if (o.reason !== undefined) out.reason = str(o.reason, 'decision.reason', 1024, fail);
  if (o.policyIds !== undefined) {
    if (!Array.isArray(o.policyIds) || o.policyIds.length > 64) fail('decision.policyIds', 'The audit decision.policyIds must be a list of at most 64 ids.');
    out.policyIds = o.policyIds.map((p, i) => str(p, `decision.policyIds[${i}]`, 256, fail));
  }
  if (o.id !== undefined) out.id = str(o.id, 'decision.id', 128, fail);
  return out;
}

function body(o: Record<string, unknown>, fail: Fail): AuditInput {
  const kind = str(o.kind, 'kind', 64, fail);
  if (!KIND.test(kind)) fail('kind', 'The audit kind must be a lower-case dotted name such as "task.start".');
  const out: AuditInput = { kind };
  if (o.actors !== undefined) out.actors = actors(o.actors, fail);
  if (o.decision !== undefined) out.decision = decision(o.decision, fail);
  if (o.details !== undefined) {
    if (typeof o.details !== 'object' || o.details === null || Array.isArray(o.details)) fail('details', 'The audit details must be an object.');
    out.details = o.details as AuditInput['details'];
  }
  return out;
}

const INPUT_KEYS = ['kind', 'actors', 'decision', 'details'] as const;
const RECORD_KEYS = ['seq', 'time', ...INPUT_KEYS, 'prev', 'hash'] as const;

/** Validates what a caller appends (ERR_AUDIT_RECORD_INVALID) and returns a normalized copy. */
export function validateAuditInput(input: unknown): AuditInput {
  const fail: Fail = failWith('ERR_AUDIT_RECORD_INVALID');
  return body(obj(input, 'record', INPUT_KEYS, fail), fail);
}

/** SHA-256 hex of the canonical JSON of `r` without its hash. */
export function recordHash(r: Omit<AuditRecord, 'hash'> & { hash?: string }): string {
  const { hash: _hash, ...rest } = r;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** Builds the next record after (seq - 1, prev) and its line; ERR_CANONICAL_JSON / ERR_AUDIT_RECORD_INVALID on bad input. */
export function sealRecord(input: AuditInput, seq: number, prev: string, time: string): { record: AuditRecord; line: Buffer } {
  const unsealed = { seq, time, ...input, prev };
  const record: AuditRecord = { ...unsealed, hash: recordHash(unsealed) };
  const line = Buffer.from(canonicalJson(record) + '\n', 'utf8');
  if (line.length > MAX_RECORD_BYTES) {
    throw new WritError('ERR_AUDIT_RECORD_INVALID', `The audit record is ${line.length} bytes; the limit is ${MAX_RECORD_BYTES}.`, { details: { field: 'record' } });
  }
  return { record, line };
}

/**
 * Parses one line (without its newline) as a stored record: JSON, the record shape, canonical
 * form. Throws ERR_AUDIT_PARSE; does not check the hash or the chain.
 */
export function parseAuditLine(line: Buffer): AuditRecord {
  const fail: Fail = failWith('ERR_AUDIT_PARSE');
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(line));
  } catch {
    fail('record', 'The line is not valid UTF-8 JSON.');
  }
  const o = obj(v, 'record', RECORD_KEYS, fail);
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) fail('seq', 'The record has no valid seq.');
  if (typeof o.time !== 'string' || !ISO.test(o.time)) fail('time', 'The record has no valid ISO time.');
  if (typeof o.prev !== 'string' || !HEX64.test(o.prev)) fail('prev', 'The record has no valid prev hash.');
  if (typeof o.hash !== 'string' || !HEX64.test(o.hash)) fail('hash', 'The record has no valid hash.');
  const record: AuditRecord = { seq: o.seq, time: o.time, ...body(o, fail), prev: o.prev, hash: o.hash };
  let canonical: string;
  try {
    canonical = canonicalJson(record);
  } catch {
    fail('record', 'The record holds a value JSON canonicalization refuses.');
  }
  if (!Buffer.from(canonical, 'utf8').equals(line)) fail('record', 'The line is not in canonical form.');
  return record;
}
