/**
 * Set-match clauses of the SQLite entry query: an entry's selectors S (or federatesWith trust
 * domains) against a filter set F, which is bound as one JSON array so each filter shape has one
 * SQL text. Every mode starts from an index, never from a scan of entries:
 *
 * - exact (S = F): the canonical key of F against the unique (selectors_key, ...) index.
 * - subset (S ⊆ F, what a workload with selectors F may receive): each entry has a key selector
 *   (its rarest selector when written, from selector_stats), and S ⊆ F implies key ∈ F; so the
 *   candidates are the entries keyed by a member of F (index entries_key_selector), kept when
 *   all selector_count of their selectors are in F.
 * - superset (S ⊇ F): candidates are the entries carrying F's rarest selector (the pivot, from
 *   selector_stats), kept when they carry all |F|.
 * - any (S ∩ F ≠ ∅): the entry_selectors postings of F, grouped per entry.
 *
 * federatesWith sets are small and sparse, so they use the grouped postings for every mode; an
 * entry may federate with nothing, and ∅ ⊆ F, so subset (and exact with F = ∅) include those.
 */
import type { SelectorMatch } from './types.js';

export type Params = Record<string, string | number>;

export interface Query {
  ctes: string[];
  /** The driving table(s); `entries e` when no set match drives the query. */
  from: string;
  joins: string[];
  where: string[];
  params: Params;
}

export const PLAIN_FROM = 'entries e';

const TYPE_OF = "(j.value ->> '$[0]')";
const VALUE_OF = "(j.value ->> '$[1]')";
/** How many of entry e's selectors are in F (bound as @sm). */
const MATCHED =
  '(SELECT count(*) FROM entry_selectors x WHERE x.entry_id = e.id AND ' +
  "(x.type, x.value) IN (SELECT v.value ->> '$[0]', v.value ->> '$[1]' FROM json_each(@sm) v))";

/** Drives the query from a grouped-postings CTE `name(id, n)`, n = |S ∩ F|. */
function drive(q: Query, name: string): void {
  if (q.from === PLAIN_FROM) q.from = `${name} CROSS JOIN entries e ON e.id = ${name}.id`;
  else q.joins.push(`JOIN ${name} ON ${name}.id = e.id`);
}

/**
 * Adds a selector match. `json` is F canonical as JSON [type, value] pairs, `key` its canonical
 * key, `pivot` F's rarest selector with its entry count (undefined when F is empty).
 */
export function addSelectorMatch(
  q: Query,
  match: SelectorMatch,
  f: { json: string; size: number; key: string; pivot?: { type: string; value: string; entries: number } },
): void {
  if (f.size === 0) {
    // Every entry has a selector: S ⊇ ∅ always holds, and the other modes never do.
    if (match !== 'superset') q.where.push('0');
    return;
  }
  q.params.sm = f.json;
  q.params.sm_size = f.size;
  if (match === 'exact') {
    q.where.push('e.selectors_key = @sm_key');
    q.params.sm_key = f.key;
  } else if (match === 'subset') {
    q.from = `json_each(@sm) j CROSS JOIN entries e ON e.key_type = ${TYPE_OF} AND e.key_value = ${VALUE_OF}`;
    q.where.push(`e.selector_count <= @sm_size AND e.selector_count = ${MATCHED}`);
  } else if (match === 'superset') {
    if (!f.pivot || f.pivot.entries === 0) {
      q.where.push('0');
      return;
    }
    q.from = 'entry_selectors p CROSS JOIN entries e ON e.id = p.entry_id';
    q.where.push(`p.type = @sm_pivot_type AND p.value = @sm_pivot_value AND e.selector_count >= @sm_size AND ${MATCHED} = @sm_size`);
    q.params.sm_pivot_type = f.pivot.type;
    q.params.sm_pivot_value = f.pivot.value;
  } else {
    q.ctes.push(`sm(id) AS (SELECT DISTINCT es.entry_id FROM json_each(@sm) j JOIN entry_selectors es ON es.type = ${TYPE_OF} AND es.value = ${VALUE_OF})`);
    drive(q, 'sm');
  }
}

/** Adds a federatesWith match of the (canonical) trust domain list. */
export function addFederatesMatch(q: Query, match: SelectorMatch, trustDomains: readonly string[]): void {
  const size = trustDomains.length;
  if (size === 0) {
    if (match === 'subset' || match === 'exact') q.where.push('e.federates_count = 0');
    else if (match === 'any') q.where.push('0');
    return;
  }
  q.ctes.push('fm(id, n) AS (SELECT ef.entry_id, count(*) FROM json_each(@fm) j JOIN entry_federates_with ef ON ef.trust_domain = j.value GROUP BY 1)');
  q.params.fm = JSON.stringify(trustDomains);
  q.params.fm_size = size;
  if (match === 'subset') {
    q.joins.push('LEFT JOIN fm ON fm.id = e.id');
    q.where.push('coalesce(fm.n, 0) = e.federates_count');
    return;
  }
  drive(q, 'fm');
  if (match === 'superset') q.where.push('fm.n = @fm_size');
  else if (match === 'exact') q.where.push('fm.n = @fm_size AND e.federates_count = @fm_size');
}
