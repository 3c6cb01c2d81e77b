/**
 * Admin API routes for federation (`writ federation ...`) and foreign bundles (`writ bundle
 * list|set|delete`), registered on the admin app by createAdminApp. The server's own bundle is
 * never set or deleted here; a bundle a relationship still polls is deleted only with `force`
 * (the poller would fetch it again at its next interval anyway).
 */
import type { Request, Response } from 'express';
import { SpiffeBundle } from '../bundle/index.js';
import type { BundleRecord, FederationRelationship } from '../datastore/index.js';
import { WritError } from '../errors.js';
import { parseTrustDomain } from '../spiffeid/index.js';
import type { ServerContext } from './context.js';
import {
  foreignTrustDomain,
  parseOperatorBundle,
  refreshRelationship,
  relationshipToJson,
  validateNewRelationship,
  validateRelationshipPatch,
  type RefreshOutcome,
} from './federation/index.js';

export interface AdminHelpers {
  route(method: 'get' | 'post', path: string, action: string, h: (req: Request, res: Response) => Promise<unknown>): void;
  audit(req: Request, action: string, fields: Record<string, unknown>): void;
  body(req: Request): Record<string, unknown>;
}

const now = (ctx: ServerContext) => Math.floor(ctx.clock.nowMs() / 1000);

function bundleJson(rec: BundleRecord, federated: boolean) {
  let b: SpiffeBundle;
  try {
    b = SpiffeBundle.parse(parseTrustDomain(rec.trustDomain), rec.document);
  } catch {
    // A stored document that no longer parses is listed (so it can be replaced or deleted), not fatal.
    return { trust_domain: rec.trustDomain, sequence: rec.sequence, updated_at: rec.updatedAt, federated, x509_authorities: 0, jwt_authorities: 0, spiffe: null, pem: '', invalid: true };
  }
  return {
    trust_domain: rec.trustDomain,
    sequence: rec.sequence,
    ...(b.sequenceNumber !== undefined ? { spiffe_sequence: b.sequenceNumber } : {}),
    ...(b.refreshHint !== undefined ? { refresh_hint: b.refreshHint } : {}),
    updated_at: rec.updatedAt,
    federated,
    x509_authorities: b.x509Authorities.length,
    jwt_authorities: b.jwtAuthorities.size,
    spiffe: JSON.parse(rec.document) as unknown,
    pem: b.x509Bundle().toPem(),
  };
}

function outcomeJson(o: RefreshOutcome, nextRefreshAt: number | undefined) {
  return {
    trust_domain: o.trustDomain,
    at: o.at,
    ok: o.ok,
    result: o.result,
    ...(o.code ? { code: o.code } : {}),
    message: o.message,
    ...(o.sequence !== null ? { sequence: o.sequence } : {}),
    ...(nextRefreshAt !== undefined ? { next_refresh_at: nextRefreshAt } : {}),
  };
}

/** A bootstrap bundle given with create/update: `{format: pem|spiffe, data}`. */
function bootstrapOf(raw: unknown, td: string): SpiffeBundle | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new WritError('ERR_INPUT_INVALID', 'trust_domain_bundle must be {"format": "pem"|"spiffe", "data": "..."}.');
  const { format, data } = raw as { format?: unknown; data?: unknown };
  return parseOperatorBundle(parseTrustDomain(td), format, data);
}

