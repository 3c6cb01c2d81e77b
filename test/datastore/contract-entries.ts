/**
 * Contract: registration entry writes. Create/get/update/delete, duplicate detection (against the
 * store, inside a batch, by update), all-or-nothing batches, unknown ids, the revision counter,
 * entryChangesSince and pruning of expired entries.
 */
import { expect } from 'chai';
import type { DataStore } from '../../src/datastore/index.js';
import { expectWritError, newEntry, revisionOf, sels, TD, useStore, type OpenStore } from './contract-helpers.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const DUP = /^entry (\d+): an entry with the same SPIFFE ID, parent ID and selectors already exists \(id [^)]+\)\.$/;

export function entryWriteContract(open: OpenStore): void {
  describe('entries: create, get, update, delete', () => {
    const store = useStore(open);

    it('creates entries with generated UUIDs, canonical selectors and increasing revisions, and gets them back', async () => {
      const fields = { hint: 'h', admin: true, downstream: true, x509SvidTtl: 60, jwtSvidTtl: 30, expiresAt: 4_000_000_000 };
      const input = newEntry({
        ...fields,
        selectors: sels('unix:uid:1000', 'k8s:ns:prod', 'unix:gid:0', 'k8s:ns:prod'),
        federatesWith: ['b.org', 'a.org', 'b.org'],
        dnsNames: ['x.example', 'a.example'],
      });
      const [a, b] = await store().createEntries([input, newEntry({ id: 'chosen-id' })]);
      expect(a?.id).to.match(UUID_V4);
      expect(b?.id).to.equal('chosen-id');
      expect(a?.selectors).to.deep.equal(sels('k8s:ns:prod', 'unix:gid:0', 'unix:uid:1000'));
      expect(a?.federatesWith).to.deep.equal(['a.org', 'b.org']);
      expect(a?.dnsNames).to.deep.equal(['x.example', 'a.example']);
      expect(a).to.include({ spiffeId: input.spiffeId, parentId: input.parentId, ...fields });
      expect(Number.isInteger(a?.createdAt)).to.equal(true);
      expect(a?.revision).to.be.greaterThan(0);
      expect(b?.revision).to.be.greaterThan(a?.revision ?? Infinity);
      expect(await store().getEntry(a?.id ?? '')).to.deep.equal(a);
      expect(await store().getEntry(b?.id ?? '')).to.deep.equal(b);
      expect(await store().getEntry('no-such-id')).to.equal(undefined);
      expect(await store().countEntries()).to.equal(2);
    });

    it('updates only the fields in the patch, bumps the revision and keeps createdAt', async () => {
      const [e] = await store().createEntries([newEntry({ hint: 'old', expiresAt: 4_000_000_000, dnsNames: ['a.example'] })]);
      if (!e) throw new Error('not created');
      const [u] = await store().updateEntries([{ id: e.id, patch: { hint: 'new', expiresAt: null, selectors: sels('unix:uid:2', 'unix:gid:2') } }]);
      expect(u).to.deep.equal({ ...e, hint: 'new', expiresAt: null, selectors: sels('unix:gid:2', 'unix:uid:2'), revision: u?.revision });
      expect(u?.revision).to.be.greaterThan(e.revision);
      expect(await store().getEntry(e.id)).to.deep.equal(u);
      // matching follows the new selectors, not the old ones
      expect(await store().countEntries({ selectors: { set: sels('unix:uid:1000'), match: 'any' } })).to.equal(0);
      expect(await store().countEntries({ selectors: { set: sels('unix:uid:2'), match: 'any' } })).to.equal(1);
      expect(await store().countEntries({ selectors: { set: sels('unix:uid:2', 'unix:gid:2', 'unix:pid:1'), match: 'subset' } })).to.equal(1);
      expect(await store().countEntries({ selectors: { set: sels('unix:uid:1000', 'unix:gid:2'), match: 'subset' } })).to.equal(0);
      expect(await store().countEntries({ selectors: { set: sels('unix:uid:2', 'unix:gid:2'), match: 'exact' } })).to.equal(1);
      const [f] = await store().updateEntries([{ id: e.id, patch: { federatesWith: ['z.org', 'y.org'] } }]);
      expect(f?.federatesWith).to.deep.equal(['y.org', 'z.org']);
      expect(f?.selectors).to.deep.equal(u?.selectors);
      expect(await store().countEntries({ federatesWith: { trustDomains: ['z.org'], match: 'any' } })).to.equal(1);
    });

    it('deletes entries and returns them; their selectors no longer match', async () => {
      const [a, b] = await store().createEntries([newEntry(), newEntry({ selectors: sels('unix:uid:7') })]);
      const deleted = await store().deleteEntries([a?.id ?? '', a?.id ?? '']);
      expect(deleted).to.deep.equal([a]);
      expect(await store().getEntry(a?.id ?? '')).to.equal(undefined);
      expect(await store().countEntries({ selectors: { set: sels('unix:uid:1000'), match: 'any' } })).to.equal(0);
      expect((await store().listEntries()).entries).to.deep.equal([b]);
    });

    it('fails update and delete of an unknown id with ERR_ENTRY_NOT_FOUND naming the batch index', async () => {
      const [e] = await store().createEntries([newEntry()]);
      const updates = [
        { id: e?.id ?? '', patch: { hint: 'x' } },
        { id: 'nope', patch: { hint: 'y' } },
      ];
      await expectWritError(store().updateEntries(updates), 'ERR_ENTRY_NOT_FOUND', /^entry 1: /);
      await expectWritError(store().deleteEntries(['nope']), 'ERR_ENTRY_NOT_FOUND', /^entry 0: /);
      expect((await store().getEntry(e?.id ?? ''))?.hint).to.equal('', 'the failed batch left the first update out');
    });
  });

  describe('entries: duplicates and all-or-nothing batches', () => {
    const store = useStore(open);
    const same = { spiffeId: `${TD}/dup`, parentId: `${TD}/agent/a1` };

    it('refuses an entry similar to a stored one (selector order does not matter), naming the index', async () => {
      const [first] = await store().createEntries([newEntry({ ...same, selectors: sels('unix:uid:1', 'unix:gid:1') })]);
      const e = await expectWritError(store().createEntries([newEntry(), newEntry({ ...same, selectors: sels('unix:gid:1', 'unix:uid:1') })]), 'ERR_ENTRY_EXISTS', DUP);
      expect(e.message).to.match(/^entry 1: /).and.to.include(first?.id ?? '?');
      expect(await store().countEntries()).to.equal(1);
    });

    it('allows the same SPIFFE ID and parent with a different selector set', async () => {
      await store().createEntries([newEntry({ ...same, selectors: sels('unix:uid:1') }), newEntry({ ...same, selectors: sels('unix:uid:1', 'unix:gid:1') })]);
      expect(await store().countEntries({ spiffeId: same.spiffeId })).to.equal(2);
    });

    it('refuses duplicates inside one batch and an existing id', async () => {
      await expectWritError(store().createEntries([newEntry(), newEntry(same), newEntry(), newEntry(same)]), 'ERR_ENTRY_EXISTS', /^entry 3: /);
      await store().createEntries([newEntry({ id: 'taken' })]);
      await expectWritError(store().createEntries([newEntry({ id: 'fresh' }), newEntry({ id: 'taken' })]), 'ERR_ENTRY_EXISTS', /^entry 1: .*taken/);
      await expectWritError(store().createEntries([newEntry({ id: 'twice' }), newEntry({ id: 'twice' })]), 'ERR_ENTRY_EXISTS', /^entry 1: /);
      expect(await store().countEntries()).to.equal(1);
    });

    it('refuses an update that would make a duplicate', async () => {
      const [, b] = await store().createEntries([newEntry({ ...same, selectors: sels('unix:uid:1') }), newEntry({ ...same, selectors: sels('unix:uid:2') })]);
      await expectWritError(store().updateEntries([{ id: b?.id ?? '', patch: { selectors: sels('unix:uid:1') } }]), 'ERR_ENTRY_EXISTS', /^entry 0: /);
      expect((await store().getEntry(b?.id ?? ''))?.selectors).to.deep.equal(sels('unix:uid:2'));
      // an update that keeps an entry's own identity is not a duplicate of itself
      await store().updateEntries([{ id: b?.id ?? '', patch: { hint: 'still me' } }]);
    });

    it('leaves the store unchanged when any item of a batch fails', async () => {
      const [a, b] = await store().createEntries([newEntry({ ...same, selectors: sels('unix:uid:1') }), newEntry()]);
      const count = await store().countEntries();
      const rev = await revisionOf(store());
      await expectWritError(store().createEntries([newEntry(), newEntry(), newEntry({ ...same, selectors: sels('unix:uid:1') })]), 'ERR_ENTRY_EXISTS', /^entry 2: /);
      const updates = [
        { id: b?.id ?? '', patch: { hint: 'changed' } },
        { id: b?.id ?? '', patch: { ...same, selectors: sels('unix:uid:1') } },
      ];
      await expectWritError(store().updateEntries(updates), 'ERR_ENTRY_EXISTS', /^entry 1: /);
      await expectWritError(store().deleteEntries([a?.id ?? '', 'missing']), 'ERR_ENTRY_NOT_FOUND', /^entry 1: /);
      expect(await store().countEntries()).to.equal(count);
      expect(await revisionOf(store())).to.equal(rev);
      expect(await store().getEntry(b?.id ?? '')).to.deep.equal(b);
      expect(await store().getEntry(a?.id ?? '')).to.deep.equal(a);
    });
  });

  describe('entries: revisions, change feed and pruning', () => {
    const store = useStore(open);

    it('bumps the store revision on every create, update and delete and reports changes since a revision', async () => {
      const s: DataStore = store();
      const r0 = await revisionOf(s);
      const created = await s.createEntries([newEntry(), newEntry(), newEntry()]);
      const revs = created.map((e) => e.revision);
      expect(revs.every((r, i) => r > (i === 0 ? r0 : (revs[i - 1] ?? Infinity)))).to.equal(true, `increasing: ${revs.join(',')}`);
      const r1 = await revisionOf(s);
      expect(r1).to.equal(revs[2]);
      const c1 = await s.entryChangesSince(r0);
      expect(c1).to.deep.equal({ changed: created, deleted: [], revision: r1, complete: true });

      const [a, b, c] = created.map((e) => e.id) as [string, string, string];
      const [ua] = await s.updateEntries([{ id: a, patch: { hint: 'u' } }]);
      expect(await s.entryChangesSince(r1)).to.deep.equal({ changed: [ua], deleted: [], revision: ua?.revision, complete: true });
      const r2 = await revisionOf(s);
      await s.deleteEntries([b]);
      const r3 = await revisionOf(s);
      expect(r3).to.be.greaterThan(r2);
      expect(await s.entryChangesSince(r2)).to.deep.equal({ changed: [], deleted: [b], revision: r3, complete: true });
      const all = await s.entryChangesSince(r0);
      expect(all.changed.map((e) => e.id)).to.deep.equal([c, a], 'current entries only, in revision order');
      expect(all.deleted).to.deep.equal([b]);
      expect(await s.entryChangesSince(r3)).to.deep.equal({ changed: [], deleted: [], revision: r3, complete: true });
    });

    it('prunes the change feed to its newest deletes; reads from before them say they are incomplete', async () => {
      const s = store();
      const r0 = await revisionOf(s);
      const made = await s.createEntries([newEntry(), newEntry(), newEntry(), newEntry(), newEntry()]);
      const ids = made.map((e) => e.id);
      const revs: number[] = [];
      for (const id of ids.slice(0, 4)) {
        await s.deleteEntries([id]);
        revs.push(await revisionOf(s));
      }
      // 5 creates + 4 deletes recorded; keep the newest 2 deletes.
      expect(await s.pruneEntryChanges(2)).to.equal(7);
      expect((await s.entryChangesSince(r0)).complete).to.equal(false);
      expect((await s.entryChangesSince(revs[0]!)).complete).to.equal(false, 'the second delete is gone');
      const fromSecond = await s.entryChangesSince(revs[1]!);
      expect(fromSecond.complete).to.equal(true);
      expect(fromSecond.deleted).to.deep.equal([ids[2], ids[3]]);
      // Still-existing entries come from their own revision, not from the feed.
      expect((await s.entryChangesSince(r0)).changed.map((e) => e.id)).to.deep.equal([ids[4]]);
      // Nothing older left to drop; the floor never moves back.
      expect(await s.pruneEntryChanges(10)).to.equal(0);
      expect((await s.entryChangesSince(revs[0]!)).complete).to.equal(false);
      expect(await s.pruneEntryChanges(0)).to.equal(2);
      expect((await s.entryChangesSince(revs[3]!)).complete).to.equal(true);
      expect((await s.entryChangesSince(revs[2]!)).complete).to.equal(false);
    });

    it('prunes entries with expiresAt <= now, reporting them as deleted', async () => {
      const now = 2_000_000_000;
      const [past, edge, future, never] = await store().createEntries([
        newEntry({ expiresAt: now - 10 }),
        newEntry({ expiresAt: now }),
        newEntry({ expiresAt: now + 1 }),
        newEntry({ expiresAt: null }),
      ]);
      expect(await store().countEntries({ expiresBefore: now })).to.equal(2);
      const r = await revisionOf(store());
      const pruned = await store().pruneExpiredEntries(now);
      expect([...pruned].sort()).to.deep.equal([past?.id, edge?.id].sort());
      expect(await store().getEntry(past?.id ?? '')).to.equal(undefined);
      expect((await store().listEntries()).entries.map((e) => e.id).sort()).to.deep.equal([future?.id, never?.id].sort());
      const changes = await store().entryChangesSince(r);
      expect([...changes.deleted].sort()).to.deep.equal([past?.id, edge?.id].sort());
      expect(changes.revision).to.be.greaterThan(r);
      expect(await store().pruneExpiredEntries(now)).to.deep.equal([]);
    });
  });
}
