/**
 * Writes to the SQLite entry tables: batched create, update and delete (each one immediate
 * transaction, all or nothing), pruning of expired entries, and the incremental change feed.
 * Every entry write takes the next value of the store-wide revision counter and is logged in
 * entry_changes, so deletes can be reported to syncing agents. Writes also keep selector_stats
 * (entries per selector) current and give each entry its key selector (see sqlite-match.ts).
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { unixSeconds, type Clock } from '../clock.js';
import { WritError } from '../errors.js';
import {
  canonicalSelectors,
  canonicalStrings,
  ENTRY_COLUMNS,
  entryParams,
  rowToEntry,
  selectorsKey,
  type EntryParams,
  type EntryRow,
} from './sqlite-rows.js';
import type { EntryChanges, EntryPatch, NewEntry, RegistrationEntry, Selector } from './types.js';

type Op = 'create' | 'update' | 'delete';

const PARAM_COLUMNS = [
  'id', 'spiffe_id', 'parent_id', 'selectors', 'selectors_key', 'selector_count', 'key_type', 'key_value', 'x509_svid_ttl', 'jwt_svid_ttl', 'dns_names',
  'hint', 'admin', 'downstream', 'federates_with', 'federates_count', 'expires_at', 'revision', 'created_at',
] as const;

function pick<T>(patched: T | undefined, current: T): T {
  return patched === undefined ? current : patched;
}

function noSelectors(index: number): WritError {
  return new WritError('ERR_ENTRY_INVALID', `entry ${index}: an entry needs at least one selector.`, { details: { index } });
}

/** The uniqueness lookup (served by the UNIQUE index entries_similar). */
export const SIMILAR_SQL = 'SELECT id FROM entries WHERE selectors_key = ? AND spiffe_id = ? AND parent_id = ?';
/** Entries due for pruning (served by entries_expires_at). */
export const EXPIRED_SQL = 'SELECT id FROM entries WHERE expires_at <= ? ORDER BY expires_at, id';
/** Entries changed since a revision (served by entries_revision). */
export const CHANGED_SQL = `SELECT ${ENTRY_COLUMNS} FROM entries e WHERE e.revision > ? ORDER BY e.revision`;

