/**
 * The agent's state on disk: its own SVID and key, the bundles, CRLs, entries and workload SVIDs
 * with their keys, in one JSON file (mode 0600, in a 0700 directory, written atomically), so that
 * after a restart, or while the server is unreachable, workloads are served until their SVIDs
 * expire. A file that cannot be read is set aside (renamed) and the agent starts fresh.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../ca/diskkeys.js';
import { entryToJson, type EntryJson } from '../registry/index.js';
import type { Logger } from '../log.js';
import { type AgentCache, type CachedSvid, entryFromJson } from './cache.js';

export const STATE_VERSION = 1;

export interface AgentIdentity {
  spiffeId: string;
  chain: Buffer[];
  key: Buffer;
  notBefore: number;
  notAfter: number;
}

interface SvidJson {
  entry_id: string;
  spiffe_id: string;
  chain: string[];
  key: string;
  serial: string;
  not_before: number;
  not_after: number;
  rotate_at: number;
  revision: number;
}

interface StateJson {
  version: number;
  agent?: { spiffe_id: string; chain: string[]; key: string; not_before: number; not_after: number };
  bundle?: string;
  federated: Record<string, string>;
  crls: string[];
  revision: number;
  alias_key: string;
  entries: Array<Required<EntryJson>>;
  svids: SvidJson[];
}

const b64 = (b: Buffer) => b.toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64');

export class StateFile {
  readonly path: string;

  constructor(
    dataDir: string,
    private readonly logger: Logger,
  ) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.path = join(dataDir, 'agent-state.json');
  }

  save(agent: AgentIdentity | undefined, cache: AgentCache): void {
    const doc: StateJson = {
      version: STATE_VERSION,
      ...(agent ? { agent: { spiffe_id: agent.spiffeId, chain: agent.chain.map(b64), key: b64(agent.key), not_before: agent.notBefore, not_after: agent.notAfter } } : {}),
      ...(cache.bundle ? { bundle: cache.bundle.marshal() } : {}),
      federated: Object.fromEntries([...cache.federated].map(([td, b]) => [td, b.marshal()])),
      crls: cache.crls.map(b64),
      revision: cache.revision,
      alias_key: cache.aliasKey,
      entries: [...cache.entries.values()].map(entryToJson),
      svids: [...cache.svids.values()].map((s) => ({
        entry_id: s.entryId,
        spiffe_id: s.spiffeId,
        chain: s.chain.map(b64),
        key: b64(s.key),
        serial: s.serial,
        not_before: s.notBefore,
        not_after: s.notAfter,
        rotate_at: s.rotateAt,
        revision: s.revision,
      })),
    };
    writeFileAtomic(this.path, JSON.stringify(doc), 0o600, dirname(this.path));
  }

  /** Loads into `cache` and returns the agent identity, or undefined when there is no usable state. */
  load(cache: AgentCache, nowMs: number): AgentIdentity | undefined {
    if (!existsSync(this.path)) return undefined;
    try {
      if ((statSync(this.path).mode & 0o077) !== 0) throw new Error('the state file can be read by other users');
      const doc = JSON.parse(readFileSync(this.path, 'utf8')) as StateJson;
      if (doc.version !== STATE_VERSION) throw new Error(`unknown state version ${String(doc.version)}`);
      if (doc.bundle) cache.setBundle(doc.bundle);
      for (const [td, d] of Object.entries(doc.federated ?? {})) cache.setFederated(td, d);
      cache.setCrls((doc.crls ?? []).map(unb64));
      for (const e of doc.entries ?? []) cache.putEntry(entryFromJson(e));
      for (const s of doc.svids ?? []) {
        if (s.not_after <= nowMs || !cache.entries.has(s.entry_id)) continue;
        const svid: CachedSvid = {
          entryId: s.entry_id,
          spiffeId: s.spiffe_id,
          chain: s.chain.map(unb64),
          key: unb64(s.key),
          serial: s.serial,
          notBefore: s.not_before,
          notAfter: s.not_after,
          rotateAt: s.rotate_at,
          revision: s.revision,
        };
        cache.svids.set(s.entry_id, svid);
      }
      cache.revision = doc.revision ?? 0;
      cache.aliasKey = doc.alias_key ?? '';
      const a = doc.agent;
      if (!a || a.not_after <= nowMs) return undefined;
      return { spiffeId: a.spiffe_id, chain: a.chain.map(unb64), key: unb64(a.key), notBefore: a.not_before, notAfter: a.not_after };
    } catch (e) {
      const aside = `${this.path}.unreadable-${nowMs}`;
      try {
        renameSync(this.path, aside);
      } catch {
        // leave it
      }
      this.logger.warn({ path: this.path, moved_to: aside, reason: e instanceof Error ? e.message : String(e) }, 'agent state could not be read; starting fresh');
      for (const id of [...cache.entries.keys()]) cache.removeEntry(id);
      cache.revision = 0;
      cache.aliasKey = '';
      return undefined;
    }
  }
}
