/**
 * The SQLite schema, as an ordered list of migrations versioned with `PRAGMA user_version`.
 * Each migration runs in its own immediate transaction at open; a database stamped with a version
 * newer than the last one here is refused, so an old writ never writes a newer schema.
 * Never edit a released migration: append a new one.
 */
import type Database from 'better-sqlite3';
import { WritError } from '../errors.js';
import type { Logger } from '../log.js';

interface Migration {
  version: number;
  description: string;
  sql: string;
}

const V1 = `
CREATE TABLE store_counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_counters (name, value) VALUES ('entry_revision', 0);

CREATE TABLE entries (
  id              TEXT PRIMARY KEY,
  spiffe_id       TEXT NOT NULL,
  parent_id       TEXT NOT NULL,
  selectors       TEXT NOT NULL,            -- JSON display copy; matching uses entry_selectors
  selectors_key   TEXT NOT NULL,            -- SHA-256 of the canonical selector set
  selector_count  INTEGER NOT NULL CHECK (selector_count > 0),
  key_type        TEXT NOT NULL,            -- the entry's rarest selector when written: subset
  key_value       TEXT NOT NULL,            -- lookups start from entries keyed by a member of F
  x509_svid_ttl   INTEGER NOT NULL,
  jwt_svid_ttl    INTEGER NOT NULL,
  dns_names       TEXT NOT NULL,            -- JSON array
  hint            TEXT NOT NULL,
  admin           INTEGER NOT NULL,
  downstream      INTEGER NOT NULL,
  federates_with  TEXT NOT NULL,            -- JSON display copy; matching uses entry_federates_with
  federates_count INTEGER NOT NULL,
  expires_at      INTEGER,
  revision        INTEGER NOT NULL,
  created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX entries_similar ON entries (selectors_key, spiffe_id, parent_id);
CREATE INDEX entries_key_selector ON entries (key_type, key_value);
CREATE INDEX entries_spiffe_id ON entries (spiffe_id, id);
CREATE INDEX entries_parent_id ON entries (parent_id, id);
CREATE INDEX entries_expires_at ON entries (expires_at, id);
CREATE UNIQUE INDEX entries_revision ON entries (revision);
CREATE INDEX entries_hint ON entries (hint, id);

CREATE TABLE entry_selectors (
  entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
  type     TEXT NOT NULL,
  value    TEXT NOT NULL,
  PRIMARY KEY (entry_id, type, value)
) WITHOUT ROWID;
CREATE INDEX entry_selectors_by_selector ON entry_selectors (type, value, entry_id);

-- How many entries carry each selector; picks each entry's key selector and a superset pivot.
CREATE TABLE selector_stats (
  type    TEXT NOT NULL,
  value   TEXT NOT NULL,
  entries INTEGER NOT NULL,
  PRIMARY KEY (type, value)
) WITHOUT ROWID;

CREATE TABLE entry_federates_with (
  entry_id     TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
  trust_domain TEXT NOT NULL,
  PRIMARY KEY (entry_id, trust_domain)
) WITHOUT ROWID;
CREATE INDEX entry_federates_with_by_td ON entry_federates_with (trust_domain, entry_id);

CREATE TABLE entry_changes (
  revision INTEGER PRIMARY KEY,
  entry_id TEXT NOT NULL,
  op       TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete'))
);

CREATE TABLE bundles (
  trust_domain TEXT PRIMARY KEY,
  document     TEXT NOT NULL,
  sequence     INTEGER NOT NULL,
  refresh_hint INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ca_slots (
  kind         TEXT NOT NULL CHECK (kind IN ('x509-root', 'x509-signing', 'jwt')),
  slot         TEXT NOT NULL CHECK (slot IN ('A', 'B')),
  status       TEXT NOT NULL CHECK (status IN ('prepared', 'active', 'old')),
  key_id       TEXT NOT NULL,
  material     BLOB NOT NULL,
  authority_id TEXT NOT NULL,
  not_before   INTEGER NOT NULL,
  not_after    INTEGER NOT NULL,
  tainted      INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (kind, slot)
);

CREATE TABLE join_tokens (
  token_hash TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL,
  spiffe_id  TEXT,
  created_at INTEGER NOT NULL,
  used_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

CREATE TABLE agents (
  spiffe_id        TEXT PRIMARY KEY,
  attestation_type TEXT NOT NULL,
  serial           TEXT NOT NULL,
  expires_at       INTEGER NOT NULL,
  selectors        TEXT NOT NULL,           -- JSON display copy
  banned           INTEGER NOT NULL,
  can_reattest     INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE INDEX agents_attestation_type ON agents (attestation_type);

CREATE TABLE agent_selectors (
  agent_id TEXT NOT NULL REFERENCES agents (spiffe_id) ON DELETE CASCADE,
  type     TEXT NOT NULL,
  value    TEXT NOT NULL,
  PRIMARY KEY (agent_id, type, value)
) WITHOUT ROWID;
CREATE INDEX agent_selectors_by_selector ON agent_selectors (type, value, agent_id);

CREATE TABLE revoked_serials (
  serial     TEXT NOT NULL,
  issuer_ski TEXT NOT NULL,
  revoked_at INTEGER NOT NULL,
  not_after  INTEGER NOT NULL,
  reason     TEXT NOT NULL,
  PRIMARY KEY (serial, issuer_ski)
) WITHOUT ROWID;
CREATE INDEX revoked_serials_not_after ON revoked_serials (not_after);
`;

