/**
 * The datastore contract. Every backend (SQLite now, PostgreSQL later) implements DataStore and
 * passes the one shared contract suite in test/datastore/contract.ts.
 *
 * Conventions: times are Unix seconds (integers); SPIFFE IDs and trust domains are strings that
 * the caller has already validated; every method is async so a networked backend fits.
 */

export interface Selector {
  /** Plugin/type name, free of ':' (for example "unix"). */
  type: string;
  /** Value, may contain ':' (for example "uid:1000"). */
  value: string;
}

export interface RegistrationEntry {
  id: string;
  spiffeId: string;
  parentId: string;
  /** Sorted by (type, value), no duplicates, at least one. */
  selectors: Selector[];
  /** Seconds; 0 means the server default. */
  x509SvidTtl: number;
  /** Seconds; 0 means the server default. */
  jwtSvidTtl: number;
  dnsNames: string[];
  /** Operator hint, at most 1024 bytes; "" when unset. */
  hint: string;
  admin: boolean;
  downstream: boolean;
  /** Trust domain names (no scheme), sorted, no duplicates. */
  federatesWith: string[];
  /** Unix seconds after which the entry is pruned; null for never. */
  expiresAt: number | null;
  /** Store-wide change counter value at the entry's last create or update (monotonic across the store). */
  revision: number;
  /** Unix seconds. */
  createdAt: number;
}

/** Fields a caller supplies to create an entry; id is generated (UUID v4) when absent. */
export type NewEntry = Omit<RegistrationEntry, 'id' | 'revision' | 'createdAt'> & { id?: string };

/** A partial update; fields absent are left as they are. */
export type EntryPatch = Partial<Omit<RegistrationEntry, 'id' | 'revision' | 'createdAt'>>;

/**
 * How a selector filter matches an entry's selectors S against the filter set F:
 * exact: S = F; subset: S ⊆ F (what a workload with selectors F may receive);
 * superset: S ⊇ F (SPIRE's default for `entry show -selector`); any: S ∩ F ≠ ∅.
 */
export type SelectorMatch = 'exact' | 'subset' | 'superset' | 'any';

export interface EntryFilter {
  ids?: string[];
  spiffeId?: string;
  parentId?: string;
  selectors?: { set: Selector[]; match: SelectorMatch };
  federatesWith?: { trustDomains: string[]; match: SelectorMatch };
  hint?: string;
  downstream?: boolean;
  /** Only entries with expiresAt <= this (Unix seconds); for pruning. */
  expiresBefore?: number;
}

export interface Page {
  /** 1..10000; default 1000. */
  pageSize?: number;
  /** Opaque token from a previous ListEntriesResult; absent for the first page. */
  pageToken?: string;
}

export interface ListEntriesResult {
  entries: RegistrationEntry[];
  /** Present when more entries follow. */
  nextPageToken?: string;
}

export interface EntryChanges {
  /** Entries created or updated with revision > since, in revision order. */
  changed: RegistrationEntry[];
  /** Ids of entries deleted with revision > since. */
  deleted: string[];
  /** The store's current change counter; pass it as `since` next time. */
  revision: number;
  /**
   * False when deletes after `since` may be missing because older change records were pruned
   * (pruneEntryChanges): the caller must then read the whole set instead.
   */
  complete: boolean;
}

export interface BundleRecord {
  /** Trust domain name, for example "example.org". */
  trustDomain: string;
  /** The SPIFFE bundle JSON document as served (JWKS with spiffe_* members). */
  document: string;
  /** Bumped by the store on every change. */
  sequence: number;
  /** Seconds. */
  refreshHint: number;
  updatedAt: number;
}

export type CaKind = 'x509-root' | 'x509-signing' | 'jwt';
export type CaSlotName = 'A' | 'B';
export type CaSlotStatus = 'prepared' | 'active' | 'old';

export interface CaSlotRecord {
  kind: CaKind;
  slot: CaSlotName;
  status: CaSlotStatus;
  /** Key id in the key manager. */
  keyId: string;
  /** DER certificate (x509 kinds) or SPKI DER public key (jwt). */
  material: Buffer;
  /** Hex SKI for X.509 CAs, JWT kid for JWT keys. */
  authorityId: string;
  notBefore: number;
  notAfter: number;
  tainted: boolean;
  updatedAt: number;
}

export interface JoinTokenRecord {
  /** SHA-256 of the token, hex. The token itself is never stored. */
  tokenHash: string;
  expiresAt: number;
  /** Optional SPIFFE ID of a node alias the token's agent also gets. */
  spiffeId: string | null;
  createdAt: number;
  usedAt: number | null;
}

