/**
 * Signing for agents: workload X509-SVIDs in batches (CSR checked, entry authorized for the
 * agent, SVID signed with the entry's TTL and DNS names, and recorded for revocation), JWT-SVIDs for
 * authorized entries, and the agent's own SVID. Per-item failures come back as per-item errors.
 * Entries of tasks are signed only while the task runs, capped at its deadline, with its
 * delegation record (src/server/tasks/issuance.ts).
 */
import { WritError, toWritError } from '../../errors.js';
import type { IssuedSvid, RegistrationEntry } from '../../datastore/index.js';
import type { ServerContext } from '../context.js';
import type { AgentScope } from './agents.js';

export const MAX_SVID_BATCH = 1000;

export interface SvidRequest {
  entryId: string;
  /** DER PKCS#10. */
  csr: Buffer;
}

export type SvidResult =
  | { entryId: string; chain: Buffer[]; serial: string; notAfter: Date; revision: number }
  | { entryId: string; error: { code: string; message: string } };

async function authorizedEntry(ctx: ServerContext, scope: AgentScope, entryId: string, cache: Map<string, RegistrationEntry | undefined>): Promise<RegistrationEntry> {
  let e = cache.get(entryId);
  if (!cache.has(entryId)) {
    e = await ctx.datastore.getEntry(entryId);
    cache.set(entryId, e);
  }
  if (!e || !scope.parents.has(e.parentId)) {
    // The same answer for "no such entry" and "not yours", so agents cannot probe other agents' entries.
    throw new WritError('ERR_NODE_NOT_AUTHORIZED', `Entry ${entryId} is not one this agent may serve.`);
  }
  return e;
}

export async function issueX509Svids(ctx: ServerContext, scope: AgentScope, requests: readonly SvidRequest[]): Promise<SvidResult[]> {
  if (requests.length > MAX_SVID_BATCH) throw new WritError('ERR_INPUT_INVALID', `A batch holds at most ${MAX_SVID_BATCH} CSRs; got ${requests.length}.`);
  const cache = new Map<string, RegistrationEntry | undefined>();
  const issued: IssuedSvid[] = [];
  const results: SvidResult[] = [];
  const now = Math.floor(ctx.clock.nowMs() / 1000);
  for (const r of requests) {
    try {
      const entry = await authorizedEntry(ctx, scope, r.entryId, cache);
      // A task's SVID lives no longer than the task and carries its delegation record.
      const task = await ctx.tasks?.issuance.forEntry(entry);
      const key = await ctx.authority.verifyCsr(r.csr);
      const ttl = entry.x509SvidTtl || ctx.config.defaultX509SvidTtl;
      const svid = await ctx.authority.mintX509Svid({
        spiffeId: entry.spiffeId,
        publicKey: key,
        ttl: task ? ctx.tasks!.issuance.capTtl(ttl, task) : ttl,
        ...(entry.dnsNames.length ? { dnsNames: entry.dnsNames } : {}),
        ...(task?.extension ? { extraExtensions: [task.extension] } : {}),
      });
      issued.push({ serial: svid.serial, issuerSki: svid.issuerSki, spiffeId: entry.spiffeId, entryId: entry.id, agentId: scope.agentId, issuedAt: now, notAfter: Math.floor(svid.notAfter.getTime() / 1000) });
      results.push({ entryId: entry.id, chain: svid.chain, serial: svid.serial, notAfter: svid.notAfter, revision: entry.revision });
    } catch (e) {
      const we = toWritError(e);
      if (we.code === 'ERR_INTERNAL') ctx.logger.error({ err: e, entry_id: r.entryId }, 'signing a workload SVID failed');
      results.push({ entryId: r.entryId, error: { code: we.code, message: we.message } });
    }
  }
  await ctx.datastore.recordIssued(issued);
  await ctx.tasks?.issuance.afterIssued(issued);
  ctx.metrics.svidsMinted.inc({ type: 'x509' }, issued.length);
  return results;
}

export async function issueJwtSvid(ctx: ServerContext, scope: AgentScope, entryId: string, audience: unknown): Promise<{ token: string; expiresAt: Date }> {
  if (!Array.isArray(audience) || audience.length === 0 || audience.length > 32 || !audience.every((a) => typeof a === 'string' && a.length > 0 && a.length <= 1024)) {
    throw new WritError('ERR_INPUT_INVALID', 'audience must be a list of 1 to 32 non-empty strings.');
  }
  const entry = await authorizedEntry(ctx, scope, entryId, new Map());
  const task = await ctx.tasks?.issuance.forEntry(entry);
  const ttl = entry.jwtSvidTtl || ctx.config.defaultJwtSvidTtl;
  const jwt = await ctx.authority.mintJwtSvid({
    spiffeId: entry.spiffeId,
    audience: audience as string[],
    ttl: task ? ctx.tasks!.issuance.capTtl(ttl, task) : ttl,
    ...(task ? { claims: task.claims } : {}),
  });
  ctx.metrics.svidsMinted.inc({ type: 'jwt' });
  return { token: jwt.token, expiresAt: jwt.expiresAt };
}

/** The agent's own X509-SVID for `agentId` from its CSR, recorded like any other. */
export async function issueAgentSvid(ctx: ServerContext, agentId: string, csr: Buffer): Promise<{ chain: Buffer[]; serial: string; notAfter: Date }> {
  const key = await ctx.authority.verifyCsr(csr);
  const svid = await ctx.authority.mintX509Svid({ spiffeId: agentId, publicKey: key, ttl: ctx.config.agentTtl });
  const now = Math.floor(ctx.clock.nowMs() / 1000);
  await ctx.datastore.recordIssued([{ serial: svid.serial, issuerSki: svid.issuerSki, spiffeId: agentId, entryId: null, agentId, issuedAt: now, notAfter: Math.floor(svid.notAfter.getTime() / 1000) }]);
  ctx.metrics.svidsMinted.inc({ type: 'x509' });
  return { chain: svid.chain, serial: svid.serial, notAfter: svid.notAfter };
}
