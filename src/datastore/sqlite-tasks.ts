/**
 * The SQLite tables of agent identities and tasks. A task row is never deleted: its id stays
 * taken after the task ends, so no task id is used twice. Ending is one conditional UPDATE, so of
 * several callers ending the same task (explicit end, process exit, deadline) exactly one wins.
 */
import type Database from 'better-sqlite3';
import { WritError } from '../errors.js';
import { canonicalSelectors, selectorsJson } from './sqlite-rows.js';
import type { AgentIdentity, AgentIdentityPatch, Selector, TaskFilter, TaskRecord, TaskStatus } from './types.js';

interface AgentRow {
  name: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string;
  owner: string;
  max_task_ttl: number;
  delegators: string;
  entry_id: string | null;
  disabled: number;
  created_at: number;
  updated_at: number;
}

interface TaskRow {
  id: string;
  agent_name: string;
  spiffe_id: string;
  entry_id: string;
  parent_id: string;
  selectors: string;
  pid: number | null;
  start_time: string | null;
  delegation: string;
  decision_id: string;
  deadline: number;
  created_at: number;
  status: TaskStatus;
  ended_at: number | null;
  end_reason: string | null;
  cleaned_at: number | null;
}

export const MAX_TASK_LIST = 10_000;

const selectorsOf = (json: string): Selector[] => (JSON.parse(json) as Array<[string, string]>).map(([type, value]) => ({ type, value }));

