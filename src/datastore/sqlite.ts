/**
 * The embedded SQLite datastore (better-sqlite3): opening the file safely (directory 0700,
 * file 0600, WAL, synchronous=NORMAL, foreign keys, busy timeout), running migrations, and the
 * DataStore methods, each async and each turning unexpected SQLite errors into ERR_DATASTORE
 * (or ERR_DATASTORE_CONFLICT when another writer holds the lock) with a generic sentence.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../clock.js';
import { WritError } from '../errors.js';
import type { Logger } from '../log.js';
import { SqliteEntryWriter } from './sqlite-entries.js';
import { SqliteFederation } from './sqlite-federation.js';
import { SqliteIssued } from './sqlite-issued.js';
import { migrate } from './sqlite-migrations.js';
import { SqliteEntryQuery } from './sqlite-query.js';
import { SqliteRecords } from './sqlite-records.js';
import { SqliteTasks } from './sqlite-tasks.js';
import type * as T from './types.js';

export interface SqliteDeps {
  clock: Clock;
  logger: Logger;
}

const BUSY_TIMEOUT_MS = 5000;

function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** Creates the parent directory (0700) and an empty database file (0600) if missing; tightens a wider file mode. */
function prepareFile(path: string, logger: Logger): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
      logger.warn({ path, mode: mode.toString(8) }, 'datastore file was readable by others; its mode is now 0600');
    }
  }
}

export class SqliteDataStore implements T.DataStore {
  private readonly writer: SqliteEntryWriter;
  private readonly query: SqliteEntryQuery;
  private readonly records: SqliteRecords;
  private readonly issued: SqliteIssued;
  private readonly federation: SqliteFederation;
  private readonly tasks: SqliteTasks;
  private readonly pingStatement: Database.Statement;
  private closed = false;

  private constructor(
    /** The better-sqlite3 handle; exposed for SQLite-specific tests and tools. */
    readonly db: Database.Database,
    private readonly logger: Logger,
    clock: Clock,
  ) {
    this.writer = new SqliteEntryWriter(db, clock);
    this.query = new SqliteEntryQuery(db);
    this.records = new SqliteRecords(db);
    this.issued = new SqliteIssued(db);
    this.federation = new SqliteFederation(db);
    this.tasks = new SqliteTasks(db);
    this.pingStatement = db.prepare('SELECT 1');
  }

  /** Opens (creating if needed) and migrates the database at `path` (":memory:" for a throwaway one). */
  static async open(path: string, deps: SqliteDeps): Promise<SqliteDataStore> {
    const logger = deps.logger.child({ component: 'datastore', backend: 'sqlite' });
    const memory = path === ':memory:';
    const where = memory ? path : resolve(path);
    let db: Database.Database | undefined;
    try {
      if (!memory) prepareFile(where, logger);
      db = new Database(where, { timeout: BUSY_TIMEOUT_MS });
      const journal = db.pragma('journal_mode = WAL', { simple: true }) as string;
      if (!memory && journal !== 'wal') logger.warn({ journal }, 'datastore could not switch to WAL mode');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const { from, to } = migrate(db, where, logger);
      // SQLite's advice for long-lived connections: refresh planner statistics cheaply at open.
      db.pragma('analysis_limit = 400');
      db.pragma('optimize = 0x10002');
      const store = new SqliteDataStore(db, logger, deps.clock);
      logger.info({ path: where, schemaVersion: to, migratedFrom: from === to ? undefined : from }, 'datastore opened');
      return store;
    } catch (e) {
      db?.close();
      if (e instanceof WritError) throw e;
      const code = sqliteCode(e) ?? (e as NodeJS.ErrnoException).code;
      logger.error({ path: where, code, err: e }, 'datastore open failed');
      const why = code === 'SQLITE_NOTADB' ? 'is not a SQLite database' : 'could not be opened';
      throw new WritError('ERR_DATASTORE', `The datastore at ${where} ${why}.`, { cause: e, details: { code } });
    }
  }

