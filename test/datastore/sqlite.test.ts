/**
 * The SQLite datastore: the shared contract on real files in a temporary directory, then what is
 * SQLite's own: pragmas and file modes, migrations (idempotent reopen, future schema refused),
 * query plans that use indexes, two connections racing for one join token, and a 100,000-entry load.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { openDataStore, SQLITE_SCHEMA_VERSION, SqliteDataStore, type EntryFilter } from '../../src/datastore/index.js';
import { CHANGED_SQL, EXPIRED_SQL, SIMILAR_SQL } from '../../src/datastore/sqlite-entries.js';
import { runDataStoreContract } from './contract.js';
import { expectWritError, newEntry, sels } from './contract-helpers.js';

const deps = { clock: new ManualClock(), logger: silentLogger };
let root = '';
let n = 0;

describe('datastore: sqlite', () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'writ-datastore-'));
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  function freshPath(): string {
    n += 1;
    return join(root, `db${n}`, 'datastore.sqlite3');
  }

  runDataStoreContract('sqlite', async () => {
    const path = freshPath();
    const store = await openDataStore({ type: 'sqlite', path }, deps);
    return {
      store,
      cleanup: async () => {
        await store.close();
        rmSync(join(path, '..'), { recursive: true, force: true });
      },
    };
  });

  describe('SqliteDataStore', () => {
    const opened: SqliteDataStore[] = [];
    const open = async (path: string) => {
      const s = await SqliteDataStore.open(path, deps);
      opened.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it('uses WAL, synchronous=NORMAL, foreign keys and a busy timeout', async () => {
      const s = await open(freshPath());
      expect(s.db.pragma('journal_mode', { simple: true })).to.equal('wal');
      expect(s.db.pragma('synchronous', { simple: true })).to.equal(1);
      expect(s.db.pragma('foreign_keys', { simple: true })).to.equal(1);
      expect(s.db.pragma('busy_timeout', { simple: true })).to.be.greaterThan(0);
    });

    it('creates the missing directory 0700 and the database file 0600, and tightens a wider file', async () => {
      const path = freshPath();
      const s = await open(path);
      await s.createEntries([newEntry()]);
      expect(statSync(join(path, '..')).mode & 0o777).to.equal(0o700);
      expect(statSync(path).mode & 0o777).to.equal(0o600);
      expect(statSync(`${path}-wal`).mode & 0o777).to.equal(0o600);
      await s.close();
      const loose = join(root, 'loose.sqlite3');
      writeFileSync(loose, '', { mode: 0o644 });
      await open(loose);
      expect(statSync(loose).mode & 0o777).to.equal(0o600);
    });

    it('keeps data and the revision counter across close and reopen (migrations are idempotent)', async () => {
      const path = freshPath();
      const s1 = await open(path);
      const [e] = await s1.createEntries([newEntry({ selectors: sels('unix:uid:3') })]);
      await s1.setBundle('example.org', '{}', 60, 1);
      await s1.close();
      const s2 = await open(path);
      expect(s2.db.pragma('user_version', { simple: true })).to.equal(SQLITE_SCHEMA_VERSION);
      expect(await s2.getEntry(e?.id ?? '')).to.deep.equal(e);
      expect(await s2.countEntries({ selectors: { set: sels('unix:uid:3'), match: 'exact' } })).to.equal(1);
      const [f] = await s2.createEntries([newEntry()]);
      expect(f?.revision).to.be.greaterThan(e?.revision ?? Infinity);
      expect((await s2.setBundle('example.org', '{}', 60, 2)).sequence).to.equal(2);
    });

    it('refuses a database stamped with a newer schema version, and a file that is not a database', async () => {
      const path = freshPath();
      await (await open(path)).close();
      const raw = new Database(path);
      raw.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
      raw.close();
      await expectWritError(SqliteDataStore.open(path, deps), 'ERR_DATASTORE', /schema version \d+, newer than/);
      const junk = join(root, 'junk.sqlite3');
      writeFileSync(junk, 'this is not a database, just some bytes that are long enough to have a header'.repeat(20), { mode: 0o600 });
      await expectWritError(SqliteDataStore.open(junk, deps), 'ERR_DATASTORE', /is not a SQLite database/);
    });

    it('answers selector, parent, SPIFFE ID, federatesWith, expiry, revision and uniqueness lookups from indexes', async () => {
      const s = await open(freshPath());
      const set = sels('unix:uid:1', 'unix:gid:1');
      await s.createEntries([newEntry({ federatesWith: ['x.org'], expiresAt: 5, selectors: set }), newEntry({ selectors: sels('unix:uid:1') })]);
      const filters: EntryFilter[] = [
        ...(['exact', 'subset', 'superset', 'any'] as const).map((match) => ({ selectors: { set, match } })),
        ...(['exact', 'superset', 'any'] as const).map((match) => ({ federatesWith: { trustDomains: ['x.org'], match } })),
        { parentId: 'spiffe://example.org/agent/a1' },
        { spiffeId: 'spiffe://example.org/w' },
        { parentId: 'spiffe://example.org/agent/a1', selectors: { set, match: 'subset' } },
        { expiresBefore: 10 },
        { hint: 'h' },
        { ids: ['a', 'b'] },
      ];
      const noEntryScan = (plan: string[], label: string) => {
        expect(plan.join(' | '), label).to.not.match(/\bSCAN (e|entries|es|entry_selectors|ef|entry_federates_with)\b/);
        expect(plan.join(' | '), label).to.match(/USING (COVERING )?INDEX|PRIMARY KEY/);
      };
      for (const f of filters) noEntryScan(await s.explainList(f), JSON.stringify(f));
      const plans = new Map<string, string[]>();
      for (const [sql, params] of [[SIMILAR_SQL, ['a', 'b', 'c']], [EXPIRED_SQL, [1]], [CHANGED_SQL, [1]]] as const) {
        const plan = (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
        noEntryScan(plan, sql);
        plans.set(sql, plan);
      }
      expect(plans.get(SIMILAR_SQL)?.join(' ')).to.include('entries_similar');
      expect(plans.get(EXPIRED_SQL)?.join(' ')).to.include('entries_expires_at');
    });

    it('keeps selector_stats equal to the selectors stored and every key selector one of its entry\'s', async () => {
      const s = await open(freshPath());
      const selectorsOf = (i: number) => sels(`unix:uid:${i % 7}`, `unix:gid:${i % 3}`, ...(i % 2 ? ['k8s:ns:a'] : []));
      const created = await s.createEntries(Array.from({ length: 60 }, (_, i) => newEntry({ selectors: selectorsOf(i) })));
      await s.updateEntries(created.slice(0, 20).map((e, i) => ({ id: e.id, patch: { selectors: sels(`unix:uid:${i % 4}`, 'k8s:ns:b') } })));
      await s.updateEntries(created.slice(20, 25).map((e) => ({ id: e.id, patch: { hint: 'same selectors' } })));
      await s.deleteEntries(created.slice(30, 45).map((e) => e.id));
      const stats = s.db.prepare('SELECT type, value, entries FROM selector_stats ORDER BY 1, 2').all();
      const actual = s.db.prepare('SELECT type, value, count(*) AS entries FROM entry_selectors GROUP BY 1, 2 ORDER BY 1, 2').all();
      expect(stats).to.deep.equal(actual);
      const badKeys = s.db
        .prepare(
          'SELECT count(*) FROM entries e WHERE NOT EXISTS ' +
            '(SELECT 1 FROM entry_selectors x WHERE x.entry_id = e.id AND x.type = e.key_type AND x.value = e.key_value)',
        )
        .pluck()
        .get();
      expect(badKeys).to.equal(0);
      // and subset lookups agree with a brute-force check over every entry
      const all = (await s.listEntries()).entries;
      for (const f of [sels('unix:uid:1', 'k8s:ns:b'), sels('unix:uid:3', 'unix:gid:0', 'k8s:ns:a'), sels('unix:uid:5', 'unix:gid:2')]) {
        const keys = new Set(f.map((x) => `${x.type}:${x.value}`));
        const want = all.filter((e) => e.selectors.every((x) => keys.has(`${x.type}:${x.value}`))).map((e) => e.id);
        expect((await s.listEntries({ selectors: { set: f, match: 'subset' } })).entries.map((e) => e.id)).to.deep.equal(want);
        const sup = all.filter((e) => f.every((x) => e.selectors.some((y) => y.type === x.type && y.value === x.value))).map((e) => e.id);
        expect((await s.listEntries({ selectors: { set: f, match: 'superset' } })).entries.map((e) => e.id)).to.deep.equal(sup);
      }
    });

    it('turns SQLite failures into ERR_DATASTORE / ERR_DATASTORE_CONFLICT sentences without stored values', async () => {
      const s = await open(freshPath());
      const secretHash = 'f00d'.repeat(16);
      await s.createJoinToken({ tokenHash: secretHash, expiresAt: 10, spiffeId: null, createdAt: 1, usedAt: null });
      const dup = await expectWritError(s.createJoinToken({ tokenHash: secretHash, expiresAt: 10, spiffeId: null, createdAt: 1, usedAt: null }), 'ERR_DATASTORE_CONFLICT');
      expect(dup.message).to.not.include(secretHash);
      s.db.exec('DROP TABLE revoked_serials');
      const e = await expectWritError(s.listRevoked(), 'ERR_DATASTORE', /^The datastore failed to list revoked serials\.$/);
      expect(e.cause).to.be.instanceOf(Error);
    });

    it('keeps a join token single use across two connections to one file', async () => {
      const path = freshPath();
      const a = await open(path);
      const b = await open(path);
      await a.createJoinToken({ tokenHash: 'shared', expiresAt: 2_000_000_000, spiffeId: null, createdAt: 1, usedAt: null });
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).consumeJoinToken('shared', 1_000)));
      expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    });
  });

  describe('SqliteDataStore with 100,000 entries', function () {
    this.timeout(180_000);
    let store: SqliteDataStore | undefined;
    after(async () => {
      await store?.close();
    });

    /** Entry i's selectors: a pure function of i, so the expected answer is computed independently. */
    const selectorsOf = (i: number): string[] => {
      const uid = `unix:uid:${i % 1000}`;
      const gid = `unix:gid:${i % 13}`;
      if (i % 3 === 0) return [uid];
      if (i % 3 === 1) return [uid, gid];
      return [uid, gid, `k8s:ns:ns${i % 5}`];
    };

    it('loads 100,000 entries in batches of 10,000 and answers a subset lookup exactly', async () => {
      store = await SqliteDataStore.open(freshPath(), deps);
      const total = 100_000;
      for (let start = 0; start < total; start += 10_000) {
        const batch = Array.from({ length: 10_000 }, (_, k) => {
          const i = start + k;
          return newEntry({ spiffeId: `spiffe://example.org/w/${i}`, parentId: `spiffe://example.org/agent/n${i % 500}`, selectors: sels(...selectorsOf(i)) });
        });
        await store.createEntries(batch);
      }
      expect(await store.countEntries()).to.equal(total);

      const workload = ['unix:uid:42', 'unix:gid:3', 'k8s:ns:ns2', 'unix:pid:77'];
      const have = new Set(workload);
      const want: string[] = [];
      for (let i = 0; i < total; i++) if (selectorsOf(i).every((x) => have.has(x))) want.push(`spiffe://example.org/w/${i}`);
      expect(want.length).to.be.greaterThan(30);

      const filter: EntryFilter = { selectors: { set: sels(...workload), match: 'subset' } };
      const got = (await store.listEntries(filter)).entries.map((e) => e.spiffeId);
      expect(got.sort()).to.deep.equal(want.sort());
      expect(await store.countEntries(filter)).to.equal(want.length);
      const byParent = await store.listEntries({ parentId: 'spiffe://example.org/agent/n7' });
      expect(byParent.entries).to.have.length(total / 500);
      expect(byParent.entries.every((e) => e.parentId === 'spiffe://example.org/agent/n7')).to.equal(true);
    });
  });
});
