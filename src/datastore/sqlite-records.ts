/**
 * The SQLite tables beside registration entries: trust bundles, CA slots, join tokens, attested
 * agents (with their selectors) and revoked serials. Statements are prepared once.
 */
import type Database from 'better-sqlite3';
import { WritError } from '../errors.js';
import { canonicalSelectors, selectorsJson } from './sqlite-rows.js';
import type { AttestedAgent, BundleRecord, CaKind, CaSlotName, CaSlotRecord, CaSlotStatus, JoinTokenRecord, RevokedSerial, Selector } from './types.js';

interface BundleRow {
  trust_domain: string;
  document: string;
  sequence: number;
  refresh_hint: number;
  updated_at: number;
}
interface CaSlotRow {
  kind: CaKind;
  slot: CaSlotName;
  status: CaSlotStatus;
  key_id: string;
  material: Buffer;
  authority_id: string;
  not_before: number;
  not_after: number;
  tainted: number;
  updated_at: number;
}
interface TokenRow {
  token_hash: string;
  expires_at: number;
  spiffe_id: string | null;
  created_at: number;
  used_at: number | null;
}
interface AgentRow {
  spiffe_id: string;
  attestation_type: string;
  serial: string;
  expires_at: number;
  selectors: string;
  banned: number;
  can_reattest: number;
  created_at: number;
  updated_at: number;
}
interface RevokedRow {
  serial: string;
  issuer_ski: string;
  revoked_at: number;
  not_after: number;
  reason: string;
}

