/**
 * A service's own decision log: each request decision the service makes (with PolicySet or any
 * other rule) appended to the service's own hash-chained log, naming the calling workload, the
 * agent and task behind it, the human requester and approver from its delegation record, the
 * action, the resource and the exact decision.
 *
 *   const decisions = await DecisionLog.open('/var/lib/billing/decisions.log');
 *   const result = policies.authorize({ principal: peer.spiffeId, action, resource, context: { delegation } });
 *   await decisions.record({ spiffeId: peer.spiffeId, delegation }, { action, resource }, result);
 */
import { type DelegationRecord, type JsonValue, agentIdParts } from '../policy/index.js';
import type { SpiffeId } from '../spiffeid/index.js';
import { AuditLog, type AuditLogOptions } from './log.js';
import type { AuditActors, AuditDecision, AuditRecord } from './record.js';

export interface DecisionPeer {
  spiffeId: SpiffeId | string;
  delegation?: DelegationRecord;
}

export interface DecisionRequest {
  action: string;
  resource?: { type: string; id: string } | string;
  /** Further facts worth keeping (never secrets, never request bodies). */
  details?: { [key: string]: JsonValue };
}

/** An AuthorizeResult, or any decision of the same shape. */
export interface DecisionOutcome {
  decision: 'allow' | 'deny';
  policyIds?: readonly string[];
  errors?: readonly { policyId?: string; message: string }[];
  reason?: string;
}

/** `s` without control characters, cut to `max` UTF-16 units without splitting a surrogate pair. */
function oneLine(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  let out = s.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  if (out.length > max) out = out.slice(0, /[\ud800-\udbff]/.test(out[max - 1]!) ? max - 1 : max);
  return out;
}

export class DecisionLog {
  constructor(
    readonly log: AuditLog,
    private readonly kind = 'policy.decision',
  ) {}

  /** Opens a log of its own for the decisions (see AuditLog.open). */
  static async open(path: string, opts: AuditLogOptions = {}): Promise<DecisionLog> {
    return new DecisionLog(await AuditLog.open(path, opts));
  }

  /** Appends one decision; resolves once it is on disk. */
  record(peer: DecisionPeer, request: DecisionRequest, outcome: DecisionOutcome): Promise<AuditRecord> {
    const id = peer.spiffeId.toString();
    const parts = agentIdParts(id);
    const actors: AuditActors = { workload: id };
    if (parts.agentId !== undefined) actors.agent = parts.agentId;
    if (parts.taskId !== undefined) actors.task = parts.taskId;
    const d = peer.delegation;
    if (d) {
      actors.requester = { ...d.requester };
      actors.approver = { ...d.approver };
    }
    const decision: AuditDecision = { effect: outcome.decision, policyIds: [...(outcome.policyIds ?? [])] };
    const reason = outcome.reason ?? outcome.errors?.map((e) => (e.policyId ? `${e.policyId}: ${e.message}` : e.message)).join('; ');
    if (reason) decision.reason = oneLine(reason, 1024);
    const details: { [key: string]: JsonValue } = { ...request.details, action: request.action };
    if (request.resource !== undefined) details.resource = typeof request.resource === 'string' ? request.resource : { type: request.resource.type, id: request.resource.id };
    if (d) details.delegation = { decisionId: d.decisionId, purpose: d.purpose, deadline: d.deadline };
    return this.log.append({ kind: this.kind, actors, decision, details });
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