export function registerFederationRoutes(ctx: ServerContext, { route, audit, body }: AdminHelpers): void {
  const own = ctx.config.trustDomain;
  const json = (r: FederationRelationship) => relationshipToJson(r, ctx.federation?.nextRefreshAt(r.trustDomain));
  const existing = async (raw: unknown): Promise<FederationRelationship> => {
    const td = foreignTrustDomain(raw, own);
    const r = await ctx.datastore.getFederation(td);
    if (!r) throw new WritError('ERR_FEDERATION_NOT_FOUND', `There is no federation relationship with ${td}.`);
    return r;
  };
  const storeBootstrap = async (td: string, b: SpiffeBundle) => ctx.datastore.setBundle(td, b.marshal(), b.refreshHint ?? 0, now(ctx));

  route('post', '/v1/federation/create', 'federation.create', async (req) => {
    const b = body(req);
    const rel = validateNewRelationship(b, own);
    const bootstrap = bootstrapOf(b.trust_domain_bundle, rel.trustDomain);
    const created = await ctx.datastore.createFederation(rel, now(ctx));
    if (bootstrap) {
      try {
        await storeBootstrap(rel.trustDomain, bootstrap);
      } catch (e) {
        await ctx.datastore.deleteFederation(rel.trustDomain);
        throw e;
      }
    }
    audit(req, 'federation.create', { trust_domain: rel.trustDomain, url: rel.bundleEndpointUrl, profile: rel.profile, endpoint_spiffe_id: rel.endpointSpiffeId, bootstrap_bundle: bootstrap !== undefined });
    ctx.federation?.kick();
    return { relationship: json(created) };
  });

  route('post', '/v1/federation/list', 'federation.list', async () => ({ relationships: (await ctx.datastore.listFederations()).map(json) }));

  route('post', '/v1/federation/show', 'federation.show', async (req) => ({ relationship: json(await existing(body(req).trust_domain)) }));

  route('post', '/v1/federation/update', 'federation.update', async (req) => {
    const b = body(req);
    const td = foreignTrustDomain(b.trust_domain, own);
    const patch = validateRelationshipPatch(b);
    const bootstrap = bootstrapOf(b.trust_domain_bundle, td);
    if (Object.keys(patch).length === 0 && !bootstrap) throw new WritError('ERR_INPUT_INVALID', 'Say what to change: bundle_endpoint_url, bundle_endpoint_profile, endpoint_spiffe_id or trust_domain_bundle.');
    const updated = Object.keys(patch).length > 0 ? await ctx.datastore.updateFederation(td, patch, now(ctx)) : await existing(td);
    if (bootstrap) await storeBootstrap(td, bootstrap);
    audit(req, 'federation.update', { trust_domain: td, url: updated.bundleEndpointUrl, profile: updated.profile, endpoint_spiffe_id: updated.endpointSpiffeId, bootstrap_bundle: bootstrap !== undefined });
    ctx.federation?.kick();
    return { relationship: json(updated) };
  });

  route('post', '/v1/federation/delete', 'federation.delete', async (req) => {
    const rel = await existing(body(req).trust_domain);
    await ctx.datastore.deleteFederation(rel.trustDomain);
    audit(req, 'federation.delete', { trust_domain: rel.trustDomain });
    return { deleted: rel.trustDomain };
  });

  route('post', '/v1/federation/refresh', 'federation.refresh', async (req) => {
    const rel = await existing(body(req).trust_domain);
    const outcome = ctx.federation
      ? await ctx.federation.refresh(rel.trustDomain)
      : await refreshRelationship(rel, { datastore: ctx.datastore, clock: ctx.clock, logger: ctx.logger });
    audit(req, 'federation.refresh', { trust_domain: rel.trustDomain, ok: outcome.ok, result: outcome.result, code: outcome.code, sequence: outcome.sequence });
    const after = await ctx.datastore.getFederation(rel.trustDomain);
    return { result: outcomeJson(outcome, ctx.federation?.nextRefreshAt(rel.trustDomain)), ...(after ? { relationship: json(after) } : {}) };
  });

  // Foreign bundles (the own trust domain's bundle is GET /v1/bundle).
  route('post', '/v1/bundles/list', 'bundle.list', async (req) => {
    const b = body(req);
    const feds = new Set((await ctx.datastore.listFederations()).map((r) => r.trustDomain));
    if (b.trust_domain !== undefined) {
      const td = foreignTrustDomain(b.trust_domain, own);
      const rec = await ctx.datastore.getBundle(td);
      if (!rec) throw new WritError('ERR_BUNDLE_NOT_FOUND', `There is no bundle for ${td}.`);
      return { bundles: [bundleJson(rec, feds.has(td))] };
    }
    const recs = (await ctx.datastore.listBundles()).filter((r) => r.trustDomain !== own);
    return { bundles: recs.map((r) => bundleJson(r, feds.has(r.trustDomain))) };
  });

  route('post', '/v1/bundles/set', 'bundle.set', async (req) => {
    const b = body(req);
    const td = foreignTrustDomain(b.trust_domain, own);
    const bundle = parseOperatorBundle(parseTrustDomain(td), b.format, b.data);
    const rec = await ctx.datastore.setBundle(td, bundle.marshal(), bundle.refreshHint ?? 0, now(ctx));
    audit(req, 'bundle.set', { trust_domain: td, format: b.format, sequence: rec.sequence, x509_authorities: bundle.x509Authorities.length, jwt_authorities: bundle.jwtAuthorities.size });
    return { bundle: bundleJson(rec, (await ctx.datastore.getFederation(td)) !== undefined) };
  });

  route('post', '/v1/bundles/delete', 'bundle.delete', async (req) => {
    const b = body(req);
    const td = foreignTrustDomain(b.trust_domain, own);
    if (b.force !== undefined && typeof b.force !== 'boolean') throw new WritError('ERR_INPUT_INVALID', 'force must be true or false.');
    const rel = await ctx.datastore.getFederation(td);
    if (rel && b.force !== true) {
      throw new WritError('ERR_FEDERATION_BUNDLE_IN_USE', `The federation relationship with ${td} still fetches this bundle; delete the relationship first, or pass --force (it is fetched again at the next refresh).`);
    }
    if (!(await ctx.datastore.deleteBundle(td))) throw new WritError('ERR_BUNDLE_NOT_FOUND', `There is no bundle for ${td}.`);
    audit(req, 'bundle.delete', { trust_domain: td, forced: rel !== undefined });
    return { deleted: td };
  });
}
