/**
 * Contract: entry filters and pages. Each field filter, the four selector match modes and the four
 * federatesWith match modes (table-driven over entry sets where the modes give different answers),
 * filters combined, and keyset pagination (no duplicates, no gaps, stable; bad tokens refused).
 */
import { expect } from 'chai';
import type { EntryFilter, RegistrationEntry, SelectorMatch } from '../../src/datastore/index.js';
import { expectWritError, listAll, newEntry, sels, TD, useStore, type OpenStore } from './contract-helpers.js';

/** Entry name -> selectors. */
const SELECTOR_SET: Record<string, string[]> = {
  A: ['unix:uid:1000'],
  AB: ['unix:uid:1000', 'unix:gid:50'],
  ABC: ['unix:uid:1000', 'unix:gid:50', 'k8s:ns:prod'],
  BD: ['unix:gid:50', 'k8s:sa:web'],
  D: ['k8s:sa:web'],
  // same value as A under another type: must never match A's selector
  X: ['k8s:uid:1000'],
};

const SELECTOR_CASES: Array<{ filter: string[]; match: SelectorMatch; want: string[] }> = [
  { filter: ['unix:uid:1000', 'unix:gid:50'], match: 'exact', want: ['AB'] },
  { filter: ['unix:uid:1000', 'unix:gid:50'], match: 'subset', want: ['A', 'AB'] },
  { filter: ['unix:uid:1000', 'unix:gid:50'], match: 'superset', want: ['AB', 'ABC'] },
  { filter: ['unix:uid:1000', 'unix:gid:50'], match: 'any', want: ['A', 'AB', 'ABC', 'BD'] },
  { filter: ['k8s:ns:prod'], match: 'exact', want: [] },
  { filter: ['k8s:ns:prod'], match: 'subset', want: [] },
  { filter: ['k8s:ns:prod'], match: 'superset', want: ['ABC'] },
  { filter: ['k8s:ns:prod'], match: 'any', want: ['ABC'] },
  { filter: ['unix:uid:1000', 'unix:gid:50', 'k8s:ns:prod', 'k8s:sa:web', 'unix:pid:1'], match: 'subset', want: ['A', 'AB', 'ABC', 'BD', 'D'] },
  { filter: ['unix:uid:1000', 'unix:gid:50', 'k8s:ns:prod', 'k8s:sa:web'], match: 'superset', want: [] },
  { filter: ['k8s:sa:web', 'unix:gid:50'], match: 'exact', want: ['BD'] },
  { filter: ['k8s:uid:1000'], match: 'subset', want: ['X'] },
  // a filter listing a selector twice means the same set
  { filter: ['unix:gid:50', 'unix:uid:1000', 'unix:gid:50'], match: 'exact', want: ['AB'] },
];

/** Entry name -> federated trust domains. An entry with none is a subset of every set (∅ ⊆ F). */
const FEDERATES_SET: Record<string, string[]> = {
  F0: [],
  Fx: ['x.org'],
  Fxy: ['x.org', 'y.org'],
  Fxyz: ['x.org', 'y.org', 'z.org'],
  Fyw: ['w.org', 'y.org'],
};

const FEDERATES_CASES: Array<{ filter: string[]; match: SelectorMatch; want: string[] }> = [
  { filter: ['x.org', 'y.org'], match: 'exact', want: ['Fxy'] },
  { filter: ['x.org', 'y.org'], match: 'subset', want: ['F0', 'Fx', 'Fxy'] },
  { filter: ['x.org', 'y.org'], match: 'superset', want: ['Fxy', 'Fxyz'] },
  { filter: ['x.org', 'y.org'], match: 'any', want: ['Fx', 'Fxy', 'Fxyz', 'Fyw'] },
  { filter: ['w.org'], match: 'any', want: ['Fyw'] },
  { filter: ['w.org'], match: 'subset', want: ['F0'] },
];

