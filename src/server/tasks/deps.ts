/**
 * What the agent-identity and task services share: the store, the clock, the log, the trust
 * domain, the policy, the audit sink, and who is acting (the authenticated operator).
 */
import type { Clock, RandomSource } from '../../clock.js';
import type { DataStore, Selector } from '../../datastore/index.js';
import type { Logger } from '../../log.js';
import type { AuthMethod, DelegationParty } from '../../policy/index.js';
import type { RequesterVerifier, TaskAuditSink, TaskPolicy } from './hooks.js';

export interface TaskDeps {
  datastore: DataStore;
  clock: Clock;
  logger: Logger;
  trustDomain: string;
  /** The parent ID an agent identity gets when none is given. */
  defaultParent: string;
  policy: TaskPolicy;
  audit: TaskAuditSink;
  requesterVerifier: RequesterVerifier;
  /** Put the delegation record in task X509-SVIDs (default true); see `task_delegation_x509`. */
  x509Delegation?: boolean;
  random?: RandomSource;
}

/** The authenticated operator behind an admin call: the approver of the tasks it starts. */
export interface Operator {
  id: string;
  authenticatedBy: Exclude<AuthMethod, 'unverified'>;
  /** Primary and supplementary group ids of an OS user (for group:<name> delegators). */
  gids?: readonly number[];
}

export function partyOf(op: Operator): DelegationParty {
  return { id: op.id, authenticatedBy: op.authenticatedBy };
}

export function nowSeconds(clock: Clock): number {
  return Math.floor(clock.nowMs() / 1000);
}

export function agentSpiffeId(trustDomain: string, name: string): string {
  return `spiffe://${trustDomain}/agent/${name}`;
}

export function taskSpiffeIdOf(trustDomain: string, agentName: string, taskId: string): string {
  return `spiffe://${trustDomain}/agent/${agentName}/task/${taskId}`;
}

/** Whether a SPIFFE ID of this trust domain has the task shape /agent/<name>/task/<id> (a cheap test before parsing). */
export function looksLikeTaskId(trustDomain: string, spiffeId: string): boolean {
  const prefix = `spiffe://${trustDomain}/agent/`;
  return spiffeId.startsWith(prefix) && spiffeId.indexOf('/task/', prefix.length) > 0;
}

/** The pin selectors of one process: its pid and its start time (clock ticks since boot, /proc/<pid>/stat field 22). */
export function pinSelectors(pid: number, startTime: string): Selector[] {
  return [
    { type: 'unix', value: `pid:${pid}` },
    { type: 'unix', value: `start_time:${startTime}` },
  ];
}
