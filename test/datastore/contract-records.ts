/**
 * Contract: the records beside entries. Bundles (sequence bumps), CA slots, join tokens (single
 * use, also under 20 concurrent consumers), attested agents, revoked serials and issued SVIDs.
 */
import { expect } from 'chai';
import type { AttestedAgent, CaSlotRecord, IssuedSvid, RevokedSerial } from '../../src/datastore/index.js';
import { expectWritError, sels, TD, useStore, type OpenStore } from './contract-helpers.js';

const NOW = 1_900_000_000;

function caSlot(overrides: Partial<CaSlotRecord> = {}): CaSlotRecord {
  return {
    kind: 'x509-signing',
    slot: 'A',
    status: 'active',
    keyId: 'x509-CA-A',
    material: Buffer.from([0x30, 0x82, 0x01, 0x00, 0xff]),
    authorityId: 'ab12',
    notBefore: NOW - 100,
    notAfter: NOW + 86400,
    tainted: false,
    updatedAt: NOW,
    ...overrides,
  };
}

function agent(name: string, overrides: Partial<AttestedAgent> = {}): AttestedAgent {
  return {
    spiffeId: `${TD}/spire/agent/join_token/${name}`,
    attestationType: 'join_token',
    serial: '0a1b',
    expiresAt: NOW + 3600,
    selectors: sels('join_token:abc'),
    banned: false,
    canReattest: false,
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

export function recordsContract(open: OpenStore): void {
  describe('bundles', () => {
    const store = useStore(open);

    it('sets bundles with sequence 1 then previous + 1, lists, gets and deletes them', async () => {
      expect(await store().getBundle('example.org')).to.equal(undefined);
      const b1 = await store().setBundle('example.org', '{"keys":[1]}', 300, NOW);
      expect(b1).to.deep.equal({ trustDomain: 'example.org', document: '{"keys":[1]}', sequence: 1, refreshHint: 300, updatedAt: NOW });
      const b2 = await store().setBundle('example.org', '{"keys":[2]}', 60, NOW + 5);
      expect(b2).to.deep.equal({ trustDomain: 'example.org', document: '{"keys":[2]}', sequence: 2, refreshHint: 60, updatedAt: NOW + 5 });
      expect((await store().setBundle('example.org', '{"keys":[3]}', 60, NOW + 6)).sequence).to.equal(3);
      const other = await store().setBundle('a.example', '{"keys":[]}', 10, NOW);
      expect(other.sequence).to.equal(1);
      expect(await store().getBundle('example.org')).to.deep.include({ sequence: 3, document: '{"keys":[3]}' });
      expect((await store().listBundles()).map((b) => [b.trustDomain, b.sequence])).to.deep.equal([['a.example', 1], ['example.org', 3]]);
      expect(await store().deleteBundle('a.example')).to.equal(true);
      expect(await store().deleteBundle('a.example')).to.equal(false);
      expect(await store().getBundle('a.example')).to.equal(undefined);
      expect(await store().listBundles()).to.have.length(1);
    });
  });

  describe('CA slots', () => {
    const store = useStore(open);

    it('puts, lists (all or by kind), replaces and deletes slots', async () => {
      await store().putCaSlot(caSlot());
      await store().putCaSlot(caSlot({ slot: 'B', status: 'prepared', keyId: 'x509-CA-B' }));
      await store().putCaSlot(caSlot({ kind: 'jwt', keyId: 'JWT-Signer-A', authorityId: 'kid1' }));
      const all = await store().listCaSlots();
      expect(all.map((s) => `${s.kind}/${s.slot}`).sort()).to.deep.equal(['jwt/A', 'x509-signing/A', 'x509-signing/B']);
      const a = all.find((s) => s.kind === 'x509-signing' && s.slot === 'A');
      expect(a).to.deep.equal(caSlot());
      expect(Buffer.isBuffer(a?.material)).to.equal(true);
      expect((await store().listCaSlots('jwt')).map((s) => s.keyId)).to.deep.equal(['JWT-Signer-A']);
      expect(await store().listCaSlots('x509-root')).to.deep.equal([]);
      await store().putCaSlot(caSlot({ status: 'old', tainted: true, updatedAt: NOW + 9 }));
      const signing = await store().listCaSlots('x509-signing');
      expect(signing).to.have.length(2);
      expect(signing.find((s) => s.slot === 'A')).to.deep.include({ status: 'old', tainted: true, updatedAt: NOW + 9 });
      await store().deleteCaSlot('x509-signing', 'A');
      expect((await store().listCaSlots('x509-signing')).map((s) => s.slot)).to.deep.equal(['B']);
      await store().deleteCaSlot('x509-signing', 'A');
    });
  });

  describe('join tokens', () => {
    const store = useStore(open);
    const token = (hash: string, expiresAt = NOW + 600) => ({ tokenHash: hash, expiresAt, spiffeId: null, createdAt: NOW, usedAt: null });

    it('consumes a token once; unknown, used and expired tokens are refused with their codes', async () => {
      await store().createJoinToken({ ...token('aa'), spiffeId: `${TD}/node/alias` });
      await store().createJoinToken(token('bb', NOW + 10));
      const used = await store().consumeJoinToken('aa', NOW + 1);
      expect(used).to.deep.equal({ tokenHash: 'aa', expiresAt: NOW + 600, spiffeId: `${TD}/node/alias`, createdAt: NOW, usedAt: NOW + 1 });
      await expectWritError(store().consumeJoinToken('aa', NOW + 2), 'ERR_TOKEN_USED');
      await expectWritError(store().consumeJoinToken('cc', NOW), 'ERR_TOKEN_INVALID');
      await expectWritError(store().consumeJoinToken('bb', NOW + 10), 'ERR_TOKEN_EXPIRED');
      // the refused attempt did not spend it: before its expiry it still works
      expect((await store().consumeJoinToken('bb', NOW + 9)).usedAt).to.equal(NOW + 9);
    });

    it('lets exactly one of 20 concurrent consumers win', async () => {
      await store().createJoinToken(token('race'));
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => store().consumeJoinToken('race', NOW)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).to.have.length(1);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as { code?: string }).code).to.equal('ERR_TOKEN_USED');
    });

    it('prunes expired tokens and keeps live ones', async () => {
      await store().createJoinToken(token('old', NOW - 1));
      await store().createJoinToken(token('edge', NOW));
      await store().createJoinToken(token('live', NOW + 1));
      expect(await store().pruneJoinTokens(NOW)).to.equal(2);
      await expectWritError(store().consumeJoinToken('old', NOW - 10), 'ERR_TOKEN_INVALID');
      expect((await store().consumeJoinToken('live', NOW)).tokenHash).to.equal('live');
    });
  });

  describe('attested agents', () => {
    const store = useStore(open);

    it('upserts (keeping createdAt), gets, lists with filters and deletes agents', async () => {
      const a = agent('a', { selectors: sels('join_token:x', 'host:name:a') });
      await store().upsertAgent(a);
      expect(await store().getAgent(a.spiffeId)).to.deep.equal({ ...a, selectors: sels('host:name:a', 'join_token:x') });
      const renewed = { ...a, serial: 'ffee', expiresAt: NOW + 7200, canReattest: true, createdAt: NOW + 50, updatedAt: NOW + 50, selectors: sels('host:name:a') };
      await store().upsertAgent(renewed);
      expect(await store().getAgent(a.spiffeId)).to.deep.equal({ ...renewed, createdAt: NOW });
      await store().upsertAgent(agent('b', { banned: true }));
      await store().upsertAgent(agent('c', { attestationType: 'x509pop' }));
      const names = (list: AttestedAgent[]) => list.map((x) => x.spiffeId.split('/').pop());
      expect(names(await store().listAgents())).to.deep.equal(['a', 'b', 'c']);
      expect(names(await store().listAgents({ banned: true }))).to.deep.equal(['b']);
      expect(names(await store().listAgents({ banned: false }))).to.deep.equal(['a', 'c']);
      expect(names(await store().listAgents({ attestationType: 'join_token' }))).to.deep.equal(['a', 'b']);
      expect(names(await store().listAgents({ attestationType: 'join_token', banned: false }))).to.deep.equal(['a']);
      expect(await store().getAgent(`${TD}/nobody`)).to.equal(undefined);
      expect(await store().deleteAgent(a.spiffeId)).to.equal(true);
      expect(await store().deleteAgent(a.spiffeId)).to.equal(false);
      expect(await store().getAgent(a.spiffeId)).to.equal(undefined);
    });
  });

  describe('revoked serials', () => {
    const store = useStore(open);
    const rev = (serial: string, notAfter: number, issuerSki = 'ca1'): RevokedSerial => ({ serial, issuerSki, revokedAt: NOW, notAfter, reason: 'task ended' });

    it('adds (idempotently), lists and prunes by notAfter', async () => {
      await store().addRevoked([rev('01', NOW - 1), rev('02', NOW), rev('03', NOW + 100)]);
      await store().addRevoked([rev('01', NOW - 1), rev('01', NOW + 5, 'ca2')]);
      await store().addRevoked([]);
      const list = await store().listRevoked();
      expect(list).to.have.length(4);
      expect(list).to.deep.include(rev('03', NOW + 100));
      expect(list.filter((r) => r.serial === '01').map((r) => r.issuerSki).sort()).to.deep.equal(['ca1', 'ca2']);
      expect(await store().pruneRevoked(NOW)).to.equal(1);
      expect((await store().listRevoked()).map((r) => `${r.issuerSki}/${r.serial}`).sort()).to.deep.equal(['ca1/02', 'ca1/03', 'ca2/01']);
    });
  });

  describe('issued SVIDs', () => {
    const store = useStore(open);
    const svid = (serial: string, o: Partial<IssuedSvid> = {}): IssuedSvid => ({
      serial,
      issuerSki: 'ca1',
      spiffeId: `${TD}/agent/a/task/t1`,
      entryId: 'e1',
      agentId: `${TD}/writ/agent/join_token/x`,
      issuedAt: NOW,
      notAfter: NOW + 600,
      ...o,
    });

    it('records (ignoring duplicates), filters by entry, SPIFFE ID and expiry, and prunes', async () => {
      await store().recordIssued([svid('01'), svid('02', { issuedAt: NOW + 1, notAfter: NOW + 10 }), svid('03', { entryId: 'e2', spiffeId: `${TD}/other` })]);
      await store().recordIssued([svid('01', { notAfter: NOW + 9999 }), svid('04', { entryId: null, agentId: null, notAfter: NOW - 5 })]);
      await store().recordIssued([]);
      const serials = (l: IssuedSvid[]) => l.map((x) => x.serial);
      expect(serials(await store().listIssued({ entryId: 'e1' }))).to.deep.equal(['01', '02']);
      expect((await store().listIssued({ entryId: 'e1' }))[0]).to.deep.equal(svid('01'));
      expect(serials(await store().listIssued({ spiffeId: `${TD}/other` }))).to.deep.equal(['03']);
      expect(serials(await store().listIssued({ entryId: 'e1', notExpiredAt: NOW + 10 }))).to.deep.equal(['01']);
      expect(serials(await store().listIssued({}))).to.have.members(['01', '02', '03', '04']);
      expect((await store().listIssued({})).find((x) => x.serial === '04')).to.deep.include({ entryId: null, agentId: null });
      expect(await store().pruneIssued(NOW)).to.equal(1);
      expect(serials(await store().listIssued({}))).to.have.members(['01', '02', '03']);
    });
  });
}