export interface AttestedAgent {
  spiffeId: string;
  attestationType: string;
  serial: string;
  expiresAt: number;
  selectors: Selector[];
  banned: boolean;
  canReattest: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface RevokedSerial {
  /** Lower-case hex, no leading zeros stripped beyond DER encoding. */
  serial: string;
  /** Hex SKI of the CA that issued the certificate. */
  issuerSki: string;
  revokedAt: number;
  /** The certificate's notAfter; the row may be pruned after it. */
  notAfter: number;
  reason: string;
}

/** An X509-SVID the CA signed, kept until it expires so ending a task can revoke its serials. */
export interface IssuedSvid {
  /** Lower-case hex of the DER INTEGER content. */
  serial: string;
  issuerSki: string;
  spiffeId: string;
  /** The registration entry it was signed for; null for a direct mint. */
  entryId: string | null;
  /** The agent that asked for it; null for a direct mint. */
  agentId: string | null;
  issuedAt: number;
  notAfter: number;
}

export interface IssuedSvidFilter {
  entryId?: string;
  spiffeId?: string;
  /** Only SVIDs with notAfter > this (Unix seconds). */
  notExpiredAt?: number;
}

/** How a bundle endpoint authenticates itself (SPIFFE Federation §5.2). */
export type FederationProfile = 'https_web' | 'https_spiffe';

/** The outcome of the last bundle fetch of a federation relationship. */
export interface FederationRefreshStatus {
  /** Unix seconds of the attempt. */
  at: number;
  ok: boolean;
  /** The error code of a refused fetch; null when ok. */
  code: string | null;
  /** One sentence: what was stored, or why the fetch was refused. */
  message: string;
  /** spiffe_sequence of the bundle held for the trust domain after the attempt; null when none or unset. */
  sequence: number | null;
}

/** A federation relationship: where the bundle of a foreign trust domain is fetched from. */
export interface FederationRelationship {
  /** The foreign trust domain (never the server's own); the primary key. */
  trustDomain: string;
  /** https URL without userinfo. */
  bundleEndpointUrl: string;
  profile: FederationProfile;
  /** The SPIFFE ID the endpoint must present (https_spiffe); null for https_web. */
  endpointSpiffeId: string | null;
  createdAt: number;
  updatedAt: number;
  /** null until the first fetch. */
  lastRefresh: FederationRefreshStatus | null;
}

export type NewFederationRelationship = Omit<FederationRelationship, 'createdAt' | 'updatedAt' | 'lastRefresh'>;
/** Fields to change; absent fields are kept. */
export type FederationRelationshipPatch = Partial<Omit<NewFederationRelationship, 'trustDomain'>>;

/** An AI agent registered by an SRE: spiffe://<td>/agent/<name>, backed by a registration entry while enabled. */
export interface AgentIdentity {
  /** Lower-case letters, digits, '-' and '_'; at most 64. The primary key. */
  name: string;
  spiffeId: string;
  /** The agent or node alias that serves the agent's entry and its tasks' entries. */
  parentId: string;
  /** Which processes may act as the agent; every task entry carries them too. */
  selectors: Selector[];
  owner: string;
  /** Seconds; a task may not run longer. */
  maxTaskTtl: number;
  /** Who may delegate tasks to it: "any", "user:<id>", "group:<os group>". */
  delegators: string[];
  /** The backing registration entry; null while disabled. */
  entryId: string | null;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export type AgentIdentityPatch = Partial<Pick<AgentIdentity, 'entryId' | 'disabled' | 'updatedAt'>>;

export type TaskStatus = 'active' | 'ended';

/** A task: work delegated to an agent, spiffe://<td>/agent/<agent>/task/<id>; kept as a record after it ends. */
export interface TaskRecord {
  /** Unique over every task ever stored (ended ones included). */
  id: string;
  agentName: string;
  spiffeId: string;
  /** The task's registration entry (deleted when the task ends; the id is kept). */
  entryId: string;
  parentId: string;
  selectors: Selector[];
  /** The process the task is pinned to, when it is. */
  pid: number | null;
  startTime: string | null;
  /** The delegation record as canonical JSON. */
  delegation: string;
  decisionId: string;
  deadline: number;
  createdAt: number;
  status: TaskStatus;
  endedAt: number | null;
  endReason: string | null;
  /** Set when the entry is gone and the task's serials are on the CRL. */
  cleanedAt: number | null;
}

export interface TaskFilter {
  agentName?: string;
  status?: TaskStatus;
  /** Only active tasks whose deadline is <= this. */
  dueAt?: number;
  /** Only ended tasks whose cleanup has not completed. */
  uncleaned?: boolean;
  /** At most this many, newest first (default 1000, at most 10000). */
  limit?: number;
}

export interface DataStore {
  // registration entries
  /** All or nothing: a duplicate (same spiffeId, parentId and selector set) or an existing id fails the whole batch with ERR_ENTRY_EXISTS naming the index in the batch. */
  createEntries(entries: NewEntry[]): Promise<RegistrationEntry[]>;
  /** All or nothing; unknown id → ERR_ENTRY_NOT_FOUND; an update that makes a duplicate → ERR_ENTRY_EXISTS. */
  updateEntries(updates: Array<{ id: string; patch: EntryPatch }>): Promise<RegistrationEntry[]>;
  /** All or nothing; unknown id → ERR_ENTRY_NOT_FOUND. Returns the deleted entries. */
  deleteEntries(ids: string[]): Promise<RegistrationEntry[]>;
  getEntry(id: string): Promise<RegistrationEntry | undefined>;
  listEntries(filter?: EntryFilter, page?: Page): Promise<ListEntriesResult>;
  countEntries(filter?: EntryFilter): Promise<number>;
  /** Incremental sync: what changed since a store revision. */
  entryChangesSince(since: number): Promise<EntryChanges>;
  /** Deletes entries with expiresAt <= now; returns their ids. */
  pruneExpiredEntries(now: number): Promise<string[]>;
  /**
   * Keeps the newest `keepDeletes` delete records of the change feed and drops the older ones (and
   * every create/update record: entries carry their own revision). entryChangesSince(since) for a
   * since before the newest dropped delete then answers complete: false. Returns the records dropped.
   */
  pruneEntryChanges(keepDeletes: number): Promise<number>;

