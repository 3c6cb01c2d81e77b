/**
 * Tasks: work a human delegates to a registered agent, approved by the authenticated operator.
 * Starting one checks the agent (known, enabled), the TTL (within the agent's maximum), the
 * requester (an allowed delegator) and the task policy, then creates the task's entry
 * (spiffe://<td>/agent/<name>/task/<id>, the agent's selectors plus the pin, expiring at the
 * deadline) and the task record with its delegation record. Ending one (explicitly, when its
 * process exits, when its agent is disabled, at the deadline) deletes the entry and revokes its
 * unexpired serials. Every start, refusal and end is an audit record.
 */
import type { AuditActors, AuditDecision } from '../../audit/index.js';
import { WritError, isWritError, toWritError } from '../../errors.js';
import type { NewEntry, Selector, TaskFilter, TaskRecord } from '../../datastore/index.js';
import { parseDelegation, type DelegationParty, type DelegationRecord, type JsonValue, delegationJson } from '../../policy/index.js';
import { validateSelector } from '../../registry/index.js';
import { type Operator, type TaskDeps, agentSpiffeId, nowSeconds, partyOf, pinSelectors, taskSpiffeIdOf } from './deps.js';
import { checkAgentName, checkPartyId, checkPurpose, checkTaskId, delegatorAllowed, newDecisionId, newTaskId, ttlSeconds } from './names.js';
import { revokeEntry } from './revoke.js';

export interface TaskStartInput {
  agent?: unknown;
  requested_by?: unknown;
  requester_token?: unknown;
  ttl?: unknown;
  purpose?: unknown;
  pid?: unknown;
  start_time?: unknown;
  selectors?: unknown;
}

export interface TaskChange {
  kind: 'start' | 'end';
  taskId: string;
}

export interface EndedTask {
  task: TaskRecord;
  revokedSerials: string[];
}

const MAX_PID = 4_194_304; // the kernel's PID_MAX_LIMIT

function pinOf(input: TaskStartInput): { selectors: Selector[]; pid: number | null; startTime: string | null } {
  if (input.pid !== undefined && input.pid !== null) {
    const pid = input.pid;
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0 || pid > MAX_PID) throw new WritError('ERR_TASK_INVALID', 'pid must be a process id.', { details: { field: 'pid' } });
    const st = input.start_time;
    if (typeof st !== 'string' || !/^\d{1,20}$/.test(st)) {
      throw new WritError('ERR_TASK_INVALID', 'start_time must be the process start time from /proc/<pid>/stat (clock ticks since boot).', { details: { field: 'start_time' } });
    }
    return { selectors: pinSelectors(pid, st), pid, startTime: st };
  }
  if (Array.isArray(input.selectors) && input.selectors.length > 0) {
    if (input.selectors.length > 32) throw new WritError('ERR_TASK_INVALID', 'A task takes at most 32 selectors.', { details: { field: 'selectors' } });
    return { selectors: input.selectors.map((s, i) => validateSelector(s as Selector, `selector ${i + 1}`)), pid: null, startTime: null };
  }
  throw new WritError('ERR_TASK_INVALID', 'A task must be pinned to a process (pid and start_time) or given selectors that only its process has.', { details: { field: 'pid' } });
}

export class Tasks {
  #listeners = new Set<(ev: TaskChange) => void>();

  constructor(private readonly deps: TaskDeps) {}

  /** Called after every start and end (the sync hint listens). */
  onChange(fn: (ev: TaskChange) => void): void {
    this.#listeners.add(fn);
  }

  #changed(ev: TaskChange): void {
    for (const fn of this.#listeners) fn(ev);
  }

