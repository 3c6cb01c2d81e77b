import { expect } from 'chai';
import { newWorkloadKey } from '../../src/ca/index.js';
import { encodeDelegationExtension, type DelegationRecord } from '../../src/policy/index.js';
import { authorizeAny, verifyPeer } from '../../src/tls/index.js';
import { TestCa, bundleSetOf } from './helpers.js';

const AGENT = 'spiffe://example.org/agent/summarizer';
const TASK = `${AGENT}/task/t0123456789abcdef`;

function record(over: Partial<DelegationRecord> = {}): DelegationRecord {
  const now = Math.floor(Date.now() / 1000);
  return {
    taskId: 't0123456789abcdef',
    agent: AGENT,
    requester: { id: 'alice@example.com', authenticatedBy: 'unverified' },
    approver: { id: 'root', authenticatedBy: 'os-user' },
    purpose: 'summarize ticket 4411',
    deadline: now + 600,
    decisionId: 'd-1',
    issuedAt: now,
    ...over,
  } as DelegationRecord;
}

describe('tls: the delegation record on a verified peer', () => {
  let ca: TestCa;
  before(async () => {
    ca = await TestCa.create('example.org');
  });

  const mintWith = async (id: string, extension?: Buffer) => {
    const key = newWorkloadKey();
    return (await ca.authority.mintX509Svid({ spiffeId: id, publicKey: key.spki, ttl: 600, ...(extension ? { extraExtensions: [extension] } : {}) })).chain;
  };

  it('exposes the record of a task SVID, and nothing for other SVIDs', async () => {
    const r = record();
    const peer = verifyPeer(await mintWith(TASK, encodeDelegationExtension(r).der), bundleSetOf(ca), authorizeAny());
    expect(peer.delegation).to.deep.equal(r);
    const plain = verifyPeer(await mintWith(AGENT), bundleSetOf(ca), authorizeAny());
    expect(plain.delegation).to.equal(undefined);
  });

  it('refuses an SVID whose record names another task than its SPIFFE ID', async () => {
    const chain = await mintWith(`${AGENT}/task/another`, encodeDelegationExtension(record()).der);
    expect(() => verifyPeer(chain, bundleSetOf(ca), authorizeAny()))
      .to.throw()
      .that.satisfies((e: { code: string; details: { reason: string } }) => e.code === 'ERR_TLS_PEER_INVALID' && e.details.reason === 'ERR_DELEGATION_MISMATCH');
  });
});
