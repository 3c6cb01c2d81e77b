import { expect } from 'chai';
import { join } from 'node:path';
import { DecisionLog, readAudit, verifyAudit } from '../../src/audit/index.js';
import { ManualClock } from '../../src/clock.js';
import { PolicySet } from '../../src/policy/index.js';
import { sampleDelegation } from '../policy/fixtures.js';
import { TempDir } from './helpers.js';

const POLICY = `@id("tasks-read")
permit (principal, action == Writ::Action::"doc.read", resource)
when { context has delegation && context.time < context.delegation.deadline };`;

describe('audit/decisionlog: a service records its own request decisions', () => {
  const tmp = new TempDir();
  let decisions: DecisionLog | undefined;
  after(async () => {
    await decisions?.close();
    await tmp.remove();
  });

  it('appends each decision with the caller, agent, task, requester, approver, action, resource and outcome', async () => {
    const dir = await tmp.make();
    const path = join(dir, 'decisions.jsonl');
    const clock = new ManualClock(1_767_226_000_000);
    const policies = await PolicySet.fromText(POLICY, { clock });
    decisions = await DecisionLog.open(path, { clock });
    const d = sampleDelegation();
    const task = `spiffe://example.org/agent/summarizer/task/${d.taskId}`;
    const resource = { type: 'Writ::Document', id: 'reports/q3' };

    const allowed = policies.authorize({ principal: task, action: 'doc.read', resource, context: { delegation: d } });
    await decisions.record({ spiffeId: task, delegation: d }, { action: 'doc.read', resource }, allowed);
    const denied = policies.authorize({ principal: 'spiffe://example.org/ns/web/sa/frontend', action: 'doc.read', resource });
    await decisions.record({ spiffeId: 'spiffe://example.org/ns/web/sa/frontend' }, { action: 'doc.read', resource: 'reports/q3', details: { route: '/docs' } }, { ...denied, reason: 'no delegation' });
    await decisions.close();
    decisions = undefined;

    const recs = [];
    for await (const r of readAudit(path)) recs.push(r);
    expect(recs).to.have.length(2);
    const [a, b] = recs as [(typeof recs)[number], (typeof recs)[number]];
    expect(a).to.deep.include({
      seq: 1,
      kind: 'policy.decision',
      time: '2026-01-01T00:06:40.000Z',
      actors: { workload: task, agent: d.agent, task: d.taskId, requester: d.requester, approver: d.approver },
      decision: { effect: 'allow', policyIds: ['tasks-read'] },
      details: { action: 'doc.read', resource, delegation: { decisionId: d.decisionId, purpose: d.purpose, deadline: d.deadline } },
    });
    expect(b).to.deep.include({
      seq: 2,
      actors: { workload: 'spiffe://example.org/ns/web/sa/frontend' },
      decision: { effect: 'deny', policyIds: [], reason: 'no delegation' },
      details: { route: '/docs', action: 'doc.read', resource: 'reports/q3' },
    });
    expect((await verifyAudit(path)).ok).to.equal(true);
  });

  it('keeps engine error messages as one bounded line', async () => {
    const path = join(await tmp.make(), 'errors.jsonl');
    decisions = await DecisionLog.open(path);
    const long = `line one\nline two ${'x'.repeat(1100)}`;
    const r = await decisions.record({ spiffeId: 'spiffe://example.org/w' }, { action: 'a' }, { decision: 'deny', errors: [{ policyId: 'p', message: long }] });
    await decisions.close();
    decisions = undefined;
    expect(r.decision?.reason).to.have.length(1024);
    expect(r.decision?.reason).to.match(/^p: line one line two x+$/);
  });
});
