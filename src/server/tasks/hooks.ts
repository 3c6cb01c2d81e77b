/**
 * What the agent and task services need from outside, as small interfaces: the task policy
 * (Cedar, src/policy, evaluated at every task start), the audit sink (src/audit's hash-chained
 * log), and the verification of a requester's token (a seam for OIDC ID tokens). Each has a
 * default: no policy allows and records "no policy"; no verifier refuses requester tokens.
 */
import type { AuditInput } from '../../audit/index.js';
import { WritError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import { PolicySet, type DelegationParty, type DelegationRecord } from '../../policy/index.js';

/** The action name task-start policies match: `action == Writ::Action::"task.start"`. */
export const TASK_START_ACTION = 'task.start';
/** The resource type of an agent identity in task-start requests. */
export const AGENT_IDENTITY_TYPE = 'Writ::AgentIdentity';

export interface TaskPolicyRequest {
  /** The task's SPIFFE ID (the principal). */
  taskSpiffeId: string;
  agent: { name: string; owner: string; maxTaskTtl: number };
  delegation: DelegationRecord;
  ttl: number;
  /** Whether the task is pinned to one process (pid and start time). */
  pinned: boolean;
}

export interface TaskPolicyDecision {
  decision: 'allow' | 'deny';
  /** "policy" when policies decided, "no policy" when none is configured. */
  basis: 'policy' | 'no policy';
  /** The policies that determined the decision. */
  policyIds: string[];
  errors: string[];
}

export interface TaskPolicy {
  /** The files the policy came from (empty for none). */
  readonly files: readonly string[];
  decide(req: TaskPolicyRequest): TaskPolicyDecision;
}

export const NO_POLICY: TaskPolicy = {
  files: [],
  decide: () => ({ decision: 'allow', basis: 'no policy', policyIds: [], errors: [] }),
};

/**
 * Loads `task_policy_files` (Cedar) once, at server start; a bad file is ERR_POLICY_* naming the
 * file, the line and the reason, and stops the start. No files: NO_POLICY.
 *
 * The request: principal the task's SPIFFE ID (a Writ::Workload of kind "task", in its
 * Writ::Agent), action Writ::Action::"task.start", resource Writ::AgentIdentity::"<name>"
 * { owner, maxTaskTtl }, context { time, ttl, pinned, delegation }.
 */
export async function loadTaskPolicy(files: readonly string[], clock: Clock): Promise<TaskPolicy> {
  if (files.length === 0) return NO_POLICY;
  const set = await PolicySet.load(files, { clock });
  return {
    files: [...files],
    decide(req) {
      const r = set.authorize({
        principal: req.taskSpiffeId,
        action: TASK_START_ACTION,
        resource: { type: AGENT_IDENTITY_TYPE, id: req.agent.name, attrs: { owner: req.agent.owner, maxTaskTtl: req.agent.maxTaskTtl } },
        context: { delegation: req.delegation, ttl: req.ttl, pinned: req.pinned },
      });
      return { decision: r.decision, basis: 'policy', policyIds: r.policyIds, errors: r.errors.map((e) => (e.policyId ? `${e.policyId}: ${e.message}` : e.message)) };
    },
  };
}

/** One audit record as the services write it (src/audit's AuditInput; the log adds seq, time, prev and hash). */
export type TaskAuditRecord = AuditInput;

/** Where audit records go: an AuditLog (src/audit), or NO_AUDIT. */
export interface TaskAuditSink {
  append(record: AuditInput): Promise<unknown>;
}

/** Discards records; for contexts that run without an audit log. */
export const NO_AUDIT: TaskAuditSink = { append: async () => undefined };

/** Verifies a requester's token (an OIDC ID token) and says who it names. */
export interface RequesterVerifier {
  verify(token: string): Promise<DelegationParty>;
}

export const NO_REQUESTER_VERIFIER: RequesterVerifier = {
  verify: async () => {
    throw new WritError('ERR_TASK_INVALID', 'This server verifies no requester tokens; give --requested-by (recorded as unverified) instead.', { details: { field: 'requester_token' } });
  },
};
