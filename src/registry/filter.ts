/**
 * Entry filters as they cross the admin API: the snake_case JSON form and its validation into the
 * datastore's EntryFilter.
 */
import { WritError } from '../errors.js';
import { parseSpiffeId, parseTrustDomain } from '../spiffeid/index.js';
import type { EntryFilter, SelectorMatch } from '../datastore/types.js';
import { normalizeSelectors, validateSelector } from './selector.js';

export interface EntryFilterJson {
  ids?: string[];
  spiffe_id?: string;
  parent_id?: string;
  selectors?: { set: Array<{ type: string; value: string }>; match?: SelectorMatch };
  federates_with?: { trust_domains: string[]; match?: SelectorMatch };
  hint?: string;
  downstream?: boolean;
}

const MATCHES: readonly SelectorMatch[] = ['exact', 'subset', 'superset', 'any'];

function bad(why: string): never {
  throw new WritError('ERR_FILTER_INVALID', `filter: ${why}`);
}

function checkMatch(m: unknown, field: string): SelectorMatch {
  if (m === undefined) return 'superset';
  if (typeof m !== 'string' || !MATCHES.includes(m as SelectorMatch)) bad(`${field} must be one of ${MATCHES.join(', ')}.`);
  return m as SelectorMatch;
}

export function validateEntryFilter(raw: unknown): EntryFilter {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) bad('must be a JSON object.');
  const f = raw as Record<string, unknown>;
  const known = new Set(['ids', 'spiffe_id', 'parent_id', 'selectors', 'federates_with', 'hint', 'downstream']);
  for (const k of Object.keys(f)) if (!known.has(k)) bad(`"${k}" is not a filter field.`);
  const out: EntryFilter = {};
  if (f.ids !== undefined) {
    if (!Array.isArray(f.ids) || !f.ids.every((x) => typeof x === 'string')) bad('ids must be a list of strings.');
    out.ids = f.ids as string[];
  }
  if (f.spiffe_id !== undefined) {
    if (typeof f.spiffe_id !== 'string') bad('spiffe_id must be a string.');
    out.spiffeId = parseSpiffeId(f.spiffe_id).toString();
  }
  if (f.parent_id !== undefined) {
    if (typeof f.parent_id !== 'string') bad('parent_id must be a string.');
    out.parentId = parseSpiffeId(f.parent_id).toString();
  }
  if (f.selectors !== undefined) {
    const s = f.selectors as { set?: unknown; match?: unknown };
    if (typeof s !== 'object' || s === null || !Array.isArray(s.set) || s.set.length === 0) bad('selectors.set must be a non-empty list.');
    out.selectors = {
      set: normalizeSelectors((s.set as unknown[]).map((x, i) => validateSelector(x as { type: string; value: string }, `filter selector ${i}`))),
      match: checkMatch(s.match, 'selectors.match'),
    };
  }
  if (f.federates_with !== undefined) {
    const s = f.federates_with as { trust_domains?: unknown; match?: unknown };
    if (typeof s !== 'object' || s === null || !Array.isArray(s.trust_domains) || s.trust_domains.length === 0) {
      bad('federates_with.trust_domains must be a non-empty list.');
    }
    out.federatesWith = {
      trustDomains: [...new Set((s.trust_domains as unknown[]).map((t) => parseTrustDomain(String(t)).name))].sort(),
      match: checkMatch(s.match, 'federates_with.match'),
    };
  }
  if (f.hint !== undefined) {
    if (typeof f.hint !== 'string') bad('hint must be a string.');
    out.hint = f.hint;
  }
  if (f.downstream !== undefined) {
    if (typeof f.downstream !== 'boolean') bad('downstream must be true or false.');
    out.downstream = f.downstream;
  }
  return out;
}