const toAgent = (r: AgentRow): AgentIdentity => ({
  name: r.name,
  spiffeId: r.spiffe_id,
  parentId: r.parent_id,
  selectors: selectorsOf(r.selectors),
  owner: r.owner,
  maxTaskTtl: r.max_task_ttl,
  delegators: JSON.parse(r.delegators) as string[],
  entryId: r.entry_id,
  disabled: r.disabled === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toTask = (r: TaskRow): TaskRecord => ({
  id: r.id,
  agentName: r.agent_name,
  spiffeId: r.spiffe_id,
  entryId: r.entry_id,
  parentId: r.parent_id,
  selectors: selectorsOf(r.selectors),
  pid: r.pid,
  startTime: r.start_time,
  delegation: r.delegation,
  decisionId: r.decision_id,
  deadline: r.deadline,
  createdAt: r.created_at,
  status: r.status,
  endedAt: r.ended_at,
  endReason: r.end_reason,
  cleanedAt: r.cleaned_at,
});

export class SqliteTasks {
  private readonly s;

  readonly #lists = new Map<string, Database.Statement<Array<string | number>, TaskRow>>();

  constructor(private readonly db: Database.Database) {
    this.s = {
      insertAgent: db.prepare<[AgentRow]>(
        'INSERT INTO agent_identities (name, spiffe_id, parent_id, selectors, owner, max_task_ttl, delegators, entry_id, disabled, created_at, updated_at) ' +
          'VALUES (@name, @spiffe_id, @parent_id, @selectors, @owner, @max_task_ttl, @delegators, @entry_id, @disabled, @created_at, @updated_at) ON CONFLICT DO NOTHING',
      ),
      getAgent: db.prepare<[string], AgentRow>('SELECT * FROM agent_identities WHERE name = ?'),
      listAgents: db.prepare<[], AgentRow>('SELECT * FROM agent_identities ORDER BY name'),
      updateAgent: db.prepare<[string | null, number, number, string], AgentRow>(
        'UPDATE agent_identities SET entry_id = ?, disabled = ?, updated_at = ? WHERE name = ? RETURNING *',
      ),
      deleteAgent: db.prepare<[string]>('DELETE FROM agent_identities WHERE name = ?'),
      insertTask: db.prepare<[TaskRow]>(
        'INSERT INTO tasks (id, agent_name, spiffe_id, entry_id, parent_id, selectors, pid, start_time, delegation, decision_id, deadline, created_at, status, ended_at, end_reason, cleaned_at) ' +
          'VALUES (@id, @agent_name, @spiffe_id, @entry_id, @parent_id, @selectors, @pid, @start_time, @delegation, @decision_id, @deadline, @created_at, @status, @ended_at, @end_reason, @cleaned_at) ON CONFLICT (id) DO NOTHING',
      ),
      getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
      endTask: db.prepare<[number, string, string], TaskRow>("UPDATE tasks SET status = 'ended', ended_at = ?, end_reason = ? WHERE id = ? AND status = 'active' RETURNING *"),
      cleaned: db.prepare<[number, string]>('UPDATE tasks SET cleaned_at = ? WHERE id = ? AND cleaned_at IS NULL'),
    };
  }

  createAgent(a: AgentIdentity): AgentIdentity {
    const row: AgentRow = {
      name: a.name,
      spiffe_id: a.spiffeId,
      parent_id: a.parentId,
      selectors: selectorsJson(canonicalSelectors(a.selectors)),
      owner: a.owner,
      max_task_ttl: a.maxTaskTtl,
      delegators: JSON.stringify(a.delegators),
      entry_id: a.entryId,
      disabled: a.disabled ? 1 : 0,
      created_at: a.createdAt,
      updated_at: a.updatedAt,
    };
    if (this.s.insertAgent.run(row).changes === 0) {
      throw new WritError('ERR_AGENT_IDENTITY_EXISTS', `An agent identity named ${a.name} already exists.`);
    }
    return toAgent(row);
  }

  getAgent(name: string): AgentIdentity | undefined {
    const r = this.s.getAgent.get(name);
    return r ? toAgent(r) : undefined;
  }

  listAgents(): AgentIdentity[] {
    return this.s.listAgents.all().map(toAgent);
  }

  updateAgent(name: string, patch: AgentIdentityPatch): AgentIdentity {
    const old = this.s.getAgent.get(name);
    if (!old) throw new WritError('ERR_AGENT_IDENTITY_NOT_FOUND', `No agent identity is named ${name}.`);
    const entryId = patch.entryId !== undefined ? patch.entryId : old.entry_id;
    const disabled = patch.disabled !== undefined ? (patch.disabled ? 1 : 0) : old.disabled;
    const r = this.s.updateAgent.get(entryId, disabled, patch.updatedAt ?? old.updated_at, name);
    if (!r) throw new WritError('ERR_AGENT_IDENTITY_NOT_FOUND', `No agent identity is named ${name}.`);
    return toAgent(r);
  }

  deleteAgent(name: string): boolean {
    return this.s.deleteAgent.run(name).changes > 0;
  }

  createTask(t: TaskRecord): TaskRecord {
    const row: TaskRow = {
      id: t.id,
      agent_name: t.agentName,
      spiffe_id: t.spiffeId,
      entry_id: t.entryId,
      parent_id: t.parentId,
      selectors: selectorsJson(canonicalSelectors(t.selectors)),
      pid: t.pid,
      start_time: t.startTime,
      delegation: t.delegation,
      decision_id: t.decisionId,
      deadline: t.deadline,
      created_at: t.createdAt,
      status: t.status,
      ended_at: t.endedAt,
      end_reason: t.endReason,
      cleaned_at: t.cleanedAt,
    };
    if (this.s.insertTask.run(row).changes === 0) throw new WritError('ERR_TASK_EXISTS', `A task with the id ${t.id} exists or existed; task ids are never reused.`);
    return toTask(row);
  }

  getTask(id: string): TaskRecord | undefined {
    const r = this.s.getTask.get(id);
    return r ? toTask(r) : undefined;
  }

  listTasks(f: TaskFilter = {}): TaskRecord[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (f.agentName !== undefined) {
      where.push('agent_name = ?');
      args.push(f.agentName);
    }
    if (f.status !== undefined) {
      where.push('status = ?');
      args.push(f.status);
    }
    if (f.dueAt !== undefined) {
      where.push("status = 'active' AND deadline <= ?");
      args.push(f.dueAt);
    }
    if (f.uncleaned) where.push("status = 'ended' AND cleaned_at IS NULL");
    const limit = Math.min(Math.max(1, Math.floor(f.limit ?? 1000)), MAX_TASK_LIST);
    const sql = `SELECT * FROM tasks${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT ?`;
    // Prepared once per filter shape (at most 16): the deadline sweep runs this every second.
    let st = this.#lists.get(sql);
    if (!st) this.#lists.set(sql, (st = this.db.prepare<Array<string | number>, TaskRow>(sql)));
    return st.all(...args, limit).map(toTask);
  }

  endTask(id: string, endedAt: number, reason: string): TaskRecord | undefined {
    const r = this.s.endTask.get(endedAt, reason, id);
    return r ? toTask(r) : undefined;
  }

  markCleaned(id: string, at: number): void {
    this.s.cleaned.run(at, id);
  }
}
