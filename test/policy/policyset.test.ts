import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/clock.js';
import { isWritError } from '../../src/errors.js';
import { type AuthorizeRequest, type DelegationRecord, PolicySet, writCedarSchema } from '../../src/policy/index.js';
import { sampleDelegation } from './fixtures.js';

const POLICIES = `// Tasks may read documents while their delegation lasts, if a known human asked.
@id("tasks-may-read")
permit (principal, action == Writ::Action::"doc.read", resource is Writ::Document)
when {
  principal.kind == "task" && context has delegation &&
  context.time < context.delegation.deadline &&
  context.delegation.requester.authenticatedBy != "unverified"
};

@id("no-secrets")
forbid (principal, action, resource is Writ::Document)
when { resource has secret && resource.secret };

permit (principal in Writ::Agent::"spiffe://example.org/agent/indexer", action == Writ::Action::"doc.list", resource);
`;

const TASK = 'spiffe://example.org/agent/summarizer/task/t-01J9X5K7Q2';
const NOW = 1_767_226_000; // between the sample's issuedAt and deadline
const doc = { type: 'Writ::Document', id: 'reports/q3' };

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (isWritError(e)) return { code: e.code, message: e.message, details: e.details ?? {} };
    throw e;
  }
  throw new Error('expected a WritError');
}

