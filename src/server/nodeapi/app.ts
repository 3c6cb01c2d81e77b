/**
 * The node API routes (JSON over HTTPS, express): attestation and its challenges (no client
 * certificate yet), then, with the agent SVID as client certificate, renewal, entry sync, batched
 * X509-SVID signing and JWT-SVIDs. Errors are `{error: {code, message}}` with the code's HTTP status.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { TLSSocket } from 'node:tls';
import { WritError, toWritError } from '../../errors.js';
import type { ServerContext } from '../context.js';
import { authenticateAgent, scopeOf } from './agents.js';
import type { AttestationSessions, AttestStep } from './attest.js';
import { issueAgentSvid, issueJwtSvid, issueX509Svids, MAX_SVID_BATCH } from './issue.js';
import { syncEntries } from './sync.js';

export const MAX_NODE_BODY = '4mb';

function body(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new WritError('ERR_INPUT_INVALID', 'The request body must be a JSON object.');
  return b as Record<string, unknown>;
}

function b64(der: Buffer): string {
  return der.toString('base64');
}

function stepJson(ctx: ServerContext, step: AttestStep, bundle: { document: string; sequence: number }): Record<string, unknown> {
  if (step.kind === 'challenge') return { session: step.session, challenge: step.challenge };
  return { spiffe_id: step.spiffeId, svid: step.chain.map(b64), expires_at: Math.floor(step.notAfter.getTime() / 1000), bundle, trust_domain: ctx.config.trustDomain };
}

export function createNodeApp(ctx: ServerContext, sessions: AttestationSessions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: MAX_NODE_BODY, strict: true }));

  type Handler = (req: Request) => Promise<unknown>;
  const route = (path: string, action: string, h: Handler) => {
    app.post(path, async (req: Request, res: Response) => {
      res.locals.action = action;
      const out = await h(req);
      ctx.metrics.nodeRequests.inc({ action, code: 'OK' });
      res.json(out);
    });
  };
  const agentOf = (req: Request) => authenticateAgent(ctx, req.socket as TLSSocket);

  route('/v1/node/attest', 'node.attest', async (req) => {
    const b = body(req);
    const step = await sessions.start(b.attestor, b.payload, b.csr);
    const own = await ctx.ownBundle();
    return stepJson(ctx, step, { document: own.document, sequence: own.sequence });
  });
  route('/v1/node/attest/respond', 'node.attest', async (req) => {
    const b = body(req);
    const step = await sessions.respond(b.session, b.response);
    const own = await ctx.ownBundle();
    return stepJson(ctx, step, { document: own.document, sequence: own.sequence });
  });

  route('/v1/node/renew', 'node.renew', async (req) => {
    const agent = await agentOf(req);
    const b = body(req);
    if (typeof b.csr !== 'string') throw new WritError('ERR_CA_CSR', 'csr must be a base64 DER PKCS#10 request.');
    const svid = await issueAgentSvid(ctx, agent.spiffeId, Buffer.from(b.csr, 'base64'));
    const now = Math.floor(ctx.clock.nowMs() / 1000);
    await ctx.datastore.upsertAgent({ ...agent, serial: svid.serial, expiresAt: Math.floor(svid.notAfter.getTime() / 1000), updatedAt: now });
    ctx.logger.info({ event: 'agent.renewed', agent_id: agent.spiffeId, serial: svid.serial }, 'agent SVID renewed');
    return { svid: svid.chain.map(b64), expires_at: Math.floor(svid.notAfter.getTime() / 1000) };
  });

  route('/v1/node/sync', 'node.sync', async (req) => {
    const agent = await agentOf(req);
    const b = body(req);
    const since = typeof b.since === 'number' && Number.isSafeInteger(b.since) && b.since >= 0 ? b.since : 0;
    const aliasKey = typeof b.alias_key === 'string' ? b.alias_key : '';
    const federatesWith = Array.isArray(b.federates_with) ? b.federates_with.filter((x): x is string => typeof x === 'string') : [];
    return syncEntries(ctx, await scopeOf(ctx, agent), { since, aliasKey, federatesWith });
  });

  route('/v1/node/svids', 'node.svids', async (req) => {
    const agent = await agentOf(req);
    const reqs = body(req).requests;
    if (!Array.isArray(reqs) || reqs.length === 0 || reqs.length > MAX_SVID_BATCH) {
      throw new WritError('ERR_INPUT_INVALID', `requests must be a list of 1 to ${MAX_SVID_BATCH} {entry_id, csr} items.`);
    }
    const parsed = reqs.map((r: unknown, i: number) => {
      const o = r as { entry_id?: unknown; csr?: unknown } | null;
      if (typeof o?.entry_id !== 'string' || typeof o.csr !== 'string') throw new WritError('ERR_INPUT_INVALID', `requests[${i}] must be {entry_id, csr}.`);
      return { entryId: o.entry_id, csr: Buffer.from(o.csr, 'base64') };
    });
    const results = await issueX509Svids(ctx, await scopeOf(ctx, agent), parsed);
    return {
      results: results.map((r) =>
        'error' in r
          ? { entry_id: r.entryId, error: r.error }
          : { entry_id: r.entryId, svid: r.chain.map(b64), serial: r.serial, expires_at: Math.floor(r.notAfter.getTime() / 1000), revision: r.revision },
      ),
    };
  });

  route('/v1/node/jwt', 'node.jwt', async (req) => {
    const agent = await agentOf(req);
    const b = body(req);
    if (typeof b.entry_id !== 'string') throw new WritError('ERR_INPUT_INVALID', 'entry_id must be a string.');
    const jwt = await issueJwtSvid(ctx, await scopeOf(ctx, agent), b.entry_id, b.audience);
    return { token: jwt.token, expires_at: Math.floor(jwt.expiresAt.getTime() / 1000) };
  });

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new WritError('ERR_NOT_FOUND', `The node API has no ${req.method} ${req.path}.`));
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (err as { type?: string }).type;
    const status = (err as { status?: number }).status;
    let e: WritError;
    if (type === 'entity.too.large') e = new WritError('ERR_REQUEST_TOO_LARGE', `The request body is larger than ${MAX_NODE_BODY}.`);
    else if (type === 'entity.parse.failed') e = new WritError('ERR_INPUT_INVALID', 'The request body is not valid JSON.');
    else if (!(err instanceof WritError) && status !== undefined && status >= 400 && status < 500) e = new WritError('ERR_INPUT_INVALID', 'The request is malformed.');
    else e = toWritError(err);
    if (e.code === 'ERR_INTERNAL') ctx.logger.error({ err, path: req.path }, 'node API request failed');
    else ctx.logger.info({ event: 'node.refused', path: req.path, code: e.code, reason: e.message }, 'node API request refused');
    ctx.metrics.nodeRequests.inc({ action: String(res.locals.action ?? 'unrouted'), code: e.code });
    res.status(e.httpStatus).json({ error: e.toJSON() });
  });
  return app;
}
