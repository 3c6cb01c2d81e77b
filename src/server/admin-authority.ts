/**
 * Admin API for forced CA rotation (`writ authority ...`, as `spire-server localauthority ...`):
 *
 *   GET  /v1/authorities                     every X.509 and JWT authority with its state
 *   POST /v1/authorities/{x509|jwt}/prepare  a new authority, published in the bundle at once
 *   POST /v1/authorities/{x509|jwt}/activate {authority_id}: the prepared one signs from now on
 *   POST /v1/authorities/{x509|jwt}/taint    {authority_id}: agents re-sign what the old one signed
 *   POST /v1/authorities/{x509|jwt}/revoke   {authority_id, force?}: the tainted one leaves the bundle
 *
 * An X.509 revoke is refused (unless force) while an attested agent's current agent SVID was
 * issued under the authority: the agent would be locked out of the node API.
 * Each step is logged with the admin caller; the answer comes once the bundle (with a new
 * spiffe_sequence) and the CRLs are published. The state machine itself is in src/ca/forced.ts.
 */
import type { Request, Response } from 'express';
import { AUTHORITY_KINDS, type AuthorityKind, type AuthorityView, type ForcedAction, normalizeAuthorityId } from '../ca/index.js';
import { WritError } from '../errors.js';
import type { ServerContext } from './context.js';

export interface AuthorityJson {
  kind: AuthorityKind;
  authority_id: string;
  slot: string;
  status: 'prepared' | 'active' | 'old';
  tainted: boolean;
  not_before: number;
  not_after: number;
  signing_cas?: Array<{ ski: string; slot: string; status: string; tainted: boolean; not_after: number }>;
}

/** What admin.ts lends the routes registered here. */
export interface AdminRouteKit {
  route(method: 'get' | 'post', path: string, action: string, h: (req: Request, res: Response) => Promise<unknown>): void;
  audit(req: Request, action: string, fields: Record<string, unknown>): void;
  body(req: Request): Record<string, unknown>;
}

const ACTIONS: readonly ForcedAction[] = ['prepare', 'activate', 'taint', 'revoke'];
const secs = (d: Date) => Math.floor(d.getTime() / 1000);

export function authorityToJson(v: AuthorityView): AuthorityJson {
  return {
    kind: v.kind,
    authority_id: v.authorityId,
    slot: v.slot,
    status: v.status,
    tainted: v.tainted,
    not_before: secs(v.notBefore),
    not_after: secs(v.notAfter),
    ...(v.signingCas ? { signing_cas: v.signingCas.map((c) => ({ ski: c.ski, slot: c.slot, status: c.status, tainted: c.tainted, not_after: secs(c.notAfter) })) } : {}),
  };
}

function kindOf(raw: unknown): AuthorityKind {
  if (typeof raw === 'string' && (AUTHORITY_KINDS as readonly string[]).includes(raw)) return raw as AuthorityKind;
  throw new WritError('ERR_INPUT_INVALID', `The authority kind must be x509 or jwt; got "${String(raw).slice(0, 32)}".`);
}

/**
 * Agents whose current agent SVID was issued under the X.509 authority `rootId` (the root or one of
 * its signing CAs). Revoking it before they renew would lock them out of the node API: they could
 * no longer sync, so they would have to attest again.
 */
async function agentsStillUnder(ctx: ServerContext, view: AuthorityView): Promise<string[]> {
  const tree = new Set([view.authorityId, ...(view.signingCas ?? []).map((c) => c.ski)]);
  const now = Math.floor(ctx.clock.nowMs() / 1000);
  const out: string[] = [];
  for (const agent of await ctx.datastore.listAgents({ banned: false })) {
    if (agent.expiresAt <= now) continue;
    const issued = await ctx.datastore.listIssued({ spiffeId: agent.spiffeId, notExpiredAt: now });
    const current = issued.find((i) => i.serial === agent.serial);
    if (current && tree.has(current.issuerSki)) out.push(agent.spiffeId);
  }
  return out;
}

export function registerAuthorityRoutes(ctx: ServerContext, kit: AdminRouteKit): void {
  const a = ctx.authority;
  kit.route('get', '/v1/authorities', 'authority.show', async (req) => {
    const kind = req.query.kind === undefined ? undefined : kindOf(req.query.kind);
    const list = a.localAuthorities(kind).map(authorityToJson);
    return { x509: list.filter((x) => x.kind === 'x509'), jwt: list.filter((x) => x.kind === 'jwt'), bundle_sequence: (await ctx.ownBundle()).sequence };
  });
  for (const action of ACTIONS) {
    kit.route('post', `/v1/authorities/:kind/${action}`, `authority.${action}`, async (req) => {
      const kind = kindOf(req.params.kind);
      const b = kit.body(req);
      const id = b.authority_id;
      if (action === 'revoke' && kind === 'x509' && b.force !== true) {
        const target = a.localAuthorities('x509').find((v) => typeof id === 'string' && v.authorityId === normalizeAuthorityId(id, true));
        const stale = target?.tainted ? await agentsStillUnder(ctx, target) : [];
        if (stale.length > 0) {
          throw new WritError(
            'ERR_CA_AUTHORITY_STATE',
            `${stale.length === 1 ? '1 agent still holds' : `${stale.length} agents still hold`} an agent SVID of this authority (${stale[0]}); agents renew it at their next sync after the taint, so retry then, or pass --force (they must then attest again).`,
          );
        }
      }
      const view =
        action === 'prepare'
          ? await a.prepareAuthority(kind)
          : action === 'activate'
            ? await a.activateAuthority(kind, id)
            : action === 'taint'
              ? await a.taintAuthority(kind, id)
              : await a.revokeAuthority(kind, id);
      const sequence = (await ctx.ownBundle()).sequence;
      kit.audit(req, `authority.${action}`, { kind, authority_id: view.authorityId, status: view.status, tainted: view.tainted, bundle_sequence: sequence });
      return { action, authority: authorityToJson(view), bundle_sequence: sequence };
    });
  }
}
