/**
 * Incremental entry sync for agents. The agent sends the store revision it has and the alias key
 * it was last given; when both still hold, the server answers with only the entries changed since
 * (and the ids of those deleted or moved out of the agent's scope), otherwise (also when the
 * delete records it would need were pruned) with the full set.
 * Every answer also carries the trust bundle, the bundles of trust domains its entries federate
 * with (those of the entries sent, plus those the agent names for the entries it already has),
 * the current CRLs, and the tainted authorities (forced CA rotation), which agents without that
 * feature simply ignore. Agents are told to sync again soon (next_sync_ms) when they serve agent
 * identities, and all of them while tasks run (src/server/tasks/issuance.ts), so the end of a task
 * reaches its workloads, and its CRL every host, within about a second.
 */
import { entryToJson, type EntryJson } from '../../registry/index.js';
import type { ServerContext } from '../context.js';
import { authorizedEntries, type AgentScope } from './agents.js';

export interface SyncRequest {
  since: number;
  aliasKey: string;
  /** Trust domains the agent's entries federate with (foreign bundles are public; at most 256). */
  federatesWith: string[];
}

export const MAX_FEDERATED = 256;

export interface SyncResponse {
  revision: number;
  full: boolean;
  alias_key: string;
  entries: Array<Required<EntryJson>>;
  removed: string[];
  bundle: { trust_domain: string; sequence: number; document: string };
  federated_bundles: Array<{ trust_domain: string; sequence: number; document: string }>;
  crls: string[];
  /** Hex SKIs of tainted roots and of the signing CAs they issued: agents re-sign SVIDs whose chain runs through one. */
  tainted_x509_authorities: string[];
  /** kids of tainted JWT keys: agents drop JWT-SVIDs they signed. */
  tainted_jwt_kids: string[];
  /** Present while the agent should sync again soon (it serves agent identities, or tasks run): within this many ms. */
  next_sync_ms?: number;
}

export async function syncEntries(ctx: ServerContext, scope: AgentScope, req: SyncRequest): Promise<SyncResponse> {
  let revision: number;
  let full: boolean;
  let entries: Awaited<ReturnType<typeof authorizedEntries>>;
  const removed: string[] = [];
  // Changes since the agent's revision, unless its alias set changed or the deletes it missed were pruned.
  const changes = req.since > 0 && req.aliasKey === scope.aliasKey ? await ctx.datastore.entryChangesSince(req.since) : undefined;
  if (changes?.complete) {
    revision = changes.revision;
    full = false;
    entries = changes.changed.filter((e) => scope.parents.has(e.parentId));
    removed.push(...changes.deleted, ...changes.changed.filter((e) => !scope.parents.has(e.parentId)).map((e) => e.id));
  } else {
    // Read the revision first: changes racing with the listing are sent again next time.
    revision = (await ctx.datastore.entryChangesSince(Number.MAX_SAFE_INTEGER)).revision;
    full = true;
    entries = await authorizedEntries(ctx, scope);
  }
  const federated = new Set<string>(full ? [] : req.federatesWith.slice(0, MAX_FEDERATED));
  for (const e of entries) for (const td of e.federatesWith) federated.add(td);
  const federatedBundles: SyncResponse['federated_bundles'] = [];
  for (const td of [...federated].sort()) {
    const b = await ctx.datastore.getBundle(td);
    if (b) federatedBundles.push({ trust_domain: td, sequence: b.sequence, document: b.document });
  }
  const own = await ctx.ownBundle();
  return {
    revision,
    full,
    alias_key: scope.aliasKey,
    entries: entries.map(entryToJson),
    removed,
    bundle: { trust_domain: ctx.config.trustDomain, sequence: own.sequence, document: own.document },
    federated_bundles: federatedBundles,
    crls: (await ctx.crls()).map((d) => d.toString('base64')),
    tainted_x509_authorities: ctx.authority.taintedX509Authorities(),
    tainted_jwt_kids: ctx.authority.taintedJwtKids(),
    ...syncHint(ctx, scope),
  };
}

function syncHint(ctx: ServerContext, scope: AgentScope): { next_sync_ms?: number } {
  const ms = ctx.tasks?.issuance.syncHintMs(scope.parents);
  return ms === undefined ? {} : { next_sync_ms: ms };
}
