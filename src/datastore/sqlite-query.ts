/**
 * Entry listing and counting on SQLite: an EntryFilter becomes one index-driven SELECT (the set
 * matches are in sqlite-match.ts), ANDing every field given. Pages are keyset on id, ordered by
 * id, with an opaque token; statements are prepared once per filter shape and cached.
 */
import type Database from 'better-sqlite3';
import { WritError } from '../errors.js';
import { addFederatesMatch, addSelectorMatch, PLAIN_FROM, type Query } from './sqlite-match.js';
import { canonicalSelectors, canonicalStrings, ENTRY_COLUMNS, rowToEntry, selectorsJson, selectorsKey, type EntryRow } from './sqlite-rows.js';
import type { EntryFilter, ListEntriesResult, Page } from './types.js';

export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 10000;
const TOKEN_PREFIX = 'e1:';
const CACHE_LIMIT = 128;

export function encodePageToken(lastId: string): string {
  return Buffer.from(TOKEN_PREFIX + lastId, 'utf8').toString('base64url');
}

export function decodePageToken(token: unknown): string {
  const bad = () => new WritError('ERR_PAGE_TOKEN_INVALID', 'The page token is not one this datastore issued; list again without a token.');
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  const raw = Buffer.from(token, 'base64url').toString('utf8');
  if (Buffer.from(raw, 'utf8').toString('base64url') !== token || !raw.startsWith(TOKEN_PREFIX) || raw.length === TOKEN_PREFIX.length) throw bad();
  return raw.slice(TOKEN_PREFIX.length);
}

function pageSizeOf(page: Page): number {
  const n = page.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new WritError('ERR_INPUT_INVALID', `The page size must be an integer from 1 to ${MAX_PAGE_SIZE}.`);
  }
  return n;
}

type Pivot = { type: string; value: string; entries: number } | undefined;

function buildQuery(filter: EntryFilter, pivotOf: (json: string) => Pivot): Query {
  const q: Query = { ctes: [], from: PLAIN_FROM, joins: [], where: [], params: {} };
  if (filter.selectors) {
    const set = canonicalSelectors(filter.selectors.set);
    const json = selectorsJson(set);
    const match = filter.selectors.match;
    const pivot = match === 'superset' && set.length > 0 ? pivotOf(json) : undefined;
    addSelectorMatch(q, match, { json, size: set.length, key: selectorsKey(set), ...(pivot ? { pivot } : {}) });
  }
  if (filter.federatesWith) addFederatesMatch(q, filter.federatesWith.match, canonicalStrings(filter.federatesWith.trustDomains));
  if (filter.ids) {
    q.where.push('e.id IN (SELECT value FROM json_each(@ids))');
    q.params.ids = JSON.stringify(filter.ids);
  }
  if (filter.spiffeId !== undefined) {
    q.where.push('e.spiffe_id = @spiffe_id');
    q.params.spiffe_id = filter.spiffeId;
  }
  if (filter.parentId !== undefined) {
    q.where.push('e.parent_id = @parent_id');
    q.params.parent_id = filter.parentId;
  }
  if (filter.hint !== undefined) {
    q.where.push('e.hint = @hint');
    q.params.hint = filter.hint;
  }
  if (filter.downstream !== undefined) {
    q.where.push('e.downstream = @downstream');
    q.params.downstream = filter.downstream ? 1 : 0;
  }
  if (filter.expiresBefore !== undefined) {
    q.where.push('e.expires_at <= @expires_before');
    q.params.expires_before = filter.expiresBefore;
    // Without statistics the planner prefers walking the id index to avoid a sort, which scans
    // every entry when few have expired; the expiry index is the right driver when it is the only one.
    const other = filter.ids ?? filter.spiffeId ?? filter.parentId ?? filter.hint;
    if (other === undefined && q.from === PLAIN_FROM) q.from = 'entries e INDEXED BY entries_expires_at';
  }
  return q;
}

function render(q: Query, select: string, tail: string): string {
  const withSql = q.ctes.length > 0 ? `WITH ${q.ctes.join(', ')} ` : '';
  const whereSql = q.where.length > 0 ? ` WHERE ${q.where.join(' AND ')}` : '';
  return `${withSql}SELECT ${select} FROM ${q.from}${q.joins.map((j) => ` ${j}`).join('')}${whereSql}${tail}`;
}

export class SqliteEntryQuery {
  private readonly cache = new Map<string, Database.Statement>();
  private readonly pivotStatement: Database.Statement<[string], { type: string; value: string; entries: number }>;
  private readonly pivotOf = (json: string): Pivot => this.pivotStatement.get(json);

  constructor(private readonly db: Database.Database) {
    // F's rarest selector by selector_stats (0 when no entry carries one: then nothing is a superset).
    this.pivotStatement = db.prepare(
      "SELECT j.value ->> '$[0]' AS type, j.value ->> '$[1]' AS value, coalesce(s.entries, 0) AS entries FROM json_each(?) j " +
        "LEFT JOIN selector_stats s ON s.type = (j.value ->> '$[0]') AND s.value = (j.value ->> '$[1]') ORDER BY 3, 1, 2 LIMIT 1",
    );
  }

  /** The statement for a SQL text, prepared once (the cache is bounded; filter shapes are few). */
  private statement(sql: string): Database.Statement {
    let st = this.cache.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      if (this.cache.size >= CACHE_LIMIT) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(sql, st);
    }
    return st;
  }

  list(filter: EntryFilter = {}, page: Page = {}): ListEntriesResult {
    const size = pageSizeOf(page);
    const q = buildQuery(filter, this.pivotOf);
    if (page.pageToken !== undefined) {
      q.where.push('e.id > @after');
      q.params.after = decodePageToken(page.pageToken);
    }
    q.params.limit = size + 1;
    const rows = this.statement(render(q, ENTRY_COLUMNS, ' ORDER BY e.id LIMIT @limit')).all(q.params) as EntryRow[];
    const more = rows.length > size;
    const entries = (more ? rows.slice(0, size) : rows).map(rowToEntry);
    const last = entries[entries.length - 1];
    return more && last ? { entries, nextPageToken: encodePageToken(last.id) } : { entries };
  }

  count(filter: EntryFilter = {}): number {
    const q = buildQuery(filter, this.pivotOf);
    return this.statement(render(q, 'count(*)', '')).pluck().get(q.params) as number;
  }

  /** The SQL text and parameters a filter runs as (for EXPLAIN QUERY PLAN in tests). */
  explain(filter: EntryFilter): Array<{ detail: string }> {
    const q = buildQuery(filter, this.pivotOf);
    q.params.limit = 1;
    return this.db.prepare(`EXPLAIN QUERY PLAN ${render(q, ENTRY_COLUMNS, ' ORDER BY e.id LIMIT @limit')}`).all(q.params) as Array<{ detail: string }>;
  }
}