  /** Runs one synchronous operation as a promise, translating errors. `what` completes "The datastore failed to …". */
  private async run<R>(what: string, fn: () => R): Promise<R> {
    if (this.closed) throw new WritError('ERR_DATASTORE', 'The datastore is closed.');
    try {
      return fn();
    } catch (e) {
      if (e instanceof WritError) throw e;
      const code = sqliteCode(e);
      // Only the code and SQLite's own message (which names columns, never values) are logged.
      this.logger.error({ op: what, code, message: e instanceof Error ? e.message : undefined }, 'datastore operation failed');
      if (code?.startsWith('SQLITE_BUSY') || code?.startsWith('SQLITE_LOCKED')) {
        throw new WritError('ERR_DATASTORE_CONFLICT', `The datastore is busy with another writer and could not ${what}; retry.`, { cause: e });
      }
      if (code?.startsWith('SQLITE_CONSTRAINT')) {
        throw new WritError('ERR_DATASTORE_CONFLICT', `The datastore could not ${what} because it conflicts with stored data.`, { cause: e });
      }
      throw new WritError('ERR_DATASTORE', `The datastore failed to ${what}.`, { cause: e });
    }
  }

  createEntries(entries: T.NewEntry[]): Promise<T.RegistrationEntry[]> {
    return this.run('create entries', () => this.writer.create(entries));
  }
  updateEntries(updates: Array<{ id: string; patch: T.EntryPatch }>): Promise<T.RegistrationEntry[]> {
    return this.run('update entries', () => this.writer.update(updates));
  }
  deleteEntries(ids: string[]): Promise<T.RegistrationEntry[]> {
    return this.run('delete entries', () => this.writer.delete(ids));
  }
  getEntry(id: string): Promise<T.RegistrationEntry | undefined> {
    return this.run('read an entry', () => this.writer.get(id));
  }
  listEntries(filter?: T.EntryFilter, page?: T.Page): Promise<T.ListEntriesResult> {
    return this.run('list entries', () => this.query.list(filter, page));
  }
  countEntries(filter?: T.EntryFilter): Promise<number> {
    return this.run('count entries', () => this.query.count(filter));
  }
  entryChangesSince(since: number): Promise<T.EntryChanges> {
    return this.run('read entry changes', () => this.writer.changesSince(since));
  }
  pruneExpiredEntries(now: number): Promise<string[]> {
    return this.run('prune expired entries', () => {
      const ids = this.writer.prune(now);
      if (ids.length > 0) this.logger.info({ count: ids.length }, 'pruned expired entries');
      return ids;
    });
  }

  pruneEntryChanges(keepDeletes: number): Promise<number> {
    return this.run('prune entry changes', () => this.writer.pruneChanges(keepDeletes));
  }

  getBundle(trustDomain: string): Promise<T.BundleRecord | undefined> {
    return this.run('read a bundle', () => this.records.getBundle(trustDomain));
  }
  listBundles(): Promise<T.BundleRecord[]> {
    return this.run('list bundles', () => this.records.listBundles());
  }
  setBundle(trustDomain: string, document: string, refreshHint: number, now: number): Promise<T.BundleRecord> {
    return this.run('store a bundle', () => this.records.setBundle(trustDomain, document, refreshHint, now));
  }
  deleteBundle(trustDomain: string): Promise<boolean> {
    return this.run('delete a bundle', () => this.records.deleteBundle(trustDomain));
  }

  createFederation(rel: T.NewFederationRelationship, now: number): Promise<T.FederationRelationship> {
    return this.run('store a federation relationship', () => this.federation.create(rel, now));
  }
  updateFederation(trustDomain: string, patch: T.FederationRelationshipPatch, now: number): Promise<T.FederationRelationship> {
    return this.run('update a federation relationship', () => this.federation.update(trustDomain, patch, now));
  }
  getFederation(trustDomain: string): Promise<T.FederationRelationship | undefined> {
    return this.run('read a federation relationship', () => this.federation.get(trustDomain));
  }
  listFederations(): Promise<T.FederationRelationship[]> {
    return this.run('list federation relationships', () => this.federation.list());
  }
  deleteFederation(trustDomain: string): Promise<boolean> {
    return this.run('delete a federation relationship', () => this.federation.delete(trustDomain));
  }
  setFederationStatus(trustDomain: string, status: T.FederationRefreshStatus): Promise<boolean> {
    return this.run('record a federation refresh', () => this.federation.setStatus(trustDomain, status));
  }

  listCaSlots(kind?: T.CaKind): Promise<T.CaSlotRecord[]> {
    return this.run('list CA slots', () => this.records.listCaSlots(kind));
  }
  putCaSlot(slot: T.CaSlotRecord): Promise<void> {
    return this.run('store a CA slot', () => this.records.putCaSlot(slot));
  }
  deleteCaSlot(kind: T.CaKind, slot: T.CaSlotName): Promise<void> {
    return this.run('delete a CA slot', () => this.records.deleteCaSlot(kind, slot));
  }

