/**
 * Agent identities and tasks as the admin API and the CLI show them (snake_case JSON). The
 * delegation record is shown as stored (its canonical JSON parsed back).
 */
import type { AgentIdentity, TaskRecord } from '../../datastore/index.js';
import type { DelegationRecord } from '../../policy/index.js';

export interface AgentIdentityJson {
  name: string;
  spiffe_id: string;
  parent_id: string;
  selectors: Array<{ type: string; value: string }>;
  owner: string;
  max_task_ttl: number;
  delegators: string[];
  entry_id: string | null;
  disabled: boolean;
  created_at: number;
  updated_at: number;
}

export interface TaskJson {
  id: string;
  agent: string;
  spiffe_id: string;
  entry_id: string;
  parent_id: string;
  selectors: Array<{ type: string; value: string }>;
  pid: number | null;
  start_time: string | null;
  status: 'active' | 'ended';
  deadline: number;
  created_at: number;
  ended_at: number | null;
  end_reason: string | null;
  decision_id: string;
  delegation: DelegationRecord;
}

export function agentIdentityJson(a: AgentIdentity): AgentIdentityJson {
  return {
    name: a.name,
    spiffe_id: a.spiffeId,
    parent_id: a.parentId,
    selectors: a.selectors.map((s) => ({ type: s.type, value: s.value })),
    owner: a.owner,
    max_task_ttl: a.maxTaskTtl,
    delegators: [...a.delegators],
    entry_id: a.entryId,
    disabled: a.disabled,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  };
}

export function taskJson(t: TaskRecord): TaskJson {
  return {
    id: t.id,
    agent: t.agentName,
    spiffe_id: t.spiffeId,
    entry_id: t.entryId,
    parent_id: t.parentId,
    selectors: t.selectors.map((s) => ({ type: s.type, value: s.value })),
    pid: t.pid,
    start_time: t.startTime,
    status: t.status,
    deadline: t.deadline,
    created_at: t.createdAt,
    ended_at: t.endedAt,
    end_reason: t.endReason,
    decision_id: t.decisionId,
    delegation: JSON.parse(t.delegation) as DelegationRecord,
  };
}
