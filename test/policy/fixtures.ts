/** Shared test data for the policy tests. */
import { isWritError } from '../../src/errors.js';
import type { DelegationRecord } from '../../src/policy/index.js';

export function sampleDelegation(over: Partial<DelegationRecord> = {}): DelegationRecord {
  return {
    taskId: 't-01J9X5K7Q2',
    agent: 'spiffe://example.org/agent/summarizer',
    requester: { id: 'alice', authenticatedBy: 'os-user' },
    approver: { id: 'bob', authenticatedBy: 'oidc', issuer: 'https://login.example.org' },
    purpose: 'summarize the Q3 incident reports',
    deadline: 1_767_229_200,
    decisionId: 'dec:7f3c',
    issuedAt: 1_767_225_600,
    ...over,
  };
}

/** The WritError code (and details.field when set) that `fn` throws, or undefined. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return isWritError(e) ? `${e.code}${e.details?.field ? ` ${String(e.details.field)}` : ''}` : `not coded: ${String(e)}`;
  }
}
