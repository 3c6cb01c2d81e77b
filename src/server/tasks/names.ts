/**
 * The input rules of agent identities and tasks: agent names, owners, delegator lists, purposes,
 * requester texts, TTLs, and the task id (128 random bits in lower-case base32, 26 characters,
 * one SPIFFE ID path segment). Each refusal is one coded sentence that names the field.
 */
import { WritError, type ErrorCode } from '../../errors.js';
import { cryptoRandom, type RandomSource } from '../../clock.js';
import { parseDurationSeconds } from '../../duration.js';
import { lookupGroupId } from '../../platform/index.js';

export const AGENT_NAME = /^[a-z0-9_-]{1,64}$/;
export const TASK_ID = /^[a-z2-7]{26}$/;
export const MAX_PURPOSE = 512;
export const MAX_PARTY_ID = 256;
export const MAX_DELEGATORS = 64;
/** Longest task any agent may be allowed: a week. */
export const MAX_TASK_TTL_LIMIT = 7 * 86400;

// C0 and C1 controls and DEL: these texts are shown to people and go into certificates.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function text(raw: unknown, field: string, max: number, code: ErrorCode): string {
  if (typeof raw !== 'string' || raw.trim().length === 0) throw new WritError(code, `${field} must be a non-empty string.`, { details: { field } });
  if (raw.length > max) throw new WritError(code, `${field} must be at most ${max} characters long.`, { details: { field } });
  if (CONTROL.test(raw) || /\p{Cs}/u.test(raw)) throw new WritError(code, `${field} must not contain control characters.`, { details: { field } });
  return raw;
}

export function checkAgentName(raw: unknown, code: ErrorCode = 'ERR_AGENT_IDENTITY_INVALID'): string {
  if (typeof raw !== 'string' || !AGENT_NAME.test(raw)) {
    throw new WritError(code, 'An agent name is 1 to 64 lower-case letters, digits, "-" or "_".', { details: { field: 'name' } });
  }
  return raw;
}

export function checkOwner(raw: unknown): string {
  return text(raw, 'owner', 128, 'ERR_AGENT_IDENTITY_INVALID');
}

export function checkPurpose(raw: unknown): string {
  return text(raw, 'purpose', MAX_PURPOSE, 'ERR_TASK_INVALID');
}

export function checkPartyId(raw: unknown, field: string): string {
  return text(raw, field, MAX_PARTY_ID, 'ERR_TASK_INVALID');
}

/** A TTL as seconds from a duration text or a number; `code` for the refusal. */
export function ttlSeconds(raw: unknown, field: string, code: ErrorCode): number {
  if (typeof raw !== 'string' && typeof raw !== 'number') throw new WritError(code, `${field} must be a duration such as 10m.`, { details: { field } });
  let s: number;
  try {
    s = parseDurationSeconds(raw, field);
  } catch (e) {
    throw new WritError(code, (e as Error).message, { details: { field } });
  }
  if (s <= 0) throw new WritError(code, `${field} must be longer than zero.`, { details: { field } });
  return s;
}

/**
 * Delegators: "any", "user:<id>" (a requester whose id is exactly <id>: an OS user name, an
 * OIDC subject, or the free text given), "group:<os group>" (a requester who is an OS user in
 * that group). At least one; "any" stands alone.
 */
export function checkDelegators(raw: unknown): string[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new WritError('ERR_AGENT_IDENTITY_INVALID', 'delegators must list at least one of any, user:<id>, group:<name>.', { details: { field: 'delegators' } });
  if (raw.length > MAX_DELEGATORS) throw new WritError('ERR_AGENT_IDENTITY_INVALID', `delegators may list at most ${MAX_DELEGATORS} entries.`, { details: { field: 'delegators' } });
  const out: string[] = [];
  for (const d of raw) {
    const s = text(d, 'delegators', MAX_PARTY_ID + 6, 'ERR_AGENT_IDENTITY_INVALID');
    if (s === 'any') out.push(s);
    else if (/^user:.+/.test(s)) out.push(s);
    else if (/^group:.+/.test(s)) {
      if (lookupGroupId(s.slice(6)) === undefined) throw new WritError('ERR_AGENT_IDENTITY_INVALID', `delegators: "${s.slice(0, 80)}" names a group this host does not know.`, { details: { field: 'delegators' } });
      out.push(s);
    } else {
      throw new WritError('ERR_AGENT_IDENTITY_INVALID', `delegators: "${s.slice(0, 80)}" is not any, user:<id> or group:<name>.`, { details: { field: 'delegators' } });
    }
  }
  const unique = [...new Set(out)];
  if (unique.includes('any') && unique.length > 1) throw new WritError('ERR_AGENT_IDENTITY_INVALID', 'delegators: "any" cannot be combined with other entries.', { details: { field: 'delegators' } });
  return unique;
}

/** Who is asking, as the delegator check sees it: an OS user has groups, other principals only an id. */
export interface DelegatorCandidate {
  id: string;
  /** Group ids (primary and supplementary) when the principal is an OS user. */
  gids?: readonly number[];
}

/** Whether `who` may delegate to an agent with these delegators. */
export function delegatorAllowed(delegators: readonly string[], who: DelegatorCandidate): boolean {
  for (const d of delegators) {
    if (d === 'any') return true;
    if (d.startsWith('user:') && d.slice(5) === who.id) return true;
    if (d.startsWith('group:') && who.gids) {
      const gid = lookupGroupId(d.slice(6));
      if (gid !== undefined && who.gids.includes(gid)) return true;
    }
  }
  return false;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 128 random bits as 26 lower-case RFC 4648 base32 characters (no padding). */
export function newTaskId(random: RandomSource = cryptoRandom): string {
  const bytes = random.bytes(16);
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31];
  return out;
}

export function checkTaskId(raw: unknown): string {
  if (typeof raw !== 'string' || !TASK_ID.test(raw)) throw new WritError('ERR_TASK_NOT_FOUND', `No task has the id "${String(raw).slice(0, 64)}".`);
  return raw;
}

/** A decision id: "d-" and 26 base32 characters (the delegation record's decisionId). */
export function newDecisionId(random: RandomSource = cryptoRandom): string {
  return `d-${newTaskId(random)}`;
}