const toBundle = (r: BundleRow): BundleRecord => ({
  trustDomain: r.trust_domain,
  document: r.document,
  sequence: r.sequence,
  refreshHint: r.refresh_hint,
  updatedAt: r.updated_at,
});
const toCaSlot = (r: CaSlotRow): CaSlotRecord => ({
  kind: r.kind,
  slot: r.slot,
  status: r.status,
  keyId: r.key_id,
  material: Buffer.from(r.material),
  authorityId: r.authority_id,
  notBefore: r.not_before,
  notAfter: r.not_after,
  tainted: r.tainted === 1,
  updatedAt: r.updated_at,
});
const toToken = (r: TokenRow): JoinTokenRecord => ({
  tokenHash: r.token_hash,
  expiresAt: r.expires_at,
  spiffeId: r.spiffe_id,
  createdAt: r.created_at,
  usedAt: r.used_at,
});
const toAgent = (r: AgentRow): AttestedAgent => ({
  spiffeId: r.spiffe_id,
  attestationType: r.attestation_type,
  serial: r.serial,
  expiresAt: r.expires_at,
  selectors: (JSON.parse(r.selectors) as Array<[string, string]>).map(([type, value]): Selector => ({ type, value })),
  banned: r.banned === 1,
  canReattest: r.can_reattest === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const toRevoked = (r: RevokedRow): RevokedSerial => ({ serial: r.serial, issuerSki: r.issuer_ski, revokedAt: r.revoked_at, notAfter: r.not_after, reason: r.reason });

function prepare(db: Database.Database) {
  const agentSelect = 'SELECT * FROM agents';
  return {
    getBundle: db.prepare<[string], BundleRow>('SELECT * FROM bundles WHERE trust_domain = ?'),
    listBundles: db.prepare<[], BundleRow>('SELECT * FROM bundles ORDER BY trust_domain'),
    setBundle: db.prepare<[string, string, number, number], BundleRow>(
      'INSERT INTO bundles (trust_domain, document, sequence, refresh_hint, updated_at) VALUES (?, ?, 1, ?, ?) ' +
        'ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, sequence = bundles.sequence + 1, ' +
        'refresh_hint = excluded.refresh_hint, updated_at = excluded.updated_at RETURNING *',
    ),
    deleteBundle: db.prepare<[string]>('DELETE FROM bundles WHERE trust_domain = ?'),
    listCa: db.prepare<[], CaSlotRow>('SELECT * FROM ca_slots ORDER BY kind, slot'),
    listCaKind: db.prepare<[string], CaSlotRow>('SELECT * FROM ca_slots WHERE kind = ? ORDER BY slot'),
    putCa: db.prepare<[CaSlotRow]>(
      'INSERT OR REPLACE INTO ca_slots (kind, slot, status, key_id, material, authority_id, not_before, not_after, tainted, updated_at) ' +
        'VALUES (@kind, @slot, @status, @key_id, @material, @authority_id, @not_before, @not_after, @tainted, @updated_at)',
    ),
    deleteCa: db.prepare<[string, string]>('DELETE FROM ca_slots WHERE kind = ? AND slot = ?'),
    addToken: db.prepare<[TokenRow]>(
      'INSERT INTO join_tokens (token_hash, expires_at, spiffe_id, created_at, used_at) VALUES (@token_hash, @expires_at, @spiffe_id, @created_at, @used_at)',
    ),
    getToken: db.prepare<[string], TokenRow>('SELECT * FROM join_tokens WHERE token_hash = ?'),
    // The single statement that makes a token single use: only one caller can flip used_at.
    useToken: db.prepare<[number, string, number], TokenRow>(
      'UPDATE join_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING *',
    ),
    pruneTokens: db.prepare<[number]>('DELETE FROM join_tokens WHERE expires_at <= ?'),
    upsertAgent: db.prepare<[AgentRow]>(
      'INSERT INTO agents (spiffe_id, attestation_type, serial, expires_at, selectors, banned, can_reattest, created_at, updated_at) ' +
        'VALUES (@spiffe_id, @attestation_type, @serial, @expires_at, @selectors, @banned, @can_reattest, @created_at, @updated_at) ' +
        'ON CONFLICT (spiffe_id) DO UPDATE SET attestation_type = excluded.attestation_type, serial = excluded.serial, ' +
        'expires_at = excluded.expires_at, selectors = excluded.selectors, banned = excluded.banned, ' +
        'can_reattest = excluded.can_reattest, updated_at = excluded.updated_at',
    ),
    dropAgentSelectors: db.prepare<[string]>('DELETE FROM agent_selectors WHERE agent_id = ?'),
    addAgentSelector: db.prepare<[string, string, string]>('INSERT INTO agent_selectors (agent_id, type, value) VALUES (?, ?, ?)'),
    getAgent: db.prepare<[string], AgentRow>(`${agentSelect} WHERE spiffe_id = ?`),
    listAgents: db.prepare<[], AgentRow>(`${agentSelect} ORDER BY spiffe_id`),
    listAgentsBanned: db.prepare<[number], AgentRow>(`${agentSelect} WHERE banned = ? ORDER BY spiffe_id`),
    listAgentsType: db.prepare<[string], AgentRow>(`${agentSelect} WHERE attestation_type = ? ORDER BY spiffe_id`),
    listAgentsBoth: db.prepare<[number, string], AgentRow>(`${agentSelect} WHERE banned = ? AND attestation_type = ? ORDER BY spiffe_id`),
    deleteAgent: db.prepare<[string]>('DELETE FROM agents WHERE spiffe_id = ?'),
    addRevoked: db.prepare<[RevokedRow]>(
      'INSERT INTO revoked_serials (serial, issuer_ski, revoked_at, not_after, reason) VALUES (@serial, @issuer_ski, @revoked_at, @not_after, @reason) ' +
        'ON CONFLICT (serial, issuer_ski) DO NOTHING',
    ),
    listRevoked: db.prepare<[], RevokedRow>('SELECT * FROM revoked_serials ORDER BY issuer_ski, serial'),
    pruneRevoked: db.prepare<[number]>('DELETE FROM revoked_serials WHERE not_after < ?'),
  };
}

export class SqliteRecords {
  private readonly s: ReturnType<typeof prepare>;
  private readonly upsertAgentTx: Database.Transaction<(a: AttestedAgent) => void>;
  private readonly addRevokedTx: Database.Transaction<(list: RevokedSerial[]) => void>;

  constructor(db: Database.Database) {
    this.s = prepare(db);
    this.upsertAgentTx = db.transaction((a: AttestedAgent) => {
      const selectors = canonicalSelectors(a.selectors);
      this.s.upsertAgent.run({
        spiffe_id: a.spiffeId,
        attestation_type: a.attestationType,
        serial: a.serial,
        expires_at: a.expiresAt,
        selectors: selectorsJson(selectors),
        banned: a.banned ? 1 : 0,
        can_reattest: a.canReattest ? 1 : 0,
        created_at: a.createdAt,
        updated_at: a.updatedAt,
      });
      this.s.dropAgentSelectors.run(a.spiffeId);
      for (const sel of selectors) this.s.addAgentSelector.run(a.spiffeId, sel.type, sel.value);
    });
    this.addRevokedTx = db.transaction((list: RevokedSerial[]) => {
      for (const r of list) {
        this.s.addRevoked.run({ serial: r.serial, issuer_ski: r.issuerSki, revoked_at: r.revokedAt, not_after: r.notAfter, reason: r.reason });
      }
    });
  }

  getBundle(td: string): BundleRecord | undefined {
    const r = this.s.getBundle.get(td);
    return r ? toBundle(r) : undefined;
  }
  listBundles(): BundleRecord[] {
    return this.s.listBundles.all().map(toBundle);
  }
  setBundle(td: string, document: string, refreshHint: number, now: number): BundleRecord {
    const r = this.s.setBundle.get(td, document, refreshHint, now);
    if (!r) throw new WritError('ERR_DATASTORE', 'The datastore did not return the bundle it stored.');
    return toBundle(r);
  }
  deleteBundle(td: string): boolean {
    return this.s.deleteBundle.run(td).changes > 0;
  }

  listCaSlots(kind?: CaKind): CaSlotRecord[] {
    return (kind === undefined ? this.s.listCa.all() : this.s.listCaKind.all(kind)).map(toCaSlot);
  }
  putCaSlot(c: CaSlotRecord): void {
    this.s.putCa.run({
      kind: c.kind,
      slot: c.slot,
      status: c.status,
      key_id: c.keyId,
      material: c.material,
      authority_id: c.authorityId,
      not_before: c.notBefore,
      not_after: c.notAfter,
      tainted: c.tainted ? 1 : 0,
      updated_at: c.updatedAt,
    });
  }
  deleteCaSlot(kind: CaKind, slot: CaSlotName): void {
    this.s.deleteCa.run(kind, slot);
  }

  createJoinToken(t: JoinTokenRecord): void {
    this.s.addToken.run({ token_hash: t.tokenHash, expires_at: t.expiresAt, spiffe_id: t.spiffeId, created_at: t.createdAt, used_at: t.usedAt });
  }
  consumeJoinToken(hash: string, now: number): JoinTokenRecord {
    const used = this.s.useToken.get(now, hash, now);
    if (used) return toToken(used);
    const t = this.s.getToken.get(hash);
    if (!t) throw new WritError('ERR_TOKEN_INVALID', 'The join token is not valid.');
    if (t.used_at !== null) throw new WritError('ERR_TOKEN_USED', 'The join token has already been used.');
    throw new WritError('ERR_TOKEN_EXPIRED', 'The join token has expired.');
  }
  pruneJoinTokens(now: number): number {
    return this.s.pruneTokens.run(now).changes;
  }

  /** Creates or replaces the agent; on replace, the stored createdAt is kept. */
  upsertAgent(a: AttestedAgent): void {
    this.upsertAgentTx.immediate(a);
  }
  getAgent(id: string): AttestedAgent | undefined {
    const r = this.s.getAgent.get(id);
    return r ? toAgent(r) : undefined;
  }
  listAgents(f: { banned?: boolean; attestationType?: string } = {}): AttestedAgent[] {
    const banned = f.banned === undefined ? undefined : f.banned ? 1 : 0;
    let rows: AgentRow[];
    if (banned !== undefined && f.attestationType !== undefined) rows = this.s.listAgentsBoth.all(banned, f.attestationType);
    else if (banned !== undefined) rows = this.s.listAgentsBanned.all(banned);
    else if (f.attestationType !== undefined) rows = this.s.listAgentsType.all(f.attestationType);
    else rows = this.s.listAgents.all();
    return rows.map(toAgent);
  }
  deleteAgent(id: string): boolean {
    return this.s.deleteAgent.run(id).changes > 0;
  }

  /** Idempotent: a serial already listed keeps its first record. */
  addRevoked(list: RevokedSerial[]): void {
    this.addRevokedTx.immediate(list);
  }
  listRevoked(): RevokedSerial[] {
    return this.s.listRevoked.all().map(toRevoked);
  }
  /** Removes serials whose certificate has expired (notAfter < now). */
  pruneRevoked(now: number): number {
    return this.s.pruneRevoked.run(now).changes;
  }
}