const V2 = `
CREATE TABLE issued_svids (
  serial     TEXT NOT NULL,
  issuer_ski TEXT NOT NULL,
  spiffe_id  TEXT NOT NULL,
  entry_id   TEXT,
  agent_id   TEXT,
  issued_at  INTEGER NOT NULL,
  not_after  INTEGER NOT NULL,
  PRIMARY KEY (serial, issuer_ski)
) WITHOUT ROWID;
CREATE INDEX issued_svids_entry ON issued_svids (entry_id, not_after);
CREATE INDEX issued_svids_spiffe_id ON issued_svids (spiffe_id, not_after);
CREATE INDEX issued_svids_not_after ON issued_svids (not_after);
`;

// Where the bundles of foreign trust domains are fetched from, and how the last fetch went.
const V3 = `
CREATE TABLE federation_relationships (
  trust_domain        TEXT PRIMARY KEY,
  bundle_endpoint_url TEXT NOT NULL,
  profile             TEXT NOT NULL CHECK (profile IN ('https_web', 'https_spiffe')),
  endpoint_spiffe_id  TEXT,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  refreshed_at        INTEGER,
  refresh_ok          INTEGER,
  refresh_code        TEXT,
  refresh_message     TEXT,
  refresh_sequence    INTEGER,
  CHECK ((profile = 'https_spiffe') = (endpoint_spiffe_id IS NOT NULL))
) WITHOUT ROWID;
`;

// AI agents registered as identities, and the tasks delegated to them (kept after they end, so
// a task id is never used twice).
const V4 = `
CREATE TABLE agent_identities (
  name         TEXT PRIMARY KEY,
  spiffe_id    TEXT NOT NULL UNIQUE,
  parent_id    TEXT NOT NULL,
  selectors    TEXT NOT NULL,             -- JSON [[type, value], ...], canonical order
  owner        TEXT NOT NULL,
  max_task_ttl INTEGER NOT NULL CHECK (max_task_ttl > 0),
  delegators   TEXT NOT NULL,             -- JSON array of strings
  entry_id     TEXT,
  disabled     INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tasks (
  id          TEXT PRIMARY KEY,
  agent_name  TEXT NOT NULL,
  spiffe_id   TEXT NOT NULL,
  entry_id    TEXT NOT NULL,
  parent_id   TEXT NOT NULL,
  selectors   TEXT NOT NULL,
  pid         INTEGER,
  start_time  TEXT,
  delegation  TEXT NOT NULL,              -- canonical JSON of the delegation record
  decision_id TEXT NOT NULL,
  deadline    INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('active', 'ended')),
  ended_at    INTEGER,
  end_reason  TEXT,
  cleaned_at  INTEGER,
  CHECK ((status = 'ended') = (ended_at IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX tasks_agent ON tasks (agent_name, created_at);
CREATE INDEX tasks_created ON tasks (created_at);
CREATE INDEX tasks_due ON tasks (deadline) WHERE status = 'active';
CREATE INDEX tasks_uncleaned ON tasks (ended_at) WHERE status = 'ended' AND cleaned_at IS NULL;
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'initial schema', sql: V1 },
  { version: 2, description: 'issued X509-SVIDs', sql: V2 },
  { version: 3, description: 'federation relationships', sql: V3 },
  { version: 4, description: 'agent identities and tasks', sql: V4 },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0);

function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the database up to SCHEMA_VERSION. Each step re-reads the version inside its immediate
 * transaction, so two processes opening the same new file do not both apply a step.
 */
export function migrate(db: Database.Database, where: string, logger: Logger): { from: number; to: number } {
  const from = userVersion(db);
  if (from > SCHEMA_VERSION) {
    throw new WritError(
      'ERR_DATASTORE',
      `The datastore at ${where} has schema version ${from}, newer than the version ${SCHEMA_VERSION} this writ knows; upgrade writ to open it.`,
      { details: { schemaVersion: from, supported: SCHEMA_VERSION } },
    );
  }
  for (const m of MIGRATIONS) {
    const step = db.transaction(() => {
      const current = userVersion(db);
      if (current >= m.version) return false;
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
      return true;
    });
    if (step.immediate()) logger.info({ schemaVersion: m.version }, `datastore migrated: ${m.description}`);
  }
  return { from, to: userVersion(db) };
}