  // bundles
  getBundle(trustDomain: string): Promise<BundleRecord | undefined>;
  listBundles(): Promise<BundleRecord[]>;
  /** Creates or replaces; the store sets sequence = previous + 1 (1 for a new one) and returns the record. */
  setBundle(trustDomain: string, document: string, refreshHint: number, now: number): Promise<BundleRecord>;
  deleteBundle(trustDomain: string): Promise<boolean>;

  // federation relationships
  /** ERR_FEDERATION_EXISTS when the trust domain already has one. */
  createFederation(rel: NewFederationRelationship, now: number): Promise<FederationRelationship>;
  /** ERR_FEDERATION_NOT_FOUND when there is none; the result must still pair https_spiffe with an endpoint ID. */
  updateFederation(trustDomain: string, patch: FederationRelationshipPatch, now: number): Promise<FederationRelationship>;
  getFederation(trustDomain: string): Promise<FederationRelationship | undefined>;
  /** Ordered by trust domain. */
  listFederations(): Promise<FederationRelationship[]>;
  /** Returns whether one was deleted; the trust domain's bundle is kept. */
  deleteFederation(trustDomain: string): Promise<boolean>;
  /** Records the outcome of a fetch; returns false (and stores nothing) when the relationship is gone. Leaves updatedAt alone. */
  setFederationStatus(trustDomain: string, status: FederationRefreshStatus): Promise<boolean>;

  // CA slots
  listCaSlots(kind?: CaKind): Promise<CaSlotRecord[]>;
  putCaSlot(slot: CaSlotRecord): Promise<void>;
  deleteCaSlot(kind: CaKind, slot: CaSlotName): Promise<void>;

  // join tokens
  createJoinToken(token: JoinTokenRecord): Promise<void>;
  /** Marks the token used and returns it; ERR_TOKEN_INVALID unknown, ERR_TOKEN_USED reused, ERR_TOKEN_EXPIRED past expiry. Single use even under concurrency. */
  consumeJoinToken(tokenHash: string, now: number): Promise<JoinTokenRecord>;
  pruneJoinTokens(now: number): Promise<number>;

  // attested agents
  upsertAgent(agent: AttestedAgent): Promise<void>;
  getAgent(spiffeId: string): Promise<AttestedAgent | undefined>;
  listAgents(filter?: { banned?: boolean; attestationType?: string }): Promise<AttestedAgent[]>;
  deleteAgent(spiffeId: string): Promise<boolean>;

  // revocations (CRL input)
  addRevoked(serials: RevokedSerial[]): Promise<void>;
  listRevoked(): Promise<RevokedSerial[]>;
  pruneRevoked(now: number): Promise<number>;

  // issued X509-SVIDs
  /** Records signed SVIDs in one transaction; a duplicate (serial, issuerSki) is ignored. */
  recordIssued(svids: IssuedSvid[]): Promise<void>;
  /** Issued SVIDs matching every given filter field, ordered by issuedAt then serial. */
  listIssued(filter: IssuedSvidFilter): Promise<IssuedSvid[]>;
  /** Deletes records with notAfter < now; returns how many. */
  pruneIssued(now: number): Promise<number>;

  // agent identities and tasks
  /** ERR_AGENT_IDENTITY_EXISTS when the name is taken. */
  createAgentIdentity(agent: AgentIdentity): Promise<AgentIdentity>;
  getAgentIdentity(name: string): Promise<AgentIdentity | undefined>;
  /** Ordered by name. */
  listAgentIdentities(): Promise<AgentIdentity[]>;
  /** ERR_AGENT_IDENTITY_NOT_FOUND when there is none. */
  updateAgentIdentity(name: string, patch: AgentIdentityPatch): Promise<AgentIdentity>;
  /** Returns whether one was deleted; its tasks stay as records. */
  deleteAgentIdentity(name: string): Promise<boolean>;
  /** ERR_TASK_EXISTS when the id was ever used, even by an ended task. */
  createTask(task: TaskRecord): Promise<TaskRecord>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  /** Newest first. */
  listTasks(filter?: TaskFilter): Promise<TaskRecord[]>;
  /** Ends an active task and returns it; undefined when it is unknown or already ended (exactly one caller wins). */
  endTask(id: string, endedAt: number, reason: string): Promise<TaskRecord | undefined>;
  /** Marks an ended task's cleanup (entry deleted, serials revoked) done. */
  markTaskCleaned(id: string, at: number): Promise<void>;

  /** Liveness of the backend, for /ready. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
