/**
 * The admin API: JSON over HTTP on a Unix socket that only its owner (and a configured group) can
 * open. Every request is tied to the caller's kernel credentials (SO_PEERCRED), checked again
 * here, and every change is logged with who made it.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { WritError, toWritError } from '../errors.js';
import { entryToJson, validateEntryFilter, validateEntryUpdate, validateNewEntry, validateDnsNames, checkEntryId, RESERVED_PATH } from '../registry/index.js';
import { parseSpiffeId } from '../spiffeid/index.js';
import { peerCredOf, peerGroupsOf, lookupUserName, type PeerCred } from '../platform/index.js';
import { parseDurationSeconds } from '../duration.js';
import type { ServerContext } from './context.js';
import { registerAuthorityRoutes } from './admin-authority.js';
import { registerFederationRoutes } from './admin-federation.js';
import type { AttestedAgent } from '../datastore/index.js';
import { registerTaskRoutes } from './admin-tasks.js';

export const MAX_ADMIN_BODY = '32mb';
export const MAX_BATCH = 10_000;

export interface AdminCaller extends PeerCred {
  user: string;
}

interface Labelled {
  writCaller?: AdminCaller;
}

/** Reads peer credentials once per connection, when it is accepted. */
export function labelConnection(socket: Socket): void {
  const cred = peerCredOf(socket);
  (socket as Socket & Labelled).writCaller = { ...cred, user: lookupUserName(cred.uid) ?? String(cred.uid) };
}

/** Who may use the admin API: the server's own user, root, and members of the configured group. */
export function callerAllowed(caller: PeerCred, groups: number[], ownUid: number, adminGid: number | undefined): boolean {
  if (caller.uid === 0 || caller.uid === ownUid) return true;
  if (adminGid === undefined) return false;
  return caller.gid === adminGid || groups.includes(adminGid);
}

function callerOf(req: Request): AdminCaller {
  const c = (req.socket as Socket & Labelled).writCaller;
  if (!c) throw new WritError('ERR_UNAUTHENTICATED', 'The caller\'s credentials could not be read from the socket.');
  return c;
}

function body(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new WritError('ERR_INPUT_INVALID', 'The request body must be a JSON object.');
  return b as Record<string, unknown>;
}

function batch(b: Record<string, unknown>, field: string): unknown[] {
  const xs = b[field];
  if (!Array.isArray(xs) || xs.length === 0) throw new WritError('ERR_INPUT_INVALID', `"${field}" must be a non-empty list.`);
  if (xs.length > MAX_BATCH) throw new WritError('ERR_INPUT_INVALID', `A batch holds at most ${MAX_BATCH} items; got ${xs.length}.`);
  return xs;
}

function ttlOf(raw: unknown, fallback: number, field: string): number {
  if (raw === undefined || raw === null || raw === 0) return fallback;
  if (typeof raw !== 'number' && typeof raw !== 'string') throw new WritError('ERR_TTL_INVALID', `${field} must be a duration or a number of seconds.`);
  const s = parseDurationSeconds(raw, field);
  if (s <= 0) throw new WritError('ERR_TTL_INVALID', `${field} must be greater than zero.`);
  return s;
}

function mintableId(raw: unknown, ctx: ServerContext): string {
  if (typeof raw !== 'string') throw new WritError('ERR_INPUT_INVALID', 'spiffe_id must be a SPIFFE ID string.');
  const id = parseSpiffeId(raw);
  if (id.trustDomain.name !== ctx.config.trustDomain) {
    throw new WritError('ERR_SPIFFEID_NOT_MEMBER', `${id.toString()} is not in this server's trust domain ${ctx.config.trustDomain}.`);
  }
  if (id.path === '') throw new WritError('ERR_SPIFFEID_PATH', `${id.toString()} has no path; an SVID needs one.`);
  if (id.path === RESERVED_PATH || id.path.startsWith(`${RESERVED_PATH}/`)) {
    throw new WritError('ERR_SPIFFEID_RESERVED', `${id.toString()} is in the reserved ${RESERVED_PATH} namespace.`);
  }
  return id.toString();
}

type Handler = (req: Request, res: Response) => Promise<unknown>;

/** Serial numbers compare as lower-case hex without colons or leading zero octets. */
const normalSerial = (hex: string): string => hex.replace(/:/g, '').toLowerCase().replace(/^(?:00)+(?=..)/, '');

