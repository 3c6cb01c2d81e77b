/**
 * What signing needs to know about tasks. An entry with a task SPIFFE ID is signed only while its
 * task is active and before its deadline; the SVID's life is capped at the deadline, and it
 * carries the delegation record (X509-SVID: the non-critical extension; JWT-SVID: one claim). An
 * entry with a task-shaped ID but no task behind it is refused: task IDs come only from tasks.
 * After a batch is recorded, SVIDs of tasks that ended meanwhile are revoked at once (ending lists
 * the serials after marking the task ended, so between the two every serial is caught).
 *
 * The sync hint: agents are told to sync again within TASK_SYNC_HINT_MS when they serve agent
 * identities (so a task's start reaches its process fast) and, while any task is active or one
 * ended in the last HINT_AFTER_END_MS, every agent (so the CRL with an ended task's serials reaches
 * the services on every host fast, not only the task's own).
 */
import { WritError } from '../../errors.js';
import type { IssuedSvid, RegistrationEntry } from '../../datastore/index.js';
import { agentIdParts, delegationClaims, encodeDelegationExtension, parseDelegationJson } from '../../policy/index.js';
import { type TaskDeps, looksLikeTaskId, nowSeconds } from './deps.js';
import { revokeIssued } from './revoke.js';

export const TASK_SYNC_HINT_MS = 500;
/** How long after the last task ended every agent is still hinted. */
export const HINT_AFTER_END_MS = 5000;
const MAX_CACHED = 4096;

export interface TaskSigning {
  taskId: string;
  /** Unix seconds; no SVID of the task lives past it. */
  deadline: number;
  /** The delegation extension (a complete Extension DER) for the X509-SVID; absent when `task_delegation_x509` is off. */
  extension?: Buffer;
  /** The delegation claim for JWT-SVIDs. */
  claims: Record<string, unknown>;
}

export class TaskIssuance {
  readonly #encoded = new Map<string, { extension?: Buffer; claims: Record<string, unknown> }>();
  #hintParents = new Set<string>();
  #activeTasks = 0;
  #lastEndMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: TaskDeps) {}

  /** undefined for an entry that is not a task's; throws ERR_TASK_* when the task may not be signed now. */
  async forEntry(entry: RegistrationEntry): Promise<TaskSigning | undefined> {
    if (!looksLikeTaskId(this.deps.trustDomain, entry.spiffeId)) return undefined;
    const parts = agentIdParts(entry.spiffeId);
    if (parts.kind !== 'task' || parts.taskId === undefined) return undefined;
    const task = await this.deps.datastore.getTask(parts.taskId);
    if (!task || task.entryId !== entry.id || task.spiffeId !== entry.spiffeId) {
      throw new WritError('ERR_TASK_NOT_FOUND', `Entry ${entry.id} names a task this server did not start.`);
    }
    if (task.status !== 'active' || nowSeconds(this.deps.clock) >= task.deadline) throw new WritError('ERR_TASK_ENDED', `Task ${task.id} has ended.`);
    let enc = this.#encoded.get(task.id);
    if (!enc) {
      const record = parseDelegationJson(task.delegation);
      enc = { ...(this.deps.x509Delegation === false ? {} : { extension: encodeDelegationExtension(record).der }), claims: delegationClaims(record) };
      if (this.#encoded.size >= MAX_CACHED) this.#encoded.clear();
      this.#encoded.set(task.id, enc);
    }
    return { taskId: task.id, deadline: task.deadline, ...enc };
  }

  /** Seconds an SVID of this task may live from now: min(ttl, deadline - now). */
  capTtl(ttl: number, signing: TaskSigning): number {
    const left = signing.deadline - nowSeconds(this.deps.clock);
    if (left <= 0) throw new WritError('ERR_TASK_ENDED', `Task ${signing.taskId} has ended.`);
    return Math.min(ttl, left);
  }

  /** Audits the just-recorded SVIDs of tasks (svid.issue), and revokes those whose task ended while they were being signed. */
  async afterIssued(issued: readonly IssuedSvid[]): Promise<void> {
    const byTask = new Map<string, IssuedSvid[]>();
    for (const s of issued) {
      if (!looksLikeTaskId(this.deps.trustDomain, s.spiffeId)) continue;
      const id = agentIdParts(s.spiffeId).taskId;
      if (id !== undefined) byTask.set(id, [...(byTask.get(id) ?? []), s]);
    }
    for (const [id, list] of byTask) {
      const task = await this.deps.datastore.getTask(id);
      if (task) {
        // The audit trail of a task names every X509-SVID signed for it, with the people behind it.
        const d = parseDelegationJson(task.delegation);
        await this.deps.audit.append({
          kind: 'svid.issue',
          actors: { requester: d.requester, approver: d.approver, agent: d.agent, task: task.id },
          decision: { effect: 'allow', id: task.decisionId },
          details: { serials: list.map((s) => s.serial), issuer_ski: list[0]!.issuerSki, node_agent: list[0]!.agentId, not_after: Math.max(...list.map((s) => s.notAfter)) },
        });
      }
      if (task && task.status === 'ended') {
        const serials = await revokeIssued(this.deps.datastore, list, nowSeconds(this.deps.clock), 'task ended');
        this.deps.logger.warn({ event: 'task.late_svid_revoked', task_id: id, serials }, 'SVIDs signed while their task ended were revoked');
        this.#encoded.delete(id);
      }
    }
  }

  /** Recomputes which parent IDs serve agent identities or active tasks. */
  async refreshHint(): Promise<void> {
    const parents = new Set<string>();
    for (const a of await this.deps.datastore.listAgentIdentities()) if (!a.disabled) parents.add(a.parentId);
    const active = await this.deps.datastore.listTasks({ status: 'active', limit: 10_000 });
    for (const t of active) parents.add(t.parentId);
    this.#hintParents = parents;
    this.#activeTasks = active.length;
  }

  /** How soon an agent with these parent IDs should sync again, or undefined for its own interval. */
  syncHintMs(parents: ReadonlySet<string>): number | undefined {
    if (this.#activeTasks > 0 || this.deps.clock.nowMs() < this.#lastEndMs + HINT_AFTER_END_MS) return TASK_SYNC_HINT_MS;
    for (const p of parents) if (this.#hintParents.has(p)) return TASK_SYNC_HINT_MS;
    return undefined;
  }

  /** A task ended: every agent stays hinted a little longer, so the new CRL reaches them all. */
  ended(taskId: string): void {
    this.#encoded.delete(taskId);
    this.#lastEndMs = this.deps.clock.nowMs();
  }
}