export function entryFilterContract(open: OpenStore): void {
  describe('entries: selector and federatesWith match modes', () => {
    const store = useStore(open);
    const names = new Map<string, string>();
    const loadSelectors = async () => {
      const created = await store().createEntries(Object.entries(SELECTOR_SET).map(([name, s]) => newEntry({ spiffeId: `${TD}/sel/${name}`, selectors: sels(...s) })));
      for (const e of created) names.set(e.id, e.spiffeId.slice(`${TD}/sel/`.length));
    };
    const loadFederates = async () => {
      const created = await store().createEntries(Object.entries(FEDERATES_SET).map(([name, f]) => newEntry({ spiffeId: `${TD}/fed/${name}`, federatesWith: f })));
      for (const e of created) names.set(e.id, e.spiffeId.slice(`${TD}/fed/`.length));
    };
    const namesOf = (list: RegistrationEntry[]) => list.map((e) => names.get(e.id) ?? '?').sort();

    for (const c of SELECTOR_CASES) {
      it(`selectors ${c.match} {${c.filter.join(', ')}} → [${c.want.join(', ')}]`, async () => {
        await loadSelectors();
        const filter: EntryFilter = { selectors: { set: sels(...c.filter), match: c.match } };
        expect(namesOf((await store().listEntries(filter)).entries)).to.deep.equal([...c.want].sort());
        expect(await store().countEntries(filter)).to.equal(c.want.length);
      });
    }

    for (const c of FEDERATES_CASES) {
      it(`federatesWith ${c.match} {${c.filter.join(', ')}} → [${c.want.join(', ')}]`, async () => {
        await loadFederates();
        const filter: EntryFilter = { federatesWith: { trustDomains: c.filter, match: c.match } };
        expect(namesOf((await store().listEntries(filter)).entries)).to.deep.equal([...c.want].sort());
        expect(await store().countEntries(filter)).to.equal(c.want.length);
      });
    }

    it('combines a selector filter with a federatesWith filter and a parent filter (AND)', async () => {
      const p = `${TD}/agent/other`;
      const created = await store().createEntries([
        newEntry({ selectors: sels('unix:uid:1'), federatesWith: ['x.org'] }),
        newEntry({ selectors: sels('unix:uid:1'), federatesWith: ['x.org'], parentId: p }),
        newEntry({ selectors: sels('unix:uid:1'), federatesWith: ['y.org'], parentId: p }),
        newEntry({ selectors: sels('unix:uid:2'), federatesWith: ['x.org'], parentId: p }),
      ]);
      const filter: EntryFilter = {
        parentId: p,
        selectors: { set: sels('unix:uid:1', 'unix:gid:1'), match: 'subset' },
        federatesWith: { trustDomains: ['x.org'], match: 'any' },
      };
      expect((await store().listEntries(filter)).entries.map((e) => e.id)).to.deep.equal([created[1]?.id]);
      expect(await store().countEntries(filter)).to.equal(1);
    });
  });

  describe('entries: field filters', () => {
    const store = useStore(open);

    it('filters by ids, spiffeId, parentId, hint, downstream and expiresBefore, alone and together', async () => {
      const p2 = `${TD}/agent/a2`;
      const [e0, e1, e2, e3] = await store().createEntries([
        newEntry({ spiffeId: `${TD}/same`, hint: 'blue', expiresAt: 100 }),
        newEntry({ spiffeId: `${TD}/same`, parentId: p2, downstream: true, expiresAt: 200 }),
        newEntry({ parentId: p2, hint: 'blue', selectors: sels('unix:uid:9') }),
        newEntry({ downstream: true, expiresAt: 300 }),
      ]);
      const ids = (list: RegistrationEntry[]) => list.map((e) => e.id).sort();
      const cases: Array<[EntryFilter, Array<RegistrationEntry | undefined>]> = [
        [{}, [e0, e1, e2, e3]],
        [{ ids: [e1?.id ?? '', e3?.id ?? '', 'unknown'] }, [e1, e3]],
        [{ ids: [] }, []],
        [{ spiffeId: `${TD}/same` }, [e0, e1]],
        [{ parentId: p2 }, [e1, e2]],
        [{ hint: 'blue' }, [e0, e2]],
        [{ hint: '' }, [e1, e3]],
        [{ downstream: true }, [e1, e3]],
        [{ downstream: false }, [e0, e2]],
        [{ expiresBefore: 200 }, [e0, e1]],
        [{ expiresBefore: 99 }, []],
        [{ spiffeId: `${TD}/same`, parentId: p2 }, [e1]],
        [{ hint: 'blue', parentId: p2 }, [e2]],
        [{ downstream: true, expiresBefore: 250 }, [e1]],
        [{ ids: [e0?.id ?? '', e2?.id ?? ''], hint: 'blue', selectors: { set: sels('unix:uid:9'), match: 'exact' } }, [e2]],
      ];
      for (const [filter, want] of cases) {
        const label = JSON.stringify(filter);
        expect(ids((await store().listEntries(filter)).entries), label).to.deep.equal(ids(want as RegistrationEntry[]));
        expect(await store().countEntries(filter), label).to.equal(want.length);
      }
    });
  });

  describe('entries: pagination', () => {
    const store = useStore(open);

    it('pages through all entries in id order without duplicates or gaps, stably', async () => {
      const created = await store().createEntries(Array.from({ length: 25 }, () => newEntry()));
      const want = created.map((e) => e.id).sort();
      const first = await store().listEntries({}, { pageSize: 7 });
      expect(first.entries).to.have.length(7);
      expect(first.nextPageToken).to.be.a('string');
      const again = await store().listEntries({}, { pageSize: 7, pageToken: first.nextPageToken ?? '' });
      const again2 = await store().listEntries({}, { pageSize: 7, pageToken: first.nextPageToken ?? '' });
      expect(again2).to.deep.equal(again, 'the same token gives the same page');
      const pages: number[] = [];
      let token: string | undefined;
      const seen: string[] = [];
      do {
        const page = await store().listEntries({}, token === undefined ? { pageSize: 7 } : { pageSize: 7, pageToken: token });
        pages.push(page.entries.length);
        seen.push(...page.entries.map((e) => e.id));
        token = page.nextPageToken;
      } while (token !== undefined);
      expect(pages).to.deep.equal([7, 7, 7, 4]);
      expect(seen).to.deep.equal(want);
      // an exact multiple of the page size ends without an empty trailing page
      expect((await listAll(store(), {}, 5)).map((e) => e.id)).to.deep.equal(want);
      const lastOfFive = await store().listEntries({}, { pageSize: 25 });
      expect(lastOfFive.nextPageToken).to.equal(undefined);
      // the default page holds them all
      expect((await store().listEntries()).entries.map((e) => e.id)).to.deep.equal(want);
    });

    it('pages through a selector match and keeps going when entries are added mid-way', async () => {
      const created = await store().createEntries(Array.from({ length: 12 }, () => newEntry({ selectors: sels('unix:uid:5') })));
      await store().createEntries(Array.from({ length: 5 }, () => newEntry({ selectors: sels('unix:uid:6') })));
      const filter: EntryFilter = { selectors: { set: sels('unix:uid:5', 'unix:gid:5'), match: 'subset' } };
      const page1 = await store().listEntries(filter, { pageSize: 5 });
      await store().createEntries([newEntry({ selectors: sels('unix:uid:5'), id: 'zzzz-late' })]);
      const rest = [];
      let token = page1.nextPageToken;
      while (token !== undefined) {
        const p = await store().listEntries(filter, { pageSize: 5, pageToken: token });
        rest.push(...p.entries);
        token = p.nextPageToken;
      }
      const seen = [...page1.entries, ...rest].map((e) => e.id);
      expect(seen).to.deep.equal([...created.map((e) => e.id), 'zzzz-late'].sort());
    });

    it('refuses a malformed page token and an out-of-range page size', async () => {
      await store().createEntries([newEntry(), newEntry()]);
      for (const pageToken of ['', 'not a token!', 'AAAA', 'e1', Buffer.from('xx:abc').toString('base64url')]) {
        await expectWritError(store().listEntries({}, { pageToken }), 'ERR_PAGE_TOKEN_INVALID');
      }
      for (const pageSize of [0, -1, 10001, 1.5]) await expectWritError(store().listEntries({}, { pageSize }), 'ERR_INPUT_INVALID');
      expect((await store().listEntries({}, { pageSize: 10000 })).entries).to.have.length(2);
      expect((await store().listEntries({}, { pageSize: 1 })).entries).to.have.length(1);
    });
  });
}
