/**
 * Registration entries as they cross the admin API and `--data` files (snake_case JSON, as in
 * `spire-server entry create -data`), and the rules an entry must satisfy before it is stored.
 */
import { WritError, type ErrorCode } from '../errors.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../spiffeid/index.js';
import type { EntryPatch, NewEntry, RegistrationEntry } from '../datastore/types.js';
import { normalizeSelectors, validateSelector } from './selector.js';

/** The reserved namespace: IDs of the server and of agents live under it, never workloads. */
export const RESERVED_PATH = '/writ';
export const MAX_HINT_BYTES = 1024;
/** Ten years: a TTL beyond that is a typo, not a policy. */
export const MAX_TTL_SECONDS = 10 * 365 * 86400;
const MAX_DNS_NAMES = 100;

export interface EntryJson {
  id?: string;
  spiffe_id: string;
  parent_id: string;
  selectors: Array<{ type: string; value: string }>;
  x509_svid_ttl?: number;
  jwt_svid_ttl?: number;
  dns_names?: string[];
  hint?: string;
  admin?: boolean;
  downstream?: boolean;
  federates_with?: string[];
  expires_at?: number | null;
  revision?: number;
  created_at?: number;
}

const ENTRY_FIELDS = new Set([
  'id', 'spiffe_id', 'parent_id', 'selectors', 'x509_svid_ttl', 'jwt_svid_ttl', 'dns_names', 'hint',
  'admin', 'downstream', 'federates_with', 'expires_at', 'revision', 'created_at',
]);

export function entryToJson(e: RegistrationEntry): Required<EntryJson> {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: e.dnsNames,
    hint: e.hint,
    admin: e.admin,
    downstream: e.downstream,
    federates_with: e.federatesWith,
    expires_at: e.expiresAt,
    revision: e.revision,
    created_at: e.createdAt,
  };
}

class Checker {
  constructor(private readonly where: string) {}

  fail(code: ErrorCode, field: string, why: string): never {
    throw new WritError(code, `${this.where}: ${field}: ${why}`, { details: { field } });
  }

  wrap<T>(field: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof WritError) throw new WritError(e.code, `${this.where}: ${field}: ${e.message}`, { details: { field } });
      throw e;
    }
  }
}

/** The server's rules for a workload or node-alias SPIFFE ID. */
function checkWorkloadId(raw: unknown, trustDomain: string, c: Checker, field: string): SpiffeId {
  if (typeof raw !== 'string') c.fail('ERR_ENTRY_INVALID', field, 'must be a SPIFFE ID string.');
  const id = c.wrap(field, () => parseSpiffeId(raw));
  if (id.trustDomain.name !== trustDomain) {
    c.fail('ERR_SPIFFEID_NOT_MEMBER', field, `${id.toString()} is not in this server's trust domain ${trustDomain}.`);
  }
  if (id.path === '') c.fail('ERR_SPIFFEID_PATH', field, `${id.toString()} has no path; a workload ID needs one.`);
  return id;
}

function isReserved(id: SpiffeId): boolean {
  return id.path === RESERVED_PATH || id.path.startsWith(`${RESERVED_PATH}/`);
}

function checkTtl(raw: unknown, c: Checker, field: string): number {
  if (raw === undefined || raw === null) return 0;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0) c.fail('ERR_TTL_INVALID', field, 'must be a whole number of seconds, zero (server default) or more.');
  if (raw > MAX_TTL_SECONDS) c.fail('ERR_TTL_INVALID', field, `must be at most ${MAX_TTL_SECONDS} seconds (ten years).`);
  return raw;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function checkDnsName(name: unknown, c: Checker, field: string): string {
  if (typeof name !== 'string') c.fail('ERR_DNS_NAME_INVALID', field, 'must be a string.');
  const lower = name.toLowerCase();
  const body = lower.startsWith('*.') ? lower.slice(2) : lower;
  if (lower.length === 0 || lower.length > 253 || !body.split('.').every((l) => DNS_LABEL.test(l))) {
    c.fail('ERR_DNS_NAME_INVALID', field, `"${name.slice(0, 64)}" is not a valid DNS name.`);
  }
  return lower;
}

function dnsNames(raw: unknown, c: Checker): string[] {
  const names = checkStringArray(raw, c, 'dns_names');
  if (names.length > MAX_DNS_NAMES) c.fail('ERR_DNS_NAME_INVALID', 'dns_names', `at most ${MAX_DNS_NAMES} DNS names.`);
  // The first DNS name becomes the certificate's common name, so order is kept (duplicates dropped).
  return [...new Set(names.map((n, i) => checkDnsName(n, c, `dns_names[${i}]`)))];
}

/** DNS SANs for an SVID: valid names (a leading "*." allowed), lower-cased, first one first. */
export function validateDnsNames(raw: unknown, where: string): string[] {
  return dnsNames(raw, new Checker(where));
}

function checkStringArray(raw: unknown, c: Checker, field: string): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) c.fail('ERR_ENTRY_INVALID', field, 'must be a list.');
  return raw as string[];
}

function checkBool(raw: unknown, c: Checker, field: string): boolean {
  if (raw === undefined || raw === null) return false;
  if (typeof raw !== 'boolean') c.fail('ERR_ENTRY_INVALID', field, 'must be true or false.');
  return raw;
}