  async #requester(input: TaskStartInput, approver: Operator): Promise<{ party: DelegationParty; gids?: readonly number[] }> {
    if (input.requester_token !== undefined) {
      if (input.requested_by !== undefined) throw new WritError('ERR_TASK_INVALID', 'Give the requester as requested_by or as requester_token, not both.', { details: { field: 'requester_token' } });
      if (typeof input.requester_token !== 'string' || input.requester_token.length === 0) throw new WritError('ERR_TASK_INVALID', 'requester_token must be a token string.', { details: { field: 'requester_token' } });
      return { party: await this.deps.requesterVerifier.verify(input.requester_token) };
    }
    if (input.requested_by !== undefined) return { party: { id: checkPartyId(input.requested_by, 'requested_by'), authenticatedBy: 'unverified' } };
    // No requester named: the operator asks for it themself.
    return { party: partyOf(approver), ...(approver.gids ? { gids: approver.gids } : {}) };
  }

  /** Starts a task; every refusal is audited and thrown with its ERR_TASK_* code. */
  async start(input: TaskStartInput, approver: Operator): Promise<{ task: TaskRecord; delegation: DelegationRecord }> {
    const { datastore: ds, clock, trustDomain, audit } = this.deps;
    const actors: AuditActors = { approver: partyOf(approver) };
    const details: Record<string, JsonValue> = {};
    let decision: AuditDecision | undefined;
    if (typeof input.agent === 'string') details.agent_name = input.agent.slice(0, 64);
    try {
      const name = checkAgentName(input.agent, 'ERR_TASK_AGENT_UNKNOWN');
      actors.agent = agentSpiffeId(trustDomain, name);
      const requester = await this.#requester(input, approver);
      actors.requester = requester.party;
      const agent = await ds.getAgentIdentity(name);
      if (!agent) throw new WritError('ERR_TASK_AGENT_UNKNOWN', `No agent identity is named ${name}; create it with \`writ agent-identity create\`.`);
      if (agent.disabled) throw new WritError('ERR_TASK_AGENT_DISABLED', `The agent ${name} is disabled; it takes no tasks until enabled.`);
      const ttl = ttlSeconds(input.ttl, 'ttl', 'ERR_TASK_INVALID');
      if (ttl > agent.maxTaskTtl) throw new WritError('ERR_TASK_TTL_TOO_LONG', `A task of ${name} may run at most ${agent.maxTaskTtl} s; ${ttl} s were asked for.`);
      const purpose = checkPurpose(input.purpose);
      details.purpose = purpose;
      if (!delegatorAllowed(agent.delegators, { id: requester.party.id, ...(requester.gids ? { gids: requester.gids } : {}) })) {
        throw new WritError('ERR_TASK_DELEGATOR_NOT_ALLOWED', `${requester.party.id} may not delegate tasks to ${name}.`);
      }
      const pin = pinOf(input);
      const now = nowSeconds(clock);
      const id = newTaskId(this.deps.random);
      const spiffeId = taskSpiffeIdOf(trustDomain, name, id);
      actors.task = id;
      const delegation = parseDelegation({
        taskId: id,
        agent: agent.spiffeId,
        requester: requester.party,
        approver: partyOf(approver),
        purpose,
        deadline: now + ttl,
        decisionId: newDecisionId(this.deps.random),
        issuedAt: now,
      });
      const verdict = this.deps.policy.decide({ taskSpiffeId: spiffeId, agent: { name, owner: agent.owner, maxTaskTtl: agent.maxTaskTtl }, delegation, ttl, pinned: pin.pid !== null });
      decision = { effect: verdict.decision, reason: verdict.basis, policyIds: verdict.policyIds.slice(0, 64), id: delegation.decisionId };
      if (verdict.errors.length) details.policy_errors = verdict.errors.slice(0, 16);
      if (verdict.decision !== 'allow') {
        throw new WritError('ERR_TASK_POLICY_DENIED', `The task policy refused this task${verdict.policyIds.length ? ` (${verdict.policyIds.join(', ')})` : ' (no policy permits it)'}.`, {
          details: { decision_id: delegation.decisionId },
        });
      }
      const entry: NewEntry = {
        spiffeId,
        parentId: agent.parentId,
        selectors: [...agent.selectors, ...pin.selectors],
        x509SvidTtl: 0,
        jwtSvidTtl: 0,
        dnsNames: [],
        hint: '',
        admin: false,
        downstream: false,
        federatesWith: [],
        expiresAt: delegation.deadline,
      };
      const [created] = await ds.createEntries([entry]);
      let task: TaskRecord;
      try {
        task = await ds.createTask({
          id,
          agentName: name,
          spiffeId,
          entryId: created!.id,
          parentId: agent.parentId,
          selectors: created!.selectors,
          pid: pin.pid,
          startTime: pin.startTime,
          delegation: delegationJson(delegation),
          decisionId: delegation.decisionId,
          deadline: delegation.deadline,
          createdAt: now,
          status: 'active',
          endedAt: null,
          endReason: null,
          cleanedAt: null,
        });
      } catch (e) {
        await ds.deleteEntries([created!.id]).catch(() => undefined);
        throw e;
      }
      // Disabling marks the agent first, then ends its tasks: a start that raced it ends here.
      if ((await ds.getAgentIdentity(name))?.disabled !== false) {
        await this.end(id, 'agent disabled', null).catch(() => undefined);
        throw new WritError('ERR_TASK_AGENT_DISABLED', `The agent ${name} was disabled while the task started.`);
      }
      try {
        await audit.append({ kind: 'task.start', actors, decision, details: { ...details, spiffe_id: spiffeId, deadline: delegation.deadline, ttl, pid: pin.pid } });
      } catch (e) {
        // A task that cannot be audited does not run.
        await this.end(id, 'audit failed', null).catch(() => undefined);
        throw e;
      }
      this.deps.logger.info({ event: 'task.start', task_id: id, agent: name, deadline: delegation.deadline, approver: approver.id }, 'task started');
      this.#changed({ kind: 'start', taskId: id });
      return { task, delegation };
    } catch (e) {
      const we = toWritError(e);
      try {
        const denied: AuditDecision = decision ? { ...decision, effect: 'deny' } : { effect: 'deny', reason: we.code };
        await audit.append({ kind: 'task.refused', actors, decision: denied, details: { ...details, code: we.code, reason: we.message } });
      } catch (ae) {
        this.deps.logger.error({ err: ae }, 'could not audit a refused task');
      }
      throw e;
    }
  }

  async get(rawId: unknown): Promise<TaskRecord> {
    const id = checkTaskId(rawId);
    const t = await this.deps.datastore.getTask(id);
    if (!t) throw new WritError('ERR_TASK_NOT_FOUND', `No task has the id ${id}.`);
    return t;
  }

  list(filter: TaskFilter): Promise<TaskRecord[]> {
    return this.deps.datastore.listTasks(filter);
  }

  /** Ends an active task; ERR_TASK_ENDED when it has ended already. `by` is null for the server itself (deadline). */
  async end(rawId: unknown, reason: string, by: Operator | null): Promise<EndedTask> {
    let t: TaskRecord;
    let ended: TaskRecord | undefined;
    try {
      t = await this.get(rawId);
      ended = await this.deps.datastore.endTask(t.id, nowSeconds(this.deps.clock), reason);
      if (!ended) throw new WritError('ERR_TASK_ENDED', `Task ${t.id} ended already (${t.endReason ?? 'ended'}).`);
    } catch (e) {
      // A refused end (no such task, ended already) is part of the record too.
      if (e instanceof WritError) {
        await this.deps.audit.append({
          kind: 'task.refused',
          actors: { ...(by ? { approver: { id: by.id, authenticatedBy: by.authenticatedBy } } : {}), task: String(rawId).slice(0, 64) },
          decision: { effect: 'deny', reason: e.message },
          details: { action: 'task.end', code: e.code },
        });
      }
      throw e;
    }
    return this.#cleanup(ended, by);
  }

  /** Deletes an ended task's entry, revokes its serials, records the end. Safe to repeat. */
  async #cleanup(task: TaskRecord, by: Operator | null): Promise<EndedTask> {
    const { datastore: ds, clock } = this.deps;
    const now = nowSeconds(clock);
    const r = await revokeEntry(ds, task.entryId, now, 'task ended');
    await ds.markTaskCleaned(task.id, now);
    const record = JSON.parse(task.delegation) as DelegationRecord;
    await this.deps.audit.append({
      kind: 'task.end',
      actors: { requester: record.requester, approver: record.approver, agent: record.agent, task: task.id },
      decision: { effect: 'allow', reason: 'the decision the task was started under', id: task.decisionId },
      details: {
        spiffe_id: task.spiffeId,
        reason: task.endReason ?? 'ended',
        ended_by: by ? { id: by.id, authenticatedBy: by.authenticatedBy } : { id: 'writ-server', authenticatedBy: 'server' },
        revoked_serials: r.serials,
      },
    });
    this.deps.logger.info({ event: 'task.end', task_id: task.id, agent: task.agentName, reason: task.endReason, revoked: r.serials.length }, 'task ended');
    this.#changed({ kind: 'end', taskId: task.id });
    return { task: { ...task, cleanedAt: now }, revokedSerials: r.serials };
  }

  /** Ends every active task of an agent (it is being disabled or deleted). */
  async endAllOf(agentName: string, reason: string, by: Operator): Promise<string[]> {
    const ended: string[] = [];
    for (const t of await this.deps.datastore.listTasks({ agentName, status: 'active', limit: 10_000 })) {
      try {
        await this.end(t.id, reason, by);
        ended.push(t.id);
      } catch (e) {
        if (!isWritError(e) || e.code !== 'ERR_TASK_ENDED') throw e;
      }
    }
    return ended;
  }

  /** The deadline sweep: ends tasks past their deadline and finishes cleanups a crash interrupted. Returns how many it ended. */
  async sweep(): Promise<number> {
    const { datastore: ds, clock } = this.deps;
    const now = nowSeconds(clock);
    let n = 0;
    for (const t of await ds.listTasks({ dueAt: now, limit: 1000 })) {
      const ended = await ds.endTask(t.id, now, 'deadline');
      if (ended) {
        await this.#cleanup(ended, null);
        n++;
      }
    }
    for (const t of await ds.listTasks({ uncleaned: true, limit: 1000 })) {
      // Ended by a caller that did not get to finish (a crash between the two steps).
      if (t.endedAt !== null && t.endedAt < now - 5) await this.#cleanup(t, null);
    }
    return n;
  }
}