describe('policy/policyset: Cedar at request time', () => {
  let dir: string;
  let file: string;
  let set: PolicySet;
  const clock = new ManualClock(NOW * 1000);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'writ-policy-'));
    file = join(dir, 'policies.cedar');
    await writeFile(file, POLICIES);
    set = await PolicySet.load([file], { clock });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives each policy its @id, else <file>:<index>, with its line', () => {
    expect(set.policies.map((p) => [p.id, p.line])).to.deep.equal([
      ['tasks-may-read', 2],
      ['no-secrets', 10],
      [`${file}:2`, 14],
    ]);
  });

  const d = sampleDelegation();
  const cases: [string, AuthorizeRequest, 'allow' | 'deny', string[]][] = [
    ['a task reads a document within its delegation', { principal: TASK, action: 'doc.read', resource: doc, context: { delegation: d } }, 'allow', ['tasks-may-read']],
    ['the same task does another action', { principal: TASK, action: 'doc.write', resource: doc, context: { delegation: d } }, 'deny', []],
    ['the task reads after its deadline', { principal: TASK, action: 'doc.read', resource: doc, context: { delegation: d, time: d.deadline } }, 'deny', []],
    [
      'a task whose requester is unverified',
      { principal: TASK, action: 'doc.read', resource: doc, context: { delegation: sampleDelegation({ requester: { id: 'someone', authenticatedBy: 'unverified' } }) } },
      'deny',
      [],
    ],
    ['a task without a delegation record', { principal: TASK, action: 'doc.read', resource: doc }, 'deny', []],
    ['the agent itself, not a task', { principal: 'spiffe://example.org/agent/summarizer', action: 'doc.read', resource: doc }, 'deny', []],
    ['a task reads a secret document (forbid wins)', { principal: TASK, action: 'doc.read', resource: { ...doc, attrs: { secret: true } }, context: { delegation: d } }, 'deny', ['no-secrets']],
    ['a task of the indexer agent lists (hierarchy)', { principal: 'spiffe://example.org/agent/indexer/task/9', action: 'doc.list', resource: doc }, 'allow', [`policies.cedar:2`]],
    ['the indexer agent itself lists', { principal: 'spiffe://example.org/agent/indexer', action: 'doc.list', resource: doc }, 'allow', [`policies.cedar:2`]],
    ['an indexer of another trust domain lists', { principal: 'spiffe://other.org/agent/indexer/task/9', action: 'doc.list', resource: doc }, 'deny', []],
    ['a plain workload lists', { principal: 'spiffe://example.org/ns/prod/sa/indexer', action: 'doc.list', resource: doc }, 'deny', []],
  ];
  for (const [what, req, decision, ids] of cases) {
    it(`${decision}: ${what}`, () => {
      const r = set.authorize(req);
      expect(r.decision).to.equal(decision);
      expect(r.policyIds).to.deep.equal(ids.map((i) => (i.startsWith('policies.cedar:') ? `${file}:${i.split(':')[1]}` : i)));
      expect(r.errors).to.deep.equal([]);
    });
  }

  it('takes context.time from the clock when the request gives none', () => {
    const req: AuthorizeRequest = { principal: TASK, action: 'doc.read', resource: doc, context: { delegation: d } };
    clock.set(d.deadline * 1000 + 1);
    try {
      expect(set.authorize(req).decision).to.equal('deny');
    } finally {
      clock.set(NOW * 1000);
    }
    expect(set.authorize(req).decision).to.equal('allow');
  });

  it('reports evaluation errors per policy and fails closed', async () => {
    const s = await PolicySet.fromText('@id("owner") permit (principal, action, resource) when { resource.owner == principal.path };');
    const r = s.authorize({ principal: TASK, action: 'doc.read', resource: doc });
    expect(r.decision).to.equal('deny');
    expect(r.errors).to.have.length(1);
    expect(r.errors[0]!.policyId).to.equal('owner');
    expect(r.errors[0]!.message).to.match(/owner/);
  });

  const badRequests: [string, () => unknown, string][] = [
    ['a delegation record of another task', () => set.authorize({ principal: 'spiffe://example.org/agent/summarizer/task/other', action: 'doc.read', resource: doc, context: { delegation: d } }), 'ERR_DELEGATION_MISMATCH'],
    ['an invalid delegation record', () => set.authorize({ principal: TASK, action: 'doc.read', resource: doc, context: { delegation: { ...d, deadline: 'soon' } as unknown as DelegationRecord } }), 'ERR_DELEGATION_INVALID'],
    ['a fractional context value', () => set.authorize({ principal: TASK, action: 'doc.read', resource: doc, context: { score: 0.5 } }), 'ERR_POLICY_REQUEST'],
    ['a context Date', () => set.authorize({ principal: TASK, action: 'doc.read', resource: doc, context: { at: new Date() } }), 'ERR_POLICY_REQUEST'],
    ['an empty action', () => set.authorize({ principal: TASK, action: '', resource: doc }), 'ERR_POLICY_REQUEST'],
    ['a resource type that is not a Cedar name', () => set.authorize({ principal: TASK, action: 'doc.read', resource: { type: 'a b', id: 'x' } }), 'ERR_POLICY_REQUEST'],
    ['a principal that is not a SPIFFE ID', () => set.authorize({ principal: 'spiffe://Example.org/x', action: 'doc.read', resource: doc }), 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
  ];
  for (const [what, fn, code] of badRequests) {
    it(`refuses a request with ${what} (${code})`, () => {
      let got: string | undefined;
      try {
        fn();
      } catch (e) {
        got = isWritError(e) ? e.code : String(e);
      }
      expect(got).to.equal(code);
    });
  }

  describe('refuses bad policies at load, naming where', () => {
    it('a syntax error: file, line, column and reason', async () => {
      const bad = join(dir, 'bad.cedar');
      await writeFile(bad, '// é: non-ASCII before the error\npermit (principal, action, resource);\n\npermit (principal, action, resource) when { context.a + };\n');
      const e = await errorOf(PolicySet.load([file, bad]));
      expect(e.code).to.equal('ERR_POLICY_PARSE');
      expect(e.details).to.include({ file: bad, line: 4, column: 57 });
      expect(e.message).to.contain(`${bad} line 4, column 57:`);
    });
    it('a duplicate id across files', async () => {
      const dup = join(dir, 'dup.cedar');
      await writeFile(dup, '\n@id("no-secrets")\nforbid (principal, action, resource);\n');
      const e = await errorOf(PolicySet.load([file, dup]));
      expect(e.code).to.equal('ERR_POLICY_INVALID');
      expect(e.details).to.include({ file: dup, line: 2, policyId: 'no-secrets' });
    });
    it('a template', async () => {
      expect((await errorOf(PolicySet.fromText('permit (principal == ?principal, action, resource);'))).code).to.equal('ERR_POLICY_INVALID');
    });
    it('a file that cannot be read', async () => {
      const e = await errorOf(PolicySet.load([join(dir, 'missing.cedar')]));
      expect(e.code).to.equal('ERR_POLICY_READ');
    });
  });

  describe('with a schema', () => {
    const schema = writCedarSchema(`
  entity Document { secret?: Bool };
  action "doc.read", "doc.list" appliesTo { principal: Workload, resource: Document, context: { time: Long, delegation?: Delegation } };`);

    it('validates the policies and the requests', async () => {
      const s = await PolicySet.fromText([{ name: 'p.cedar', text: POLICIES }], { schema, clock });
      expect(s.authorize({ principal: TASK, action: 'doc.read', resource: doc, context: { delegation: d } })).to.deep.equal({ decision: 'allow', policyIds: ['tasks-may-read'], errors: [] });
      const wrong = s.authorize({ principal: TASK, action: 'doc.read', resource: doc, context: { delegation: d, extra: 'x' } });
      expect(wrong.decision).to.equal('deny');
      expect(wrong.errors).to.have.length.greaterThan(0);
    });

    it('refuses a policy that does not match it, naming the line of the mistake', async () => {
      const text = '@id("ok")\npermit (principal, action == Writ::Action::"doc.list", resource);\n\n@id("typo")\npermit (principal, action, resource)\nwhen {\n  principal.kidn == "task"\n};\n';
      const e = await errorOf(PolicySet.fromText([{ name: 'typo.cedar', text }], { schema }));
      expect(e.code).to.equal('ERR_POLICY_INVALID');
      expect(e.details).to.include({ file: 'typo.cedar', line: 7, policyId: 'typo' });
    });

    it('refuses a schema that does not parse', async () => {
      expect((await errorOf(PolicySet.fromText(POLICIES, { schema: 'namespace Writ { entity ' }))).code).to.equal('ERR_POLICY_SCHEMA');
    });
  });

  it('decides quickly enough for per-request use (sanity; speed figures are in the bench)', () => {
    const req: AuthorizeRequest = { principal: TASK, action: 'doc.read', resource: doc, context: { delegation: d } };
    const n = 2000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) expect(set.authorize(req).decision).to.equal('allow');
    console.log(`      ${n} authorize calls: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)}/s`);
  });
});
