/**
 * Keeping the cache current: one incremental sync with the server (entries changed since the
 * cache's revision, removed ids, bundles, CRLs), and signing of the SVIDs that are due: missing,
 * signed for an older revision of their entry, past their rotation time (half life ±10 %), or
 * issued under an authority the server has tainted (forced rotation: re-signed at once).
 * Workload keys are generated here; the server sees only CSRs, sent in batches.
 */
import { buildCsrDer, newWorkloadKey } from '../ca/index.js';
import type { RandomSource } from '../clock.js';
import type { EntryJson } from '../registry/index.js';
import type { Logger } from '../log.js';
import { type AgentCache, type CachedSvid, entryFromJson } from './cache.js';
import { leafValidity } from './identity.js';
import type { NodeClient } from './nodeclient.js';

export const SIGN_BATCH = 500;

interface SyncAnswer {
  revision: number;
  full: boolean;
  alias_key: string;
  entries: Array<Required<EntryJson>>;
  removed: string[];
  bundle: { document: string };
  federated_bundles: Array<{ trust_domain: string; document: string }>;
  crls: string[];
  /** Absent from servers without forced rotation. */
  tainted_x509_authorities?: string[];
  tainted_jwt_kids?: string[];
  /** Sent to agents that serve agent identities or tasks: sync again within this many ms. */
  next_sync_ms?: number;
}

/** One sync; returns whether anything a workload sees changed. `hint` receives the server's next-sync hint (ms), if any. */
export async function syncOnce(cache: AgentCache, client: NodeClient, hint?: { nextSyncMs?: number }): Promise<boolean> {
  const federatesWith = [...new Set([...cache.entries.values()].flatMap((e) => e.federatesWith))];
  const a = await client.post<SyncAnswer>('/v1/node/sync', { since: cache.revision, alias_key: cache.aliasKey, federates_with: federatesWith });
  let changed = false;
  if (a.full) {
    const keep = new Set(a.entries.map((e) => e.id));
    for (const id of [...cache.entries.keys()]) if (!keep.has(id)) changed = cache.removeEntry(id) || changed;
  }
  for (const j of a.entries) {
    const e = entryFromJson(j);
    const old = cache.entries.get(e.id);
    if (!old || old.revision !== e.revision) {
      cache.putEntry(e);
      changed = true;
    }
  }
  for (const id of a.removed) changed = cache.removeEntry(id) || changed;
  cache.revision = a.revision;
  cache.aliasKey = a.alias_key;
  changed = cache.setBundle(a.bundle.document) || changed;
  const wanted = new Set([...cache.entries.values()].flatMap((e) => e.federatesWith));
  for (const f of a.federated_bundles) if (wanted.has(f.trust_domain)) changed = cache.setFederated(f.trust_domain, f.document) || changed;
  // The server answers with the bundle of every trust domain named (up to its cap of 256): one it
  // left out is a bundle deleted there, and must stop being trusted here too.
  const sent = new Set(a.federated_bundles.map((f) => f.trust_domain));
  const complete = federatesWith.length <= 256;
  for (const td of [...cache.federated.keys()]) {
    if (!wanted.has(td) || (complete && !sent.has(td))) {
      cache.federated.delete(td);
      changed = true;
    }
  }
  changed = cache.setCrls(a.crls.map((c) => Buffer.from(c, 'base64'))) || changed;
  changed = cache.setTainted(a.tainted_x509_authorities ?? [], a.tainted_jwt_kids ?? []) || changed;
  if (hint) hint.nextSyncMs = typeof a.next_sync_ms === 'number' && a.next_sync_ms >= 100 ? a.next_sync_ms : undefined;
  return changed;
}

/** The entries whose SVID must be (re)signed at `now` (ms); one issued under a tainted authority at once. */
export function dueEntries(cache: AgentCache, now: number): string[] {
  const out: string[] = [];
  for (const e of cache.entries.values()) {
    const s = cache.svids.get(e.id);
    if (!s || s.revision !== e.revision || now >= s.rotateAt || now >= s.notAfter || cache.chainTainted(s.chain)) out.push(e.id);
  }
  return out;
}

/** Rotation time: half the SVID's life ±10 % (SPIRE's rotationutil). */
export function rotationTime(notBefore: number, notAfter: number, random: RandomSource): number {
  const r = random.bytes(2).readUInt16BE(0) / 0xffff;
  return notBefore + Math.floor((notAfter - notBefore) * (0.45 + 0.1 * r));
}

interface SvidAnswer {
  results: Array<{ entry_id: string; svid?: string[]; serial?: string; revision?: number; error?: { code: string; message: string } }>;
}

/** Signs every due SVID in batches; returns how many were replaced. Failures leave the old SVID in place. */
export async function signDue(cache: AgentCache, client: NodeClient, now: number, random: RandomSource, logger: Logger): Promise<number> {
  const due = dueEntries(cache, now);
  let replaced = 0;
  for (let i = 0; i < due.length; i += SIGN_BATCH) {
    const batch = due.slice(i, i + SIGN_BATCH);
    const keys = new Map(batch.map((id) => [id, newWorkloadKey()]));
    const requests = batch.map((id) => {
      const k = keys.get(id)!;
      return { entry_id: id, csr: buildCsrDer(k.spki, k.privateKey).toString('base64') };
    });
    const answer = await client.post<SvidAnswer>('/v1/node/svids', { requests });
    for (const r of answer.results) {
      const entry = cache.entries.get(r.entry_id);
      const key = keys.get(r.entry_id);
      if (!entry || !key) continue;
      if (r.error || !r.svid?.length) {
        logger.warn({ entry_id: r.entry_id, code: r.error?.code, reason: r.error?.message }, 'the server did not sign an SVID');
        continue;
      }
      const chain = r.svid.map((s) => Buffer.from(s, 'base64'));
      const v = leafValidity(chain);
      const svid: CachedSvid = {
        entryId: entry.id,
        spiffeId: entry.spiffeId,
        chain,
        key: key.pkcs8,
        serial: r.serial ?? '',
        notBefore: v.notBefore,
        notAfter: v.notAfter,
        rotateAt: rotationTime(v.notBefore, v.notAfter, random),
        revision: r.revision ?? entry.revision,
      };
      cache.svids.set(entry.id, svid);
      replaced++;
    }
  }
  return replaced;
}
