/**
 * Admin API routes of agent identities and tasks (JSON over the admin socket). The caller's OS
 * user, from the kernel's peer credentials, is the operator: the approver of the tasks it starts
 * (authenticatedBy "os-user"), with its groups for group:<name> delegators.
 *
 *   POST /v1/agent-identities/create|list|show|disable|enable|delete
 *   POST /v1/tasks/start|list|show|end
 *   POST /v1/audit/show|verify   (the server's audit log, <data_dir>/audit.log)
 */
import type { Request, Response } from 'express';
import { type AuditFilter, type AuditRecord, readAudit, verifyAudit } from '../audit/index.js';
import { WritError } from '../errors.js';
import type { ServerContext } from './context.js';
import { type Operator, type TaskService, agentIdentityJson, taskJson } from './tasks/index.js';

type Handler = (req: Request, res: Response) => Promise<unknown>;

/** What admin.ts lends: its route and audit-log helpers, its body parser, and the caller from the socket. */
export interface TaskRouteHelpers {
  route(method: 'get' | 'post', path: string, action: string, h: Handler): void;
  audit(req: Request, action: string, fields: Record<string, unknown>): void;
  body(req: Request): Record<string, unknown>;
  callerOf(req: Request): { uid: number; gid: number; pid: number; user: string; groups: readonly number[] };
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function reasonOf(raw: unknown): string {
  if (raw === undefined || raw === null || raw === '') return 'ended by an operator';
  if (typeof raw !== 'string' || raw.length > 256 || CONTROL.test(raw)) {
    throw new WritError('ERR_TASK_INVALID', 'reason must be a line of text of at most 256 characters.', { details: { field: 'reason' } });
  }
  return raw;
}

export function registerTaskRoutes(ctx: ServerContext, { route, audit: log, body, callerOf }: TaskRouteHelpers): void {
  const service = (): TaskService => {
    if (!ctx.tasks) throw new WritError('ERR_SERVER_NOT_READY', 'This server runs without agent identities and tasks.');
    return ctx.tasks;
  };
  const operator = (req: Request): Operator => {
    const c = callerOf(req);
    return { id: c.user, authenticatedBy: 'os-user', gids: [c.gid, ...c.groups] };
  };

  route('post', '/v1/agent-identities/create', 'agent-identity.create', async (req) => {
    const a = await service().agents.create(body(req), operator(req));
    log(req, 'agent-identity.create', { agent: a.spiffeId, entry_id: a.entryId });
    return { agent_identity: agentIdentityJson(a) };
  });
  route('post', '/v1/agent-identities/list', 'agent-identity.list', async () => ({ agent_identities: (await service().agents.list()).map(agentIdentityJson) }));
  route('post', '/v1/agent-identities/show', 'agent-identity.show', async (req) => {
    const a = await service().agents.get(body(req).name);
    const active = await service().tasks.list({ agentName: a.name, status: 'active' });
    return { agent_identity: agentIdentityJson(a), active_tasks: active.map((t) => t.id) };
  });
  route('post', '/v1/agent-identities/disable', 'agent-identity.disable', async (req) => {
    const r = await service().agents.disable(body(req).name, operator(req));
    log(req, 'agent-identity.disable', { agent: r.agent.spiffeId, ended_tasks: r.endedTasks, revoked: r.revokedSerials.length });
    return { agent_identity: agentIdentityJson(r.agent), ended_tasks: r.endedTasks, revoked_serials: r.revokedSerials };
  });
  route('post', '/v1/agent-identities/enable', 'agent-identity.enable', async (req) => {
    const a = await service().agents.enable(body(req).name, operator(req));
    log(req, 'agent-identity.enable', { agent: a.spiffeId, entry_id: a.entryId });
    return { agent_identity: agentIdentityJson(a) };
  });
  route('post', '/v1/agent-identities/delete', 'agent-identity.delete', async (req) => {
    const r = await service().agents.delete(body(req).name, operator(req));
    log(req, 'agent-identity.delete', { name: r.name, ended_tasks: r.endedTasks });
    return { deleted: r.name, ended_tasks: r.endedTasks };
  });

  route('post', '/v1/tasks/start', 'task.start', async (req) => {
    const { task, delegation } = await service().tasks.start(body(req), operator(req));
    log(req, 'task.start', { task_id: task.id, spiffe_id: task.spiffeId, deadline: task.deadline });
    return { task: { ...taskJson(task), delegation } };
  });
  route('post', '/v1/tasks/list', 'task.list', async (req) => {
    const b = body(req);
    const filter: { agentName?: string; status?: 'active'; limit?: number } = {};
    if (b.agent !== undefined) {
      if (typeof b.agent !== 'string') throw new WritError('ERR_INPUT_INVALID', 'agent must be an agent name.');
      filter.agentName = b.agent;
    }
    if (b.all !== true) filter.status = 'active';
    if (typeof b.limit === 'number') filter.limit = b.limit;
    return { tasks: (await service().tasks.list(filter)).map(taskJson) };
  });
  route('post', '/v1/tasks/show', 'task.show', async (req) => {
    const t = await service().tasks.get(body(req).id);
    // How many X509-SVIDs were signed for it: `writ task run` starts its command once there is one.
    const issued = await ctx.datastore.listIssued({ entryId: t.entryId });
    return { task: taskJson(t), x509_svids_issued: issued.length };
  });
  route('post', '/v1/tasks/end', 'task.end', async (req) => {
    const b = body(req);
    const r = await service().tasks.end(b.id, reasonOf(b.reason), operator(req));
    log(req, 'task.end', { task_id: r.task.id, reason: r.task.endReason, revoked: r.revokedSerials.length });
    return { task: taskJson(r.task), revoked_serials: r.revokedSerials };
  });

  const auditPath = (): string => {
    const p = service().auditPath;
    if (!p) throw new WritError('ERR_SERVER_NOT_READY', 'This server keeps no audit log.');
    return p;
  };
  route('post', '/v1/audit/show', 'audit.show', async (req) => {
    const b = body(req);
    const filter: AuditFilter = {};
    const text = (k: string) => {
      const v = b[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v.length === 0 || v.length > 2048) throw new WritError('ERR_INPUT_INVALID', `${k} must be a non-empty string.`);
      return v;
    };
    const task = text('task');
    const agent = text('agent');
    const kind = text('kind');
    if (task) filter.task = task;
    if (agent) filter.agent = agent.startsWith('spiffe://') ? agent : `spiffe://${ctx.config.trustDomain}/agent/${agent}`;
    if (kind) filter.kind = kind;
    const limit = typeof b.limit === 'number' && Number.isSafeInteger(b.limit) && b.limit > 0 ? Math.min(b.limit, MAX_AUDIT_SHOW) : MAX_AUDIT_SHOW;
    const out: AuditRecord[] = [];
    // The newest `limit` records that match, oldest first.
    for await (const r of readAudit(auditPath(), filter)) {
      out.push(r);
      if (out.length > limit) out.shift();
    }
    return { records: out };
  });
  route('post', '/v1/audit/verify', 'audit.verify', async (req) => {
    const b = body(req);
    if (b.expect_head !== undefined && (typeof b.expect_head !== 'string' || !/^[0-9a-fA-F]{64}$/.test(b.expect_head))) {
      throw new WritError('ERR_INPUT_INVALID', 'expect_head must be a record hash (64 hex digits).');
    }
    return { path: auditPath(), result: await verifyAudit(auditPath(), b.expect_head === undefined ? {} : { expectHead: b.expect_head }) };
  });
}

/** The most records one `audit show` returns (the newest that match). */
export const MAX_AUDIT_SHOW = 10_000;
