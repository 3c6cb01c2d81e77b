/**
 * The agent's cache: the entries it may serve (indexed by selector so a caller's entries are found
 * without a scan), one X509-SVID per entry with its rotation time, the trust domain's bundle, the
 * federated bundles and the CRLs. Listeners hear about every change. It serializes to and from the
 * state file, so a restarted agent serves what it had until the SVIDs expire. It also holds the
 * authorities the server has tainted (forced CA rotation): SVIDs whose chain runs through one are
 * re-signed at once, JWT-SVIDs of a tainted (or no longer published) key are dropped.
 */
import type { RegistrationEntry, Selector } from '../datastore/types.js';
import { SpiffeBundle } from '../bundle/index.js';
import { parseTrustDomain } from '../spiffeid/index.js';
import type { EntryJson } from '../registry/index.js';
import { chainIssuerIds } from '../ca/index.js';
import { LiveList } from './live-list.js';

export interface CachedSvid {
  entryId: string;
  spiffeId: string;
  /** DER, leaf first. */
  chain: Buffer[];
  /** PKCS#8 DER. */
  key: Buffer;
  serial: string;
  /** Milliseconds. */
  notBefore: number;
  notAfter: number;
  /** When to replace it: half its life, ±10 %. */
  rotateAt: number;
  /** The entry revision it was signed for. */
  revision: number;
}

const selKey = (s: Selector) => `${s.type}:${s.value}`;
/** 0 for an entry pinned to one process (unix:pid:<pid>), 1 for any other. */
const pinnedFirst = (e: RegistrationEntry) => (e.selectors.some((s) => s.type === 'unix' && s.value.startsWith('pid:')) ? 0 : 1);

export function entryFromJson(j: Required<EntryJson>): RegistrationEntry {
  return {
    id: j.id,
    spiffeId: j.spiffe_id,
    parentId: j.parent_id,
    selectors: j.selectors,
    x509SvidTtl: j.x509_svid_ttl,
    jwtSvidTtl: j.jwt_svid_ttl,
    dnsNames: j.dns_names,
    hint: j.hint,
    admin: j.admin,
    downstream: j.downstream,
    federatesWith: j.federates_with,
    expiresAt: j.expires_at,
    revision: j.revision,
    createdAt: j.created_at,
  };
}

export class AgentCache {
  readonly entries = new Map<string, RegistrationEntry>();
  readonly svids = new Map<string, CachedSvid>();
  readonly federated = new Map<string, SpiffeBundle>();
  bundle: SpiffeBundle | undefined;
  crls: Buffer[] = [];
  revision = 0;
  aliasKey = '';
  /** Hex SKIs of tainted X.509 authorities, and kids of tainted JWT keys, from the last sync. */
  taintedX509: ReadonlySet<string> = new Set();
  taintedJwtKids: ReadonlySet<string> = new Set();
  readonly #issuers = new WeakMap<readonly Buffer[], string[]>();
  readonly #index = new Map<string, Set<string>>();
  /** Every open stream subscribes and unsubscribes: a LiveList, not a Set (see live-list.ts). */
  readonly #listeners = new LiveList<() => void>();

  constructor(readonly trustDomain: string) {}

  subscribe(fn: () => void): () => void {
    return this.#listeners.add(fn);
  }

  notify(): void {
    for (const fn of this.#listeners.values()) {
      try {
        fn();
      } catch {
        // a listener's failure is its own
      }
    }
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  putEntry(e: RegistrationEntry): void {
    this.removeEntry(e.id, false);
    this.entries.set(e.id, e);
    for (const s of e.selectors) {
      const k = selKey(s);
      let set = this.#index.get(k);
      if (!set) this.#index.set(k, (set = new Set()));
      set.add(e.id);
    }
  }

  /** Removes an entry and its SVID; `dropSvid` false keeps the SVID (an update follows). */
  removeEntry(id: string, dropSvid = true): boolean {
    const old = this.entries.get(id);
    if (!old) return false;
    this.entries.delete(id);
    for (const s of old.selectors) {
      const set = this.#index.get(selKey(s));
      set?.delete(id);
      if (set && set.size === 0) this.#index.delete(selKey(s));
    }
    if (dropSvid) this.svids.delete(id);
    return true;
  }

  /**
   * Entries whose selectors are all among `selectors`, oldest first (the first is the default SVID),
   * except that entries pinned to one process (a unix:pid selector: a task's) come before the rest,
   * so a task's process presents its task identity by default.
   */
  matching(selectors: readonly Selector[]): RegistrationEntry[] {
    const counts = new Map<string, number>();
    for (const s of new Set(selectors.map(selKey))) {
      for (const id of this.#index.get(s) ?? []) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const out: RegistrationEntry[] = [];
    for (const [id, n] of counts) {
      const e = this.entries.get(id);
      if (e && n === e.selectors.length) out.push(e);
    }
    return out.sort((a, b) => pinnedFirst(a) - pinnedFirst(b) || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  setBundle(document: string): boolean {
    const b = SpiffeBundle.parse(parseTrustDomain(this.trustDomain), document);
    if (this.bundle && this.bundle.equals(b)) return false;
    this.bundle = b;
    return true;
  }

  setFederated(td: string, document: string): boolean {
    const b = SpiffeBundle.parse(parseTrustDomain(td), document);
    const old = this.federated.get(td);
    if (old && old.equals(b)) return false;
    this.federated.set(td, b);
    return true;
  }

  /** Replaces the tainted sets; true when they changed. */
  setTainted(x509: readonly string[], jwtKids: readonly string[]): boolean {
    const same = (a: ReadonlySet<string>, b: readonly string[]) => a.size === new Set(b).size && b.every((x) => a.has(x));
    if (same(this.taintedX509, x509) && same(this.taintedJwtKids, jwtKids)) return false;
    this.taintedX509 = new Set(x509);
    this.taintedJwtKids = new Set(jwtKids);
    return true;
  }

  /** Whether a certificate chain (leaf first) was issued under a tainted authority. */
  chainTainted(chain: readonly Buffer[]): boolean {
    if (this.taintedX509.size === 0) return false;
    let ids = this.#issuers.get(chain);
    if (!ids) this.#issuers.set(chain, (ids = chainIssuerIds(chain)));
    return ids.some((id) => this.taintedX509.has(id));
  }

  /** Whether a cached JWT-SVID may still be handed out: its kid is published and not tainted. */
  jwtKeyUsable(token: string): boolean {
    let kid: unknown;
    try {
      kid = (JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as { kid?: unknown }).kid;
    } catch {
      return false;
    }
    if (typeof kid !== 'string' || this.taintedJwtKids.has(kid)) return false;
    return this.bundle === undefined || this.bundle.jwtAuthorities.has(kid);
  }

  setCrls(crls: Buffer[]): boolean {
    const same = crls.length === this.crls.length && crls.every((c, i) => c.equals(this.crls[i]!));
    if (same) return false;
    this.crls = crls;
    return true;
  }
}