function prepare(db: Database.Database) {
  const cols = PARAM_COLUMNS.join(', ');
  const vals = PARAM_COLUMNS.map((c) => `@${c}`).join(', ');
  const sets = PARAM_COLUMNS.filter((c) => c !== 'id' && c !== 'created_at').map((c) => `${c} = @${c}`).join(', ');
  return {
    revision: db.prepare<[], number>("SELECT value FROM store_counters WHERE name = 'entry_revision'").pluck(),
    setRevision: db.prepare<[number]>("UPDATE store_counters SET value = ? WHERE name = 'entry_revision'"),
    get: db.prepare<[string], EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM entries e WHERE e.id = ?`),
    similar: db.prepare<[string, string, string], string>(SIMILAR_SQL).pluck(),
    insert: db.prepare<[EntryParams]>(`INSERT INTO entries (${cols}) VALUES (${vals})`),
    update: db.prepare<[EntryParams]>(`UPDATE entries SET ${sets} WHERE id = @id`),
    delete: db.prepare<[string]>('DELETE FROM entries WHERE id = ?'),
    addSelector: db.prepare<[string, string, string]>('INSERT INTO entry_selectors (entry_id, type, value) VALUES (?, ?, ?)'),
    dropSelectors: db.prepare<[string]>('DELETE FROM entry_selectors WHERE entry_id = ?'),
    countUp: db
      .prepare<[string, string], number>(
        'INSERT INTO selector_stats (type, value, entries) VALUES (?, ?, 1) ' +
          'ON CONFLICT (type, value) DO UPDATE SET entries = entries + 1 RETURNING entries',
      )
      .pluck(),
    countDown: db.prepare<[string, string]>('UPDATE selector_stats SET entries = entries - 1 WHERE type = ? AND value = ?'),
    dropStat: db.prepare<[string, string]>('DELETE FROM selector_stats WHERE type = ? AND value = ? AND entries <= 0'),
    addFederated: db.prepare<[string, string]>('INSERT INTO entry_federates_with (entry_id, trust_domain) VALUES (?, ?)'),
    dropFederated: db.prepare<[string]>('DELETE FROM entry_federates_with WHERE entry_id = ?'),
    log: db.prepare<[number, string, Op]>('INSERT INTO entry_changes (revision, entry_id, op) VALUES (?, ?, ?)'),
    changed: db.prepare<[number], EntryRow>(CHANGED_SQL),
    deleted: db
      .prepare<[number], string>(
        "SELECT c.entry_id FROM entry_changes c WHERE c.revision > ? AND c.op = 'delete' " +
          'AND NOT EXISTS (SELECT 1 FROM entries x WHERE x.id = c.entry_id) GROUP BY c.entry_id ORDER BY max(c.revision)',
      )
      .pluck(),
    expired: db.prepare<[number], string>(EXPIRED_SQL).pluck(),
    floor: db.prepare<[], number>("SELECT value FROM store_counters WHERE name = 'entry_changes_floor'").pluck(),
    setFloor: db.prepare<[number]>("INSERT INTO store_counters (name, value) VALUES ('entry_changes_floor', ?) ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)"),
    nthDelete: db.prepare<[number], number>("SELECT revision FROM entry_changes WHERE op = 'delete' ORDER BY revision DESC LIMIT 1 OFFSET ?").pluck(),
    dropDeletes: db.prepare<[number]>("DELETE FROM entry_changes WHERE op = 'delete' AND revision <= ?"),
    dropWrites: db.prepare("DELETE FROM entry_changes WHERE op <> 'delete'"),
  };
}

type Updates = Array<{ id: string; patch: EntryPatch }>;

export class SqliteEntryWriter {
  private readonly s: ReturnType<typeof prepare>;
  private readonly createTx: Database.Transaction<(entries: NewEntry[]) => RegistrationEntry[]>;
  private readonly updateTx: Database.Transaction<(updates: Updates) => RegistrationEntry[]>;
  private readonly deleteTx: Database.Transaction<(ids: string[]) => RegistrationEntry[]>;
  private readonly pruneTx: Database.Transaction<(now: number) => string[]>;
  private readonly changesTx: Database.Transaction<(since: number) => EntryChanges>;
  private readonly pruneChangesTx: Database.Transaction<(keep: number) => number>;
  /** The revision counter inside the running write transaction. */
  private revision = 0;

  constructor(
    db: Database.Database,
    private readonly clock: Clock,
  ) {
    this.s = prepare(db);
    // A write transaction reads the revision counter once, hands out the following values, and
    // stores the last one at its end; a rollback discards it with everything else.
    const writing = <A, R>(fn: (arg: A) => R) =>
      db.transaction((arg: A): R => {
        this.revision = this.s.revision.get() ?? 0;
        const start = this.revision;
        const out = fn(arg);
        if (this.revision !== start) this.s.setRevision.run(this.revision);
        return out;
      });
    this.createTx = writing((entries: NewEntry[]) => this.createAll(entries));
    this.updateTx = writing((updates: Updates) => this.updateAll(updates));
    this.deleteTx = writing((ids: string[]) => this.deleteAll(ids));
    this.pruneTx = writing((now: number) => {
      const ids = this.s.expired.all(now);
      this.deleteAll(ids);
      return ids;
    });
    this.changesTx = db.transaction((since: number) => ({
      changed: this.s.changed.all(since).map(rowToEntry),
      deleted: this.s.deleted.all(since),
      revision: this.s.revision.get() ?? 0,
      complete: since >= (this.s.floor.get() ?? 0),
    }));
    this.pruneChangesTx = db.transaction((keep: number) => {
      let dropped = this.s.dropWrites.run().changes;
      // The newest delete record that goes: everything at or below it, which becomes the floor.
      const cut = this.s.nthDelete.get(Math.max(0, Math.floor(keep)));
      if (cut !== undefined) {
        dropped += this.s.dropDeletes.run(cut).changes;
        this.s.setFloor.run(cut);
      }
      return dropped;
    });
  }

  // Writers take the lock at BEGIN (immediate), so two processes never deadlock upgrading a read lock.
  create(entries: NewEntry[]): RegistrationEntry[] {
    return this.createTx.immediate(entries);
  }

  update(updates: Updates): RegistrationEntry[] {
    return this.updateTx.immediate(updates);
  }

  delete(ids: string[]): RegistrationEntry[] {
    return this.deleteTx.immediate(ids);
  }

  prune(now: number): string[] {
    return this.pruneTx.immediate(now);
  }

  pruneChanges(keepDeletes: number): number {
    return this.pruneChangesTx.immediate(keepDeletes);
  }

  /** Read in one (deferred) transaction so the lists and the counter are one consistent snapshot. */
  changesSince(since: number): EntryChanges {
    return this.changesTx(since);
  }

  get(id: string): RegistrationEntry | undefined {
    const row = this.s.get.get(id);
    return row ? rowToEntry(row) : undefined;
  }

  private nextRevision(): number {
    this.revision += 1;
    return this.revision;
  }

  private checkSimilar(e: RegistrationEntry, index: number): void {
    const other = this.s.similar.get(selectorsKey(e.selectors), e.spiffeId, e.parentId);
    if (other !== undefined && other !== e.id) {
      throw new WritError(
        'ERR_ENTRY_EXISTS',
        `entry ${index}: an entry with the same SPIFFE ID, parent ID and selectors already exists (id ${other}).`,
        { details: { index, existingId: other } },
      );
    }
  }

  /**
   * Counts the entry's selectors into selector_stats and returns the one fewest entries carry
   * (the first in canonical order on a tie): the entry's key selector for subset lookups.
   */
  private countSelectors(selectors: readonly Selector[]): Selector {
    let key = selectors[0] as Selector;
    let least = Infinity;
    for (const sel of selectors) {
      const n = this.s.countUp.get(sel.type, sel.value) ?? 0;
      if (n < least) {
        least = n;
        key = sel;
      }
    }
    return key;
  }

  private uncountSelectors(selectors: readonly Selector[]): void {
    for (const sel of selectors) {
      this.s.countDown.run(sel.type, sel.value);
      this.s.dropStat.run(sel.type, sel.value);
    }
  }

  private writeSelectors(e: RegistrationEntry): void {
    for (const sel of e.selectors) this.s.addSelector.run(e.id, sel.type, sel.value);
  }

  private writeFederated(e: RegistrationEntry): void {
    for (const td of e.federatesWith) this.s.addFederated.run(e.id, td);
  }

  private createAll(entries: NewEntry[]): RegistrationEntry[] {
    const now = unixSeconds(this.clock);
    return entries.map((n, index) => {
      const selectors = canonicalSelectors(n.selectors);
      if (selectors.length === 0) throw noSelectors(index);
      const id = n.id ?? randomUUID();
      if (this.s.get.get(id)) {
        throw new WritError('ERR_ENTRY_EXISTS', `entry ${index}: an entry with id ${id} already exists.`, { details: { index, existingId: id } });
      }
      const e: RegistrationEntry = {
        id,
        spiffeId: n.spiffeId,
        parentId: n.parentId,
        selectors,
        x509SvidTtl: n.x509SvidTtl,
        jwtSvidTtl: n.jwtSvidTtl,
        dnsNames: [...n.dnsNames],
        hint: n.hint,
        admin: n.admin,
        downstream: n.downstream,
        federatesWith: canonicalStrings(n.federatesWith),
        expiresAt: n.expiresAt,
        revision: 0,
        createdAt: now,
      };
      this.checkSimilar(e, index);
      e.revision = this.nextRevision();
      this.s.insert.run(entryParams(e, this.countSelectors(selectors)));
      this.writeSelectors(e);
      this.writeFederated(e);
      this.s.log.run(e.revision, e.id, 'create');
      return e;
    });
  }

  private updateAll(updates: Updates): RegistrationEntry[] {
    return updates.map(({ id, patch }, index) => {
      const row = this.s.get.get(id);
      if (!row) throw new WritError('ERR_ENTRY_NOT_FOUND', `entry ${index}: no entry has id ${id}.`, { details: { index, id } });
      const cur = rowToEntry(row);
      const selectors = patch.selectors === undefined ? cur.selectors : canonicalSelectors(patch.selectors);
      if (selectors.length === 0) throw noSelectors(index);
      const e: RegistrationEntry = {
        id,
        spiffeId: pick(patch.spiffeId, cur.spiffeId),
        parentId: pick(patch.parentId, cur.parentId),
        selectors,
        x509SvidTtl: pick(patch.x509SvidTtl, cur.x509SvidTtl),
        jwtSvidTtl: pick(patch.jwtSvidTtl, cur.jwtSvidTtl),
        dnsNames: patch.dnsNames === undefined ? cur.dnsNames : [...patch.dnsNames],
        hint: pick(patch.hint, cur.hint),
        admin: pick(patch.admin, cur.admin),
        downstream: pick(patch.downstream, cur.downstream),
        federatesWith: patch.federatesWith === undefined ? cur.federatesWith : canonicalStrings(patch.federatesWith),
        expiresAt: pick(patch.expiresAt, cur.expiresAt),
        revision: 0,
        createdAt: cur.createdAt,
      };
      this.checkSimilar(e, index);
      e.revision = this.nextRevision();
      let key: Selector = { type: row.key_type, value: row.key_value };
      const reselect = selectorsKey(selectors) !== row.selectors_key;
      if (reselect) {
        this.uncountSelectors(cur.selectors);
        key = this.countSelectors(selectors);
      }
      this.s.update.run(entryParams(e, key));
      if (reselect) {
        this.s.dropSelectors.run(id);
        this.writeSelectors(e);
      }
      if (patch.federatesWith !== undefined) {
        this.s.dropFederated.run(id);
        this.writeFederated(e);
      }
      this.s.log.run(e.revision, e.id, 'update');
      return e;
    });
  }

  /** Repeated ids are deleted once. */
  private deleteAll(ids: string[]): RegistrationEntry[] {
    const seen = new Set<string>();
    const out: RegistrationEntry[] = [];
    ids.forEach((id, index) => {
      if (seen.has(id)) return;
      seen.add(id);
      const cur = this.get(id);
      if (!cur) throw new WritError('ERR_ENTRY_NOT_FOUND', `entry ${index}: no entry has id ${id}.`, { details: { index, id } });
      this.s.delete.run(id);
      this.uncountSelectors(cur.selectors);
      this.s.log.run(this.nextRevision(), id, 'delete');
      out.push(cur);
    });
    return out;
  }
}
