/**
 * The leaf-keyed cache of the server-side peer check (verifySnapshotLeaf): the chain is read once
 * per leaf and source update, and a cached result never outlives its chain's validity, its
 * snapshot, or a leaf that does not head the chain it came with.
 */
import { expect } from 'chai';
import { ManualClock } from '../../src/clock.js';
import { authorizeAny, authorizeId } from '../../src/tls/index.js';
import { verifySnapshotLeaf } from '../../src/tls/peer.js';
import { tlsStateOf } from '../../src/tls/state.js';
import { FakeSource, type Minted, TestCa, bundleSetOf } from './helpers.js';

describe('tls: verifySnapshotLeaf (server-side peer cache)', () => {
  let ca: TestCa;
  let server: Minted;
  let peer: Minted;
  let other: Minted;

  before(async () => {
    ca = await TestCa.create('example.org');
    server = await ca.mint('spiffe://example.org/service/api');
    peer = await ca.mint('spiffe://example.org/agent/a/task/1', 600);
    other = await ca.mint('spiffe://example.org/agent/a/task/2', 600);
  });

  function setup() {
    const source = new FakeSource({ svid: server.svid, bundles: bundleSetOf(ca) });
    const state = tlsStateOf(source);
    const clock = new ManualClock(Date.now());
    let reads = 0;
    const chainOf = (m: Minted) => () => {
      reads++;
      return m.minted.chain.map((c) => Buffer.from(c));
    };
    const check = (m: Minted, chain = chainOf(m), authorizer = authorizeAny()) => verifySnapshotLeaf(state.snapshot(), Buffer.from(m.minted.chain[0]!), chain, authorizer, clock, 'client');
    return { source, clock, check, chainOf, reads: () => reads };
  }

  it('reads the chain once per leaf and runs the authorizer on every call', () => {
    const t = setup();
    expect(t.check(peer).spiffeId.toString()).to.equal('spiffe://example.org/agent/a/task/1');
    expect(t.check(peer).chain).to.have.length(peer.minted.chain.length);
    expect(t.reads()).to.equal(1);
    expect(() => t.check(peer, t.chainOf(peer), authorizeId('spiffe://example.org/agent/a/task/9'))).to.throw().with.property('code', 'ERR_TLS_PEER_NOT_AUTHORIZED');
    expect(t.reads()).to.equal(1);
    t.check(other);
    expect(t.reads()).to.equal(2);
  });

  it('verifies again after a source update (a new CRL refuses a cached leaf)', async () => {
    const t = setup();
    t.check(peer);
    t.source.set({ crls: await ca.crls([peer]) });
    expect(() => t.check(peer)).to.throw().with.nested.property('details.reason', 'ERR_SVID_X509_REVOKED');
    expect(t.reads()).to.equal(2);
  });

  it('verifies again once the time leaves the validity window of the cached chain', () => {
    const t = setup();
    t.check(peer);
    t.clock.advance(601_000);
    expect(() => t.check(peer)).to.throw().with.property('code', 'ERR_TLS_PEER_INVALID');
    expect(t.reads()).to.equal(2);
  });

  it('refuses a chain that does not start with the leaf, and a missing leaf', () => {
    const t = setup();
    expect(() => t.check(peer, t.chainOf(other))).to.throw().with.property('code', 'ERR_TLS_PEER_INVALID');
    expect(() => verifySnapshotLeaf(tlsStateOf(t.source).snapshot(), undefined, t.chainOf(peer), authorizeAny(), t.clock, 'client')).to.throw().with.property('code', 'ERR_TLS_PEER_MISSING');
    expect(() => t.check(peer, () => [])).to.throw().with.property('code', 'ERR_TLS_PEER_MISSING');
    // Nothing bad was cached: the honest chain still verifies.
    expect(t.check(peer).spiffeId.toString()).to.equal('spiffe://example.org/agent/a/task/1');
  });
});
