import { expect } from 'chai';
import fc from 'fast-check';
import { isWritError } from '../../src/errors.js';
import {
  type DelegationRecord,
  MAX_DELEGATION_BYTES,
  agentIdParts,
  canonicalJson,
  checkDelegationSubject,
  decodeDelegationFromClaims,
  delegationClaims,
  delegationJson,
  parseDelegation,
  parseDelegationJson,
  taskSpiffeId,
} from '../../src/policy/index.js';
import { codeOf, sampleDelegation } from './fixtures.js';

describe('policy/delegation: the delegation record', () => {
  it('parses a valid record into a normalized copy (absent optional members dropped)', () => {
    const input = { ...sampleDelegation(), requester: { id: 'alice', authenticatedBy: 'os-user', issuer: undefined } };
    const r = parseDelegation(input);
    expect(r).to.deep.equal(sampleDelegation());
    expect(Object.keys(r.requester)).to.deep.equal(['id', 'authenticatedBy']);
    expect(r).to.not.equal(input);
  });

  const bad: [string, unknown, string][] = [
    ['not an object', 'x', 'ERR_DELEGATION_INVALID record'],
    ['an array', [], 'ERR_DELEGATION_INVALID record'],
    ['an unknown member', { ...sampleDelegation(), scope: 'all' }, 'ERR_DELEGATION_INVALID record.scope'],
    ['a missing taskId', { ...sampleDelegation(), taskId: undefined }, 'ERR_DELEGATION_INVALID taskId'],
    ['a taskId with a slash', sampleDelegation({ taskId: 'a/b' }), 'ERR_DELEGATION_INVALID taskId'],
    ['a taskId ".."', sampleDelegation({ taskId: '..' }), 'ERR_DELEGATION_INVALID taskId'],
    ['an agent that is a task ID', sampleDelegation({ agent: 'spiffe://example.org/agent/a/task/t' }), 'ERR_DELEGATION_INVALID agent'],
    ['an agent that is not an agent path', sampleDelegation({ agent: 'spiffe://example.org/ns/x/sa/y' }), 'ERR_DELEGATION_INVALID agent'],
    ['an agent that is not a SPIFFE ID', sampleDelegation({ agent: 'https://example.org/agent/a' }), 'ERR_DELEGATION_INVALID agent'],
    ['an unknown authentication method', { ...sampleDelegation(), requester: { id: 'a', authenticatedBy: 'password' } }, 'ERR_DELEGATION_INVALID requester.authenticatedBy'],
    ['an OIDC party without issuer', sampleDelegation({ approver: { id: 'b', authenticatedBy: 'oidc' } }), 'ERR_DELEGATION_INVALID approver.issuer'],
    ['an OIDC party with an http issuer', sampleDelegation({ approver: { id: 'b', authenticatedBy: 'oidc', issuer: 'http://x' } }), 'ERR_DELEGATION_INVALID approver.issuer'],
    ['an unverified party with an issuer', sampleDelegation({ requester: { id: 'a', authenticatedBy: 'unverified', issuer: 'https://x' } }), 'ERR_DELEGATION_INVALID requester.issuer'],
    ['a spiffe-id party that is not a SPIFFE ID', sampleDelegation({ approver: { id: 'bob', authenticatedBy: 'spiffe-id' } }), 'ERR_DELEGATION_INVALID approver.id'],
    ['a party with an unknown member', { ...sampleDelegation(), approver: { id: 'b', authenticatedBy: 'os-user', uid: 0 } }, 'ERR_DELEGATION_INVALID approver.uid'],
    ['an empty party id', sampleDelegation({ requester: { id: '', authenticatedBy: 'os-user' } }), 'ERR_DELEGATION_INVALID requester.id'],
    ['an empty purpose', sampleDelegation({ purpose: '' }), 'ERR_DELEGATION_INVALID purpose'],
    ['a purpose with a newline', sampleDelegation({ purpose: 'a\nb' }), 'ERR_DELEGATION_INVALID purpose'],
    ['a purpose with a lone surrogate', sampleDelegation({ purpose: 'a\ud800' }), 'ERR_DELEGATION_INVALID purpose'],
    ['a purpose of 513 characters', sampleDelegation({ purpose: 'x'.repeat(513) }), 'ERR_DELEGATION_INVALID purpose'],
    ['a fractional deadline', sampleDelegation({ deadline: 1_767_229_200.5 }), 'ERR_DELEGATION_INVALID deadline'],
    ['a deadline in milliseconds past year 9999', sampleDelegation({ deadline: 1_767_229_200_000 }), 'ERR_DELEGATION_INVALID deadline'],
    ['a deadline as a string', { ...sampleDelegation(), deadline: '1767229200' }, 'ERR_DELEGATION_INVALID deadline'],
    ['a negative issuedAt', sampleDelegation({ issuedAt: -1 }), 'ERR_DELEGATION_INVALID issuedAt'],
    ['a deadline not after issuedAt', sampleDelegation({ deadline: 1_767_225_600 }), 'ERR_DELEGATION_INVALID deadline'],
    ['a decisionId with a space', sampleDelegation({ decisionId: 'dec 1' }), 'ERR_DELEGATION_INVALID decisionId'],
    [
      'a record over the size limit',
      sampleDelegation({ agent: `spiffe://example.org/agent/${'a'.repeat(2000)}`, purpose: '€'.repeat(512), requester: { id: '€'.repeat(256), authenticatedBy: 'os-user' } }),
      'ERR_DELEGATION_TOO_LARGE',
    ],
  ];
  for (const [what, input, code] of bad) {
    it(`refuses ${what}`, () => expect(codeOf(() => parseDelegation(input))).to.equal(code));
  }

  it('refuses JSON text that is not JSON or is too long', () => {
    expect(codeOf(() => parseDelegationJson('{"taskId":'))).to.equal('ERR_DELEGATION_INVALID record');
    expect(codeOf(() => parseDelegationJson(' '.repeat(MAX_DELEGATION_BYTES + 1)))).to.equal('ERR_DELEGATION_TOO_LARGE');
  });

  const party = fc.oneof(
    fc.record({ id: fc.stringMatching(/^[a-z][a-z0-9._-]{0,30}$/), authenticatedBy: fc.constantFrom('os-user' as const, 'unverified' as const) }),
    fc.record({ id: fc.stringMatching(/^[a-z0-9]{1,20}$/), authenticatedBy: fc.constant('oidc' as const), issuer: fc.constantFrom('https://login.example.org', 'https://accounts.example.com/x') }),
    fc.record({ id: fc.stringMatching(/^[a-z0-9]{1,20}$/).map((s) => `spiffe://example.org/admin/${s}`), authenticatedBy: fc.constant('spiffe-id' as const) }),
  );
  const validRecord = fc
    .record({
      taskId: fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/),
      agent: fc.stringMatching(/^[a-z0-9-]{1,30}$/).map((n) => `spiffe://example.org/agent/${n}`),
      requester: party,
      approver: party,
      purpose: fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f\u007f-\u009f]/.test(s)), // eslint-disable-line no-control-regex
      issuedAt: fc.integer({ min: 0, max: 4_000_000_000 }),
      ttl: fc.integer({ min: 1, max: 86_400 * 30 }),
      decisionId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,60}$/),
    })
    .map(({ ttl, ...r }) => ({ ...r, deadline: r.issuedAt + ttl }) as DelegationRecord);

  it('accepts every generated valid record and round-trips it through canonical JSON (property)', () => {
    fc.assert(
      fc.property(validRecord, (r) => {
        const json = delegationJson(r);
        expect(json).to.equal(canonicalJson(r));
        expect(parseDelegationJson(json)).to.deep.equal(r);
        expect(decodeDelegationFromClaims(JSON.parse(JSON.stringify(delegationClaims(r))) as Record<string, unknown>)).to.deep.equal(r);
      }),
      { numRuns: 300 },
    );
  });

  it('answers any input with a record or a coded delegation error, never anything else (property)', () => {
    const mutated = fc.tuple(validRecord, fc.constantFrom('taskId', 'agent', 'requester', 'approver', 'purpose', 'deadline', 'decisionId', 'issuedAt', 'extra'), fc.jsonValue()).map(([r, k, v]) => ({ ...r, [k]: v }));
    fc.assert(
      fc.property(fc.oneof(fc.anything(), mutated), (input) => {
        try {
          parseDelegation(input);
        } catch (e) {
          expect(isWritError(e) && e.code.startsWith('ERR_DELEGATION_'), String(e)).to.equal(true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('JWT claim: absent claim is undefined, a bad claim is a coded error', () => {
    expect(decodeDelegationFromClaims({ sub: 'spiffe://example.org/x' })).to.equal(undefined);
    expect(codeOf(() => decodeDelegationFromClaims({ writ_delegation: 'x' }))).to.equal('ERR_DELEGATION_INVALID record');
    expect(Object.keys(delegationClaims(sampleDelegation()))).to.deep.equal(['writ_delegation']);
  });

  it('checks that a record belongs to the task ID of the SVID that carries it', () => {
    const r = sampleDelegation();
    const id = taskSpiffeId(r.agent, r.taskId);
    expect(id.toString()).to.equal('spiffe://example.org/agent/summarizer/task/t-01J9X5K7Q2');
    expect(() => checkDelegationSubject(r, id)).to.not.throw();
    for (const other of ['spiffe://example.org/agent/summarizer', 'spiffe://example.org/agent/summarizer/task/other', 'spiffe://example.org/agent/other/task/t-01J9X5K7Q2', 'spiffe://other.org/agent/summarizer/task/t-01J9X5K7Q2']) {
      expect(codeOf(() => checkDelegationSubject(r, other)), other).to.equal('ERR_DELEGATION_MISMATCH');
    }
  });

  const shapes: [string, ReturnType<typeof agentIdParts>['kind'], string?, string?][] = [
    ['spiffe://example.org/agent/a', 'agent', 'a'],
    ['spiffe://example.org/agent/a/task/t1', 'task', 'a', 't1'],
    ['spiffe://example.org/agent/a/run/r1', 'workload'],
    ['spiffe://example.org/agent', 'workload'],
    ['spiffe://example.org/svc/agent/a', 'workload'],
  ];
  for (const [id, kind, agent, task] of shapes) {
    it(`reads ${id} as ${kind}`, () => {
      const p = agentIdParts(id);
      expect([p.kind, p.agentName, p.taskId]).to.deep.equal([kind, agent, task]);
    });
  }
});
