/**
 * Audit log and policy figures: appends per second with the chain kept and every append on disk
 * (write + fdatasync before it resolves), awaited one after another and 64 in flight (group
 * commit); verifyAudit records per second over the file written; Cedar authorize calls per
 * second for a small policy set, with and without a delegation record in the context.
 * The log lives in os.tmpdir() (set TMPDIR to measure another disk).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, type AuditInput, verifyAudit } from '../src/audit/index.js';
import { type AuthorizeRequest, type DelegationRecord, PolicySet } from '../src/policy/index.js';

export interface AuditBench {
  sequentialAppendsPerSec: number;
  concurrentAppendsPerSec: number;
  recordsPerCommit: number;
  verifyRecordsPerSec: number;
  verifiedRecords: number;
  authorizePerSec: number;
  authorizeWithDelegationPerSec: number;
}

const delegation: DelegationRecord = {
  taskId: 't-bench',
  agent: 'spiffe://bench.example/agent/summarizer',
  requester: { id: 'alice', authenticatedBy: 'os-user' },
  approver: { id: 'bob', authenticatedBy: 'oidc', issuer: 'https://login.bench.example' },
  purpose: 'benchmark',
  deadline: 4_000_000_000,
  decisionId: 'dec:bench',
  issuedAt: 1_700_000_000,
};

function sample(i: number): AuditInput {
  return {
    kind: 'svid.issue',
    actors: { requester: delegation.requester, approver: delegation.approver, agent: delegation.agent, task: delegation.taskId },
    decision: { effect: 'allow', policyIds: ['tasks-may-run'] },
    details: { serial: (0x1234567890n * BigInt(i + 1)).toString(16), ttl: 300 },
  };
}

const POLICIES = `@id("tasks-may-invoke")
permit (principal, action == Writ::Action::"tool.invoke", resource is Writ::Tool)
when { principal.kind == "task" && context has delegation && context.time < context.delegation.deadline &&
       context.delegation.requester.authenticatedBy != "unverified" };
@id("agents-may-list")
permit (principal in Writ::TrustDomain::"bench.example", action == Writ::Action::"tool.list", resource);
@id("no-dangerous-tools")
forbid (principal, action, resource is Writ::Tool) when { resource has dangerous && resource.dangerous };
`;

function rate(seconds: number, fn: () => unknown): number {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
  }
  return n / ((performance.now() - t0) / 1000);
}

export async function benchAudit(opts: { seconds: number }): Promise<AuditBench> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-audit-'));
  try {
    const path = join(dir, 'audit.jsonl');
    const log = await AuditLog.open(path);
    let i = 0;
    let t0 = performance.now();
    let end = t0 + opts.seconds * 1000;
    while (performance.now() < end) await log.append(sample(i++));
    const sequentialAppendsPerSec = i / ((performance.now() - t0) / 1000);

    const before = { n: i, commits: log.commits };
    t0 = performance.now();
    end = t0 + opts.seconds * 1000;
    const worker = async (): Promise<void> => {
      while (performance.now() < end) await log.append(sample(i++));
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const concurrentAppendsPerSec = (i - before.n) / ((performance.now() - t0) / 1000);
    const recordsPerCommit = (i - before.n) / (log.commits - before.commits);
    await log.close();

    t0 = performance.now();
    const v = await verifyAudit(path);
    if (!v.ok) throw new Error(`the bench log does not verify: ${v.sentence}`);
    const verifyRecordsPerSec = v.records / ((performance.now() - t0) / 1000);

    const set = await PolicySet.fromText(POLICIES);
    const withDelegation: AuthorizeRequest = {
      principal: 'spiffe://bench.example/agent/summarizer/task/t-bench',
      action: 'tool.invoke',
      resource: { type: 'Writ::Tool', id: 'search' },
      context: { delegation, time: 1_800_000_000 },
    };
    const plain: AuthorizeRequest = { principal: 'spiffe://bench.example/agent/summarizer', action: 'tool.list', resource: { type: 'Writ::Tool', id: 'search' }, context: { time: 1_800_000_000 } };
    if (set.authorize(withDelegation).decision !== 'allow' || set.authorize(plain).decision !== 'allow') throw new Error('the bench policies do not allow the bench requests');
    rate(0.3, () => set.authorize(plain)); // warm up
    const authorizePerSec = rate(opts.seconds / 2, () => set.authorize(plain));
    const authorizeWithDelegationPerSec = rate(opts.seconds / 2, () => set.authorize(withDelegation));
    return { sequentialAppendsPerSec, concurrentAppendsPerSec, recordsPerCommit, verifyRecordsPerSec, verifiedRecords: v.records, authorizePerSec, authorizeWithDelegationPerSec };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