export function createAdminApp(ctx: ServerContext, adminGid: number | undefined): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const ownUid = process.geteuid?.() ?? 0;

  // Every request: the kernel's word on who is calling, then the allow-list.
  app.use((req: Request, _res: Response, next: NextFunction) => {
    try {
      const caller = callerOf(req);
      const groups = peerGroupsOf(req.socket);
      if (!callerAllowed(caller, groups, ownUid, adminGid)) {
        ctx.logger.warn({ caller, path: req.path }, 'admin request refused');
        throw new WritError('ERR_PERMISSION_DENIED', `User ${caller.user} (uid ${caller.uid}) may not use the admin API.`);
      }
      next();
    } catch (e) {
      next(e);
    }
  });
  app.use(express.json({ limit: MAX_ADMIN_BODY, strict: true }));

  const route = (method: 'get' | 'post', path: string, action: string, h: Handler) => {
    app[method](path, async (req: Request, res: Response) => {
      res.locals.action = action;
      const result = await h(req, res);
      ctx.metrics.adminRequests.inc({ action, code: 'OK' });
      if (!res.headersSent) res.json(result);
    });
  };
  const audit = (req: Request, action: string, fields: Record<string, unknown>) => {
    const c = callerOf(req);
    ctx.logger.info({ event: 'admin', action, caller: { uid: c.uid, gid: c.gid, pid: c.pid, user: c.user }, ...fields }, action);
  };

  route('get', '/v1/health', 'health', async () => ctx.health());

  route('post', '/v1/entries/create', 'entry.create', async (req) => {
    const items = batch(body(req), 'entries').map((e, i) => validateNewEntry(e, ctx.config.trustDomain, i));
    const created = await ctx.datastore.createEntries(items);
    audit(req, 'entry.create', { entries: created.map((e) => ({ id: e.id, spiffe_id: e.spiffeId, parent_id: e.parentId })) });
    return { entries: created.map(entryToJson) };
  });
  route('post', '/v1/entries/update', 'entry.update', async (req) => {
    const items = batch(body(req), 'entries').map((e, i) => validateEntryUpdate(e, ctx.config.trustDomain, i));
    const updated = await ctx.datastore.updateEntries(items);
    audit(req, 'entry.update', { entries: updated.map((e) => ({ id: e.id, revision: e.revision })) });
    return { entries: updated.map(entryToJson) };
  });
  route('post', '/v1/entries/delete', 'entry.delete', async (req) => {
    const ids = batch(body(req), 'ids').map((id, i) => checkEntryId(id, `id ${i}`));
    const deleted = await ctx.datastore.deleteEntries(ids);
    audit(req, 'entry.delete', { entries: deleted.map((e) => ({ id: e.id, spiffe_id: e.spiffeId })) });
    return { entries: deleted.map(entryToJson) };
  });
  route('post', '/v1/entries/list', 'entry.list', async (req) => {
    const b = body(req);
    const filter = validateEntryFilter(b.filter);
    const page: { pageSize?: number; pageToken?: string } = {};
    if (b.page_size !== undefined) page.pageSize = b.page_size as number;
    if (b.page_token !== undefined) page.pageToken = b.page_token as string;
    const out = await ctx.datastore.listEntries(filter, page);
    return { entries: out.entries.map(entryToJson), ...(out.nextPageToken ? { next_page_token: out.nextPageToken } : {}) };
  });
  route('post', '/v1/entries/count', 'entry.count', async (req) => ({ count: await ctx.datastore.countEntries(validateEntryFilter(body(req).filter)) }));
  route('get', '/v1/entries/:id', 'entry.get', async (req) => {
    const id = checkEntryId(req.params.id, 'id');
    const e = await ctx.datastore.getEntry(id);
    if (!e) throw new WritError('ERR_ENTRY_NOT_FOUND', `No entry has id ${id}.`);
    return { entry: entryToJson(e) };
  });

  route('get', '/v1/bundle', 'bundle.get', async () => {
    const b = await ctx.ownBundle();
    return { trust_domain: ctx.config.trustDomain, sequence: b.sequence, spiffe: JSON.parse(b.document) as unknown, pem: ctx.bundlePem() };
  });

  route('get', '/v1/crl', 'bundle.crl', async () => {
    const crls = await ctx.authority.crls(await ctx.datastore.listRevoked(), ctx.config.ca.crlNextUpdate);
    return {
      crls: crls.map((c) => ({
        issuer_ski: c.issuerSki,
        der: c.der.toString('base64'),
        this_update: Math.floor(c.thisUpdate.getTime() / 1000),
        next_update: Math.floor(c.nextUpdate.getTime() / 1000),
      })),
    };
  });

  route('post', '/v1/svid/x509', 'svid.x509.mint', async (req) => {
    const b = body(req);
    const spiffeId = mintableId(b.spiffe_id, ctx);
    if (typeof b.csr !== 'string') throw new WritError('ERR_CA_CSR', 'csr must be a base64 DER PKCS#10 request.');
    const publicKey = await ctx.authority.verifyCsr(Buffer.from(b.csr, 'base64'));
    const ttl = ttlOf(b.ttl, ctx.config.defaultX509SvidTtl, 'ttl');
    const dnsNames = b.dns_names === undefined ? [] : validateDnsNames(b.dns_names, 'dns_names');
    const svid = await ctx.authority.mintX509Svid({ spiffeId, publicKey, ttl, dnsNames });
    const issuedAt = Math.floor(ctx.clock.nowMs() / 1000);
    // Recorded like agent-issued SVIDs, so `writ svid revoke` can put it on the CRL.
    await ctx.datastore.recordIssued([{ serial: svid.serial, issuerSki: svid.issuerSki, spiffeId, entryId: null, agentId: null, issuedAt, notAfter: Math.floor(svid.notAfter.getTime() / 1000) }]);
    ctx.metrics.svidsMinted.inc({ type: 'x509' });
    audit(req, 'svid.x509.mint', { spiffe_id: spiffeId, serial: svid.serial, not_after: svid.notAfter.toISOString() });
    return {
      spiffe_id: spiffeId,
      chain: svid.chain.map((d) => d.toString('base64')),
      bundle: ctx.authority.x509Authorities().map((d) => d.toString('base64')),
      serial: svid.serial,
      expires_at: Math.floor(svid.notAfter.getTime() / 1000),
    };
  });
  // Revokes unexpired X509-SVIDs the CA recorded as issued: one serial, or all of an entry or SPIFFE ID.
  route('post', '/v1/svid/revoke', 'svid.revoke', async (req) => {
    const b = body(req);
    const now = Math.floor(ctx.clock.nowMs() / 1000);
    const filter: { notExpiredAt: number; entryId?: string; spiffeId?: string } = { notExpiredAt: now };
    if (b.entry_id !== undefined) filter.entryId = checkEntryId(b.entry_id, 'entry_id');
    if (b.spiffe_id !== undefined) {
      if (typeof b.spiffe_id !== 'string') throw new WritError('ERR_INPUT_INVALID', 'spiffe_id must be a SPIFFE ID string.');
      filter.spiffeId = parseSpiffeId(b.spiffe_id).toString();
    }
    let serial: string | undefined;
    if (b.serial !== undefined) {
      if (typeof b.serial !== 'string' || !/^(?:[0-9a-fA-F]{2}:?)+$/.test(b.serial) || b.serial.length > 128) {
        throw new WritError('ERR_INPUT_INVALID', 'serial must be the certificate serial number in hex (colons allowed).');
      }
      serial = normalSerial(b.serial);
    }
    if (serial === undefined && filter.entryId === undefined && filter.spiffeId === undefined) {
      throw new WritError('ERR_INPUT_INVALID', 'Say what to revoke: serial, entry_id or spiffe_id.');
    }
    const reason = b.reason === undefined ? 'revoked by an administrator' : b.reason;
    if (typeof reason !== 'string' || reason.length > 256) throw new WritError('ERR_INPUT_INVALID', 'reason must be a string of at most 256 characters.');
    const found = (await ctx.datastore.listIssued(filter)).filter((i) => serial === undefined || normalSerial(i.serial) === serial);
    if (found.length === 0) throw new WritError('ERR_SVID_NOT_FOUND', 'No unexpired X509-SVID issued by this server matches; nothing was revoked.');
    await ctx.datastore.addRevoked(found.map((i) => ({ serial: i.serial, issuerSki: i.issuerSki, revokedAt: now, notAfter: i.notAfter, reason })));
    audit(req, 'svid.revoke', { reason, svids: found.map((i) => ({ serial: i.serial, spiffe_id: i.spiffeId, entry_id: i.entryId })) });
    return { revoked: found.map((i) => ({ serial: i.serial, issuer_ski: i.issuerSki, spiffe_id: i.spiffeId, entry_id: i.entryId, expires_at: i.notAfter })) };
  });
  route('post', '/v1/svid/jwt', 'svid.jwt.mint', async (req) => {
    const b = body(req);
    const spiffeId = mintableId(b.spiffe_id, ctx);
    const audience = b.audience;
    if (!Array.isArray(audience) || audience.length === 0 || !audience.every((a) => typeof a === 'string' && a.length > 0)) {
      throw new WritError('ERR_INPUT_INVALID', 'audience must be a non-empty list of non-empty strings.');
    }
    const ttl = ttlOf(b.ttl, ctx.config.defaultJwtSvidTtl, 'ttl');
    const jwt = await ctx.authority.mintJwtSvid({ spiffeId, audience: audience as string[], ttl });
    ctx.metrics.svidsMinted.inc({ type: 'jwt' });
    audit(req, 'svid.jwt.mint', { spiffe_id: spiffeId, audience, kid: jwt.kid, expires_at: jwt.expiresAt.toISOString() });
    return { spiffe_id: spiffeId, token: jwt.token, expires_at: Math.floor(jwt.expiresAt.getTime() / 1000) };
  });

  route('post', '/v1/join-tokens', 'token.generate', async (req) => {
    const b = body(req);
    const ttl = ttlOf(b.ttl, ctx.config.joinTokenTtl, 'ttl');
    let alias: string | null = null;
    if (b.spiffe_id !== undefined) alias = mintableId(b.spiffe_id, ctx);
    const token = randomBytes(24).toString('base64url');
    const now = Math.floor(ctx.clock.nowMs() / 1000);
    const tokenHash = createHash('sha256').update(token).digest('hex');
    await ctx.datastore.createJoinToken({ tokenHash, expiresAt: now + ttl, spiffeId: alias, createdAt: now, usedAt: null });
    // The token itself is shown once to the caller and never logged; the hash prefix identifies it.
    audit(req, 'token.generate', { token_sha256_prefix: tokenHash.slice(0, 12), expires_at: now + ttl, spiffe_id: alias });
    return { token, expires_at: now + ttl, ...(alias ? { spiffe_id: alias } : {}) };
  });

  const agentJson = (a: AttestedAgent) => ({
    spiffe_id: a.spiffeId,
    attestation_type: a.attestationType,
    serial: a.serial,
    expires_at: a.expiresAt,
    selectors: a.selectors,
    banned: a.banned,
    can_reattest: a.canReattest,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  });
  const agentId = (raw: unknown): string => {
    if (typeof raw !== 'string') throw new WritError('ERR_INPUT_INVALID', 'spiffe_id must be an agent SPIFFE ID.');
    const id = parseSpiffeId(raw).toString();
    if (!id.startsWith(`spiffe://${ctx.config.trustDomain}/writ/agent/`)) throw new WritError('ERR_INPUT_INVALID', `${id} is not an agent ID of this trust domain.`);
    return id;
  };
  const existingAgent = async (id: string) => {
    const a = await ctx.datastore.getAgent(id);
    if (!a) throw new WritError('ERR_AGENT_NOT_FOUND', `No attested agent has the ID ${id}.`);
    return a;
  };
  route('post', '/v1/agents/list', 'agent.list', async (req) => {
    const f = body(req);
    const filter: { banned?: boolean; attestationType?: string } = {};
    if (typeof f.banned === 'boolean') filter.banned = f.banned;
    if (typeof f.attestation_type === 'string') filter.attestationType = f.attestation_type;
    return { agents: (await ctx.datastore.listAgents(filter)).map(agentJson) };
  });
  route('post', '/v1/agents/show', 'agent.show', async (req) => ({ agent: agentJson(await existingAgent(agentId(body(req).spiffe_id))) }));
  route('post', '/v1/agents/evict', 'agent.evict', async (req) => {
    const id = agentId(body(req).spiffe_id);
    await existingAgent(id);
    await ctx.datastore.deleteAgent(id);
    audit(req, 'agent.evict', { agent_id: id });
    return { evicted: id };
  });
  route('post', '/v1/agents/ban', 'agent.ban', async (req) => {
    const id = agentId(body(req).spiffe_id);
    const a = await existingAgent(id);
    await ctx.datastore.upsertAgent({ ...a, banned: true, updatedAt: Math.floor(ctx.clock.nowMs() / 1000) });
    audit(req, 'agent.ban', { agent_id: id });
    return { banned: id };
  });
  registerAuthorityRoutes(ctx, { route, audit, body });
  registerFederationRoutes(ctx, { route, audit, body });
  registerTaskRoutes(ctx, { route, audit, body, callerOf: (req) => ({ ...callerOf(req), groups: peerGroupsOf(req.socket) }) });

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new WritError('ERR_NOT_FOUND', `The admin API has no ${req.method} ${req.path}.`));
  });
  // Errors: a stable code and one sentence; internal details go to the log only.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let e: WritError;
    const status = (err as { status?: number; type?: string }).status;
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') e = new WritError('ERR_REQUEST_TOO_LARGE', `The request body is larger than ${MAX_ADMIN_BODY}.`);
    else if (type === 'entity.parse.failed') e = new WritError('ERR_INPUT_INVALID', 'The request body is not valid JSON.');
    else if (!(err instanceof WritError) && status !== undefined && status >= 400 && status < 500) e = new WritError('ERR_INPUT_INVALID', 'The request is malformed.');
    else e = toWritError(err);
    if (e.code === 'ERR_INTERNAL') ctx.logger.error({ err, path: req.path }, 'admin request failed');
    ctx.metrics.adminRequests.inc({ action: String(res.locals.action ?? 'unrouted'), code: e.code });
    res.status(e.httpStatus).json({ error: e.toJSON() });
  });
  return app;
}