  createJoinToken(token: T.JoinTokenRecord): Promise<void> {
    return this.run('store a join token', () => this.records.createJoinToken(token));
  }
  consumeJoinToken(tokenHash: string, now: number): Promise<T.JoinTokenRecord> {
    return this.run('use a join token', () => this.records.consumeJoinToken(tokenHash, now));
  }
  pruneJoinTokens(now: number): Promise<number> {
    return this.run('prune join tokens', () => this.records.pruneJoinTokens(now));
  }

  upsertAgent(agent: T.AttestedAgent): Promise<void> {
    return this.run('store an agent', () => this.records.upsertAgent(agent));
  }
  getAgent(spiffeId: string): Promise<T.AttestedAgent | undefined> {
    return this.run('read an agent', () => this.records.getAgent(spiffeId));
  }
  listAgents(filter?: { banned?: boolean; attestationType?: string }): Promise<T.AttestedAgent[]> {
    return this.run('list agents', () => this.records.listAgents(filter));
  }
  deleteAgent(spiffeId: string): Promise<boolean> {
    return this.run('delete an agent', () => this.records.deleteAgent(spiffeId));
  }

  addRevoked(serials: T.RevokedSerial[]): Promise<void> {
    return this.run('record revoked serials', () => this.records.addRevoked(serials));
  }
  listRevoked(): Promise<T.RevokedSerial[]> {
    return this.run('list revoked serials', () => this.records.listRevoked());
  }
  pruneRevoked(now: number): Promise<number> {
    return this.run('prune revoked serials', () => this.records.pruneRevoked(now));
  }

  recordIssued(svids: T.IssuedSvid[]): Promise<void> {
    return this.run('record issued SVIDs', () => this.issued.record(svids));
  }
  listIssued(filter: T.IssuedSvidFilter): Promise<T.IssuedSvid[]> {
    return this.run('list issued SVIDs', () => this.issued.list(filter));
  }
  pruneIssued(now: number): Promise<number> {
    return this.run('prune issued SVIDs', () => this.issued.pruneBefore(now));
  }

  createAgentIdentity(agent: T.AgentIdentity): Promise<T.AgentIdentity> {
    return this.run('store an agent identity', () => this.tasks.createAgent(agent));
  }
  getAgentIdentity(name: string): Promise<T.AgentIdentity | undefined> {
    return this.run('read an agent identity', () => this.tasks.getAgent(name));
  }
  listAgentIdentities(): Promise<T.AgentIdentity[]> {
    return this.run('list agent identities', () => this.tasks.listAgents());
  }
  updateAgentIdentity(name: string, patch: T.AgentIdentityPatch): Promise<T.AgentIdentity> {
    return this.run('update an agent identity', () => this.tasks.updateAgent(name, patch));
  }
  deleteAgentIdentity(name: string): Promise<boolean> {
    return this.run('delete an agent identity', () => this.tasks.deleteAgent(name));
  }
  createTask(task: T.TaskRecord): Promise<T.TaskRecord> {
    return this.run('store a task', () => this.tasks.createTask(task));
  }
  getTask(id: string): Promise<T.TaskRecord | undefined> {
    return this.run('read a task', () => this.tasks.getTask(id));
  }
  listTasks(filter?: T.TaskFilter): Promise<T.TaskRecord[]> {
    return this.run('list tasks', () => this.tasks.listTasks(filter));
  }
  endTask(id: string, endedAt: number, reason: string): Promise<T.TaskRecord | undefined> {
    return this.run('end a task', () => this.tasks.endTask(id, endedAt, reason));
  }
  markTaskCleaned(id: string, at: number): Promise<void> {
    return this.run('record a task cleanup', () => this.tasks.markCleaned(id, at));
  }

  ping(): Promise<void> {
    return this.run('answer a ping', () => {
      this.pingStatement.get();
    });
  }

  /** The query plan of a filter's list statement (for tests proving index use). */
  explainList(filter: T.EntryFilter): Promise<string[]> {
    return this.run('explain a query', () => this.query.explain(filter).map((r) => r.detail));
  }

  /** Idempotent. Runs `PRAGMA optimize` so the planner's statistics stay fresh. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.pragma('optimize');
    } catch (e) {
      this.logger.warn({ code: sqliteCode(e) }, 'datastore optimize at close failed');
    }
    this.db.close();
  }
}
