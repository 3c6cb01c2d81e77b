/**
 * How writ's request facts become Cedar entities and context (the documented mapping):
 *
 *   principal  Writ::Workload::"<SPIFFE ID>"   attrs { trustDomain, path, kind: "agent"|"task"|"workload",
 *                                                      agent?: <agent name>, task?: <task id> }
 *              parents: Writ::Agent::"spiffe://<td>/agent/<name>" (agent and task IDs) and
 *                       Writ::TrustDomain::"<td>", so `principal in Writ::Agent::"…"` and
 *                       `principal in Writ::TrustDomain::"example.org"` work (the parents are
 *                       entities without attributes)
 *   action     Writ::Action::"<name>"
 *   resource   <caller's entity type>::"<id>" with the caller's attrs and parents
 *   context    { time: <Unix seconds>, delegation?: { taskId, agent, purpose, deadline, decisionId,
 *                issuedAt, requester: { id, authenticatedBy, issuer? }, approver: {…} }, …caller's }
 *
 * Cedar has no floating point: numbers must be safe integers (ERR_POLICY_REQUEST otherwise).
 */
import type { CedarValueJson, EntityJson, EntityUidJson } from '@cedar-policy/cedar-wasm/nodejs';
import { WritError } from '../errors.js';
import type { SpiffeId } from '../spiffeid/index.js';
import { agentIdParts } from './agentid.js';
import type { DelegationParty, DelegationRecord } from './delegation.js';

export const CEDAR_TYPES = {
  workload: 'Writ::Workload',
  agent: 'Writ::Agent',
  trustDomain: 'Writ::TrustDomain',
  action: 'Writ::Action',
} as const;

/** The Writ namespace declarations the mapping needs, for a schema (see writCedarSchema). */
export const WRIT_CEDAR_DECLARATIONS = `
  entity TrustDomain;
  entity Agent in [TrustDomain];
  entity Workload in [TrustDomain, Agent] { trustDomain: String, path: String, kind: String, agent?: String, task?: String };
  type Party = { id: String, authenticatedBy: String, issuer?: String };
  type Delegation = { taskId: String, agent: String, requester: Party, approver: Party, purpose: String, deadline: Long, decisionId: String, issuedAt: Long };
`;

/**
 * A Cedar schema (text) of the Writ namespace with the caller's declarations added inside it
 * (Cedar allows one block per namespace, and actions are Writ::Action). For example:
 *   writCedarSchema('entity Tool; action "tool.invoke" appliesTo { principal: Workload, resource: Tool, context: { time: Long, delegation?: Delegation } };')
 */
export function writCedarSchema(declarations: string): string {
  return `namespace Writ {${WRIT_CEDAR_DECLARATIONS}${declarations}\n}\n`;
}

export type CedarValue = CedarValueJson;

export interface CedarEntityRef {
  type: string;
  id: string;
}

export interface CedarResource extends CedarEntityRef {
  attrs?: Record<string, unknown>;
  parents?: CedarEntityRef[];
}

const ENTITY_TYPE = /^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$/;

function bad(sentence: string, field: string): never {
  throw new WritError('ERR_POLICY_REQUEST', sentence, { details: { field } });
}

/** Checks and converts a JavaScript value into Cedar's JSON value form. */
export function toCedarValue(v: unknown, field: string, depth = 0): CedarValueJson {
  if (depth > 32) bad(`The ${field} nests too deeply for a Cedar value.`, field);
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) bad(`The ${field} is not a whole number; Cedar has integers only.`, field);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => toCedarValue(x, `${field}[${i}]`, depth + 1));
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, CedarValueJson> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) out[k] = toCedarValue(x, `${field}.${k}`, depth + 1);
    }
    return out;
  }
  bad(`The ${field} cannot be a Cedar value (strings, booleans, integers, sets and records only).`, field);
}

export function entityRef(ref: CedarEntityRef, field: string): EntityUidJson {
  if (typeof ref?.type !== 'string' || !ENTITY_TYPE.test(ref.type)) bad(`The ${field} entity type must be a Cedar name like Writ::Document.`, field);
  if (typeof ref.id !== 'string') bad(`The ${field} entity id must be a string.`, field);
  return { type: ref.type, id: ref.id };
}

/**
 * The principal's entity. Its parents (Writ::Agent, Writ::TrustDomain) are named but not sent as
 * entities of their own: `in` needs only the parent list, and every entity sent costs Cedar
 * time per call (about a third of the calls per second with them).
 */
export function workloadEntities(id: SpiffeId | string): { uid: EntityUidJson; entities: EntityJson[] } {
  const p = agentIdParts(id);
  const attrs: Record<string, CedarValueJson> = { trustDomain: p.trustDomain, path: p.path, kind: p.kind };
  const parents: EntityUidJson[] = [{ type: CEDAR_TYPES.trustDomain, id: p.trustDomain }];
  if (p.agentName !== undefined && p.agentId !== undefined) {
    attrs.agent = p.agentName;
    parents.push({ type: CEDAR_TYPES.agent, id: p.agentId });
  }
  if (p.taskId !== undefined) attrs.task = p.taskId;
  const uid: EntityUidJson = { type: CEDAR_TYPES.workload, id: `spiffe://${p.trustDomain}${p.path}` };
  return { uid, entities: [{ uid, attrs, parents }] };
}

function partyValue(p: DelegationParty): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = { id: p.id, authenticatedBy: p.authenticatedBy };
  if (p.issuer !== undefined) out.issuer = p.issuer;
  return out;
}

/** The delegation record as a Cedar record (context.delegation). */
export function delegationValue(d: DelegationRecord): Record<string, CedarValueJson> {
  return {
    taskId: d.taskId,
    agent: d.agent,
    requester: partyValue(d.requester),
    approver: partyValue(d.approver),
    purpose: d.purpose,
    deadline: d.deadline,
    decisionId: d.decisionId,
    issuedAt: d.issuedAt,
  };
}

/** The resource entity the caller describes (sent even when empty, so errors name its attributes). */
export function resourceEntity(r: CedarResource): { uid: EntityUidJson; entities: EntityJson[] } {
  const uid = entityRef(r, 'resource');
  const attrs = r.attrs === undefined ? {} : toCedarValue(r.attrs, 'resource.attrs');
  if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) bad('The resource attrs must be a record.', 'resource.attrs');
  const parents = (r.parents ?? []).map((x, i) => entityRef(x, `resource.parents[${i}]`));
  return { uid, entities: [{ uid, attrs: attrs as Record<string, CedarValueJson>, parents }] };
}
