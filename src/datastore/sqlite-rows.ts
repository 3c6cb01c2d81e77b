/**
 * Row shapes of the SQLite entry tables and their conversion to and from RegistrationEntry, plus
 * the canonical forms the store relies on: sorted, de-duplicated selector and trust domain sets,
 * and the selector-set key that the uniqueness index is built on.
 */
import { createHash } from 'node:crypto';
import type { RegistrationEntry, Selector } from './types.js';

/** The columns of `entries` as SELECTed (aliased `e`). */
export const ENTRY_COLUMNS =
  'e.id, e.spiffe_id, e.parent_id, e.selectors, e.selectors_key, e.selector_count, e.key_type, e.key_value, e.x509_svid_ttl, e.jwt_svid_ttl, ' +
  'e.dns_names, e.hint, e.admin, e.downstream, e.federates_with, e.federates_count, e.expires_at, e.revision, e.created_at';

export interface EntryRow {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string;
  selectors_key: string;
  selector_count: number;
  key_type: string;
  key_value: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string;
  hint: string;
  admin: number;
  downstream: number;
  federates_with: string;
  federates_count: number;
  expires_at: number | null;
  revision: number;
  created_at: number;
}

function compareSelector(a: Selector, b: Selector): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return 0;
}

/** Sorted by (type, value) without duplicates; copies, so callers' objects are never stored. */
export function canonicalSelectors(sels: readonly Selector[]): Selector[] {
  const sorted = sels.map((s) => ({ type: s.type, value: s.value })).sort(compareSelector);
  return sorted.filter((s, i) => i === 0 || compareSelector(s, sorted[i - 1] as Selector) !== 0);
}

/** Sorted without duplicates. */
export function canonicalStrings(list: readonly string[]): string[] {
  return [...new Set(list)].sort();
}

/** SHA-256 (hex) of the canonical selector set: JSON of [type, value] pairs, which no two sets share. */
export function selectorsKey(canonical: readonly Selector[]): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical.map((s) => [s.type, s.value])))
    .digest('hex');
}

function parseSelectors(json: string): Selector[] {
  const pairs = JSON.parse(json) as Array<[string, string]>;
  return pairs.map(([type, value]) => ({ type, value }));
}

export function selectorsJson(canonical: readonly Selector[]): string {
  return JSON.stringify(canonical.map((s) => [s.type, s.value]));
}

export function rowToEntry(r: EntryRow): RegistrationEntry {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: parseSelectors(r.selectors),
    x509SvidTtl: r.x509_svid_ttl,
    jwtSvidTtl: r.jwt_svid_ttl,
    dnsNames: JSON.parse(r.dns_names) as string[],
    hint: r.hint,
    admin: r.admin === 1,
    downstream: r.downstream === 1,
    federatesWith: JSON.parse(r.federates_with) as string[],
    expiresAt: r.expires_at,
    revision: r.revision,
    createdAt: r.created_at,
  };
}

/** The named parameters of an INSERT or UPDATE of `entries`: the same columns as a row. */
export type EntryParams = EntryRow;

/** Parameters for an entry whose selectors and federatesWith are already canonical; `key` is one of its selectors. */
export function entryParams(e: RegistrationEntry, key: Selector): EntryParams {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: selectorsJson(e.selectors),
    selectors_key: selectorsKey(e.selectors),
    selector_count: e.selectors.length,
    key_type: key.type,
    key_value: key.value,
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: JSON.stringify(e.dnsNames),
    hint: e.hint,
    admin: e.admin ? 1 : 0,
    downstream: e.downstream ? 1 : 0,
    federates_with: JSON.stringify(e.federatesWith),
    federates_count: e.federatesWith.length,
    expires_at: e.expiresAt,
    revision: e.revision,
    created_at: e.createdAt,
  };
}