function sortedUnique(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

/** Validates every field that is present; used by create (all fields) and update (a patch). */
function checkFields(raw: Record<string, unknown>, trustDomain: string, c: Checker, partial: boolean): EntryPatch {
  for (const k of Object.keys(raw)) {
    if (!ENTRY_FIELDS.has(k)) c.fail('ERR_ENTRY_INVALID', k, 'is not an entry field.');
  }
  const out: EntryPatch = {};
  const has = (k: string) => Object.hasOwn(raw, k) && raw[k] !== undefined;
  if (has('spiffe_id') || !partial) {
    const id = checkWorkloadId(raw.spiffe_id, trustDomain, c, 'spiffe_id');
    if (isReserved(id)) c.fail('ERR_SPIFFEID_RESERVED', 'spiffe_id', `${id.toString()} is in the reserved ${RESERVED_PATH} namespace.`);
    out.spiffeId = id.toString();
  }
  if (has('parent_id') || !partial) {
    if (typeof raw.parent_id !== 'string') c.fail('ERR_ENTRY_INVALID', 'parent_id', 'must be a SPIFFE ID string.');
    const parent = c.wrap('parent_id', () => parseSpiffeId(raw.parent_id as string));
    if (parent.trustDomain.name !== trustDomain) {
      c.fail('ERR_SPIFFEID_NOT_MEMBER', 'parent_id', `${parent.toString()} is not in this server's trust domain ${trustDomain}.`);
    }
    out.parentId = parent.toString();
  }
  if (has('selectors') || !partial) {
    if (!Array.isArray(raw.selectors) || raw.selectors.length === 0) c.fail('ERR_SELECTOR_INVALID', 'selectors', 'at least one selector is required.');
    out.selectors = normalizeSelectors((raw.selectors as unknown[]).map((s, i) => c.wrap(`selectors[${i}]`, () => validateSelector(s as { type: string; value: string }))));
  }
  if (has('x509_svid_ttl') || !partial) out.x509SvidTtl = checkTtl(raw.x509_svid_ttl, c, 'x509_svid_ttl');
  if (has('jwt_svid_ttl') || !partial) out.jwtSvidTtl = checkTtl(raw.jwt_svid_ttl, c, 'jwt_svid_ttl');
  if (has('dns_names') || !partial) out.dnsNames = dnsNames(raw.dns_names, c);
  if (has('hint') || !partial) {
    const hint = raw.hint ?? '';
    if (typeof hint !== 'string') c.fail('ERR_ENTRY_INVALID', 'hint', 'must be a string.');
    if (Buffer.byteLength(hint) > MAX_HINT_BYTES) c.fail('ERR_ENTRY_INVALID', 'hint', `must be at most ${MAX_HINT_BYTES} bytes.`);
    out.hint = hint;
  }
  if (has('admin') || !partial) out.admin = checkBool(raw.admin, c, 'admin');
  if (has('downstream') || !partial) out.downstream = checkBool(raw.downstream, c, 'downstream');
  if (has('federates_with') || !partial) {
    const tds = checkStringArray(raw.federates_with, c, 'federates_with').map((t, i) => {
      if (typeof t !== 'string') c.fail('ERR_ENTRY_INVALID', `federates_with[${i}]`, 'must be a trust domain name.');
      const td = c.wrap(`federates_with[${i}]`, () => parseTrustDomain(t));
      if (td.name === trustDomain) c.fail('ERR_ENTRY_INVALID', `federates_with[${i}]`, 'an entry cannot federate with its own trust domain.');
      return td.name;
    });
    out.federatesWith = sortedUnique(tds);
  }
  if (has('expires_at') || !partial) {
    const exp = raw.expires_at ?? null;
    if (exp !== null && (typeof exp !== 'number' || !Number.isSafeInteger(exp) || exp < 0)) {
      c.fail('ERR_ENTRY_INVALID', 'expires_at', 'must be Unix seconds or null.');
    }
    out.expiresAt = exp as number | null;
  }
  return out;
}

function asObject(raw: unknown, c: Checker): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) c.fail('ERR_ENTRY_INVALID', 'entry', 'must be a JSON object.');
  return raw as Record<string, unknown>;
}

const ENTRY_ID = /^[A-Za-z0-9._-]{1,255}$/;

export function checkEntryId(raw: unknown, where: string): string {
  if (typeof raw !== 'string' || !ENTRY_ID.test(raw)) {
    throw new WritError('ERR_ENTRY_INVALID', `${where}: id must be 1 to 255 letters, digits, dots, dashes or underscores.`, { details: { field: 'id' } });
  }
  return raw;
}

/** Validates one entry of a create batch. `index` names it in messages. */
export function validateNewEntry(raw: unknown, trustDomain: string, index = 0): NewEntry {
  const c = new Checker(`entry ${index}`);
  const obj = asObject(raw, c);
  if (obj.revision !== undefined || obj.created_at !== undefined) {
    c.fail('ERR_ENTRY_INVALID', obj.revision !== undefined ? 'revision' : 'created_at', 'is set by the server.');
  }
  const fields = checkFields(obj, trustDomain, c, false) as Required<EntryPatch>;
  return { ...fields, ...(obj.id !== undefined ? { id: checkEntryId(obj.id, `entry ${index}`) } : {}) };
}

/** Validates one update of a batch: an id plus the fields to change. */
export function validateEntryUpdate(raw: unknown, trustDomain: string, index = 0): { id: string; patch: EntryPatch } {
  const c = new Checker(`entry ${index}`);
  const obj = asObject(raw, c);
  const id = checkEntryId(obj.id, `entry ${index}`);
  const { id: _id, revision: _r, created_at: _c, ...rest } = obj;
  const patch = checkFields(rest, trustDomain, c, true);
  if (Object.keys(patch).length === 0) c.fail('ERR_ENTRY_INVALID', 'entry', 'an update must change at least one field.');
  return { id, patch };
}
