/**
 * Agent identities: AI agents registered by an SRE as spiffe://<td>/agent/<name>, with the
 * selectors of the processes that may act as the agent, an owner, the longest task it may take
 * and who may delegate to it. While enabled, a registration entry (parent: the agent's parent ID)
 * makes the existing agents and Workload API serve it. Disabling deletes that entry, revokes its
 * unexpired SVIDs and ends all its tasks; it touches no human account. Enabling registers it again.
 */
import { WritError } from '../../errors.js';
import type { AgentIdentity, NewEntry, Selector } from '../../datastore/index.js';
import type { JsonValue } from '../../policy/index.js';
import { parseSpiffeId } from '../../spiffeid/index.js';
import { validateSelector } from '../../registry/index.js';
import { type Operator, type TaskDeps, agentSpiffeId, nowSeconds, partyOf } from './deps.js';
import { MAX_TASK_TTL_LIMIT, checkAgentName, checkDelegators, checkOwner, ttlSeconds } from './names.js';
import { revokeEntry } from './revoke.js';
import type { Tasks } from './tasks.js';

export interface AgentIdentityInput {
  name?: unknown;
  selectors?: unknown;
  owner?: unknown;
  max_task_ttl?: unknown;
  delegators?: unknown;
  parent_id?: unknown;
}

function selectorsOf(raw: unknown): Selector[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new WritError('ERR_AGENT_IDENTITY_INVALID', 'An agent identity needs at least one selector (for example unix:uid:1001).', { details: { field: 'selectors' } });
  if (raw.length > 32) throw new WritError('ERR_AGENT_IDENTITY_INVALID', 'An agent identity takes at most 32 selectors.', { details: { field: 'selectors' } });
  return raw.map((s, i) => validateSelector(s as Selector, `selector ${i + 1}`));
}

export class AgentIdentities {
  constructor(
    private readonly deps: TaskDeps,
    private readonly tasks: Tasks,
    /** Told after every change (the sync hint follows which parents serve agents). */
    private readonly onChange: () => void = () => undefined,
  ) {}

  #parentOf(raw: unknown): string {
    if (raw === undefined || raw === null || raw === '') return this.deps.defaultParent;
    if (typeof raw !== 'string') throw new WritError('ERR_AGENT_IDENTITY_INVALID', 'parent_id must be a SPIFFE ID.', { details: { field: 'parent_id' } });
    let id;
    try {
      id = parseSpiffeId(raw);
    } catch (e) {
      throw new WritError('ERR_AGENT_IDENTITY_INVALID', `parent_id: ${(e as Error).message}`, { details: { field: 'parent_id' } });
    }
    if (id.trustDomain.name !== this.deps.trustDomain) throw new WritError('ERR_AGENT_IDENTITY_INVALID', `parent_id ${id.toString()} is not in this trust domain.`, { details: { field: 'parent_id' } });
    if (id.path === '') throw new WritError('ERR_AGENT_IDENTITY_INVALID', 'parent_id needs a path: an agent ID or a node alias such as spiffe://<td>/host/web-1.', { details: { field: 'parent_id' } });
    return id.toString();
  }

  #entry(a: Pick<AgentIdentity, 'spiffeId' | 'parentId' | 'selectors'>): NewEntry {
    return { spiffeId: a.spiffeId, parentId: a.parentId, selectors: a.selectors, x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], hint: '', admin: false, downstream: false, federatesWith: [], expiresAt: null };
  }

  async get(rawName: unknown): Promise<AgentIdentity> {
    const name = checkAgentName(rawName);
    const a = await this.deps.datastore.getAgentIdentity(name);
    if (!a) throw new WritError('ERR_AGENT_IDENTITY_NOT_FOUND', `No agent identity is named ${name}.`);
    return a;
  }

  list(): Promise<AgentIdentity[]> {
    return this.deps.datastore.listAgentIdentities();
  }

  async create(input: AgentIdentityInput, by: Operator): Promise<AgentIdentity> {
    const { datastore: ds, clock, trustDomain } = this.deps;
    const name = checkAgentName(input.name);
    const spiffeId = agentSpiffeId(trustDomain, name);
    const selectors = selectorsOf(input.selectors);
    const owner = checkOwner(input.owner);
    const maxTaskTtl = input.max_task_ttl === undefined ? 3600 : ttlSeconds(input.max_task_ttl, 'max_task_ttl', 'ERR_AGENT_IDENTITY_INVALID');
    if (maxTaskTtl > MAX_TASK_TTL_LIMIT) throw new WritError('ERR_AGENT_IDENTITY_INVALID', `max_task_ttl may be at most ${MAX_TASK_TTL_LIMIT} s (7 days).`, { details: { field: 'max_task_ttl' } });
    const delegators = checkDelegators(input.delegators ?? ['any']);
    const parentId = this.#parentOf(input.parent_id);
    if (await ds.getAgentIdentity(name)) throw new WritError('ERR_AGENT_IDENTITY_EXISTS', `An agent identity named ${name} already exists.`);
    const now = nowSeconds(clock);
    const [entry] = await ds.createEntries([this.#entry({ spiffeId, parentId, selectors })]);
    let agent: AgentIdentity;
    try {
      agent = await ds.createAgentIdentity({ name, spiffeId, parentId, selectors: entry!.selectors, owner, maxTaskTtl, delegators, entryId: entry!.id, disabled: false, createdAt: now, updatedAt: now });
    } catch (e) {
      await ds.deleteEntries([entry!.id]).catch(() => undefined);
      throw e;
    }
    await this.#audit('agent-identity.create', agent, by, { owner, max_task_ttl: maxTaskTtl, delegators, selectors: agent.selectors.map((s) => `${s.type}:${s.value}`), parent_id: parentId });
    return agent;
  }

  /** Ends every task of the agent, deletes its entry and revokes its SVIDs. */
  async disable(rawName: unknown, by: Operator): Promise<{ agent: AgentIdentity; endedTasks: string[]; revokedSerials: string[] }> {
    const a = await this.get(rawName);
    if (a.disabled) throw new WritError('ERR_TASK_AGENT_DISABLED', `The agent ${a.name} is disabled already.`);
    // Disabled first, so no task can start while the running ones are ended.
    const now = nowSeconds(this.deps.clock);
    let agent = await this.deps.datastore.updateAgentIdentity(a.name, { disabled: true, updatedAt: now });
    const endedTasks = await this.tasks.endAllOf(a.name, 'agent disabled', by);
    let revokedSerials: string[] = [];
    if (a.entryId) revokedSerials = (await revokeEntry(this.deps.datastore, a.entryId, now, 'agent disabled')).serials;
    agent = await this.deps.datastore.updateAgentIdentity(a.name, { entryId: null, updatedAt: now });
    await this.#audit('agent-identity.disable', agent, by, { ended_tasks: endedTasks, revoked_serials: revokedSerials });
    return { agent, endedTasks, revokedSerials };
  }

  async enable(rawName: unknown, by: Operator): Promise<AgentIdentity> {
    const a = await this.get(rawName);
    if (!a.disabled) throw new WritError('ERR_AGENT_IDENTITY_INVALID', `The agent ${a.name} is enabled already.`);
    const [entry] = await this.deps.datastore.createEntries([this.#entry(a)]);
    const agent = await this.deps.datastore.updateAgentIdentity(a.name, { entryId: entry!.id, disabled: false, updatedAt: nowSeconds(this.deps.clock) });
    await this.#audit('agent-identity.enable', agent, by, {});
    return agent;
  }

  /** Disables (when enabled) and removes the agent; its tasks stay as records. */
  async delete(rawName: unknown, by: Operator): Promise<{ name: string; endedTasks: string[] }> {
    const a = await this.get(rawName);
    let endedTasks: string[] = [];
    if (!a.disabled) endedTasks = (await this.disable(a.name, by)).endedTasks;
    await this.deps.datastore.deleteAgentIdentity(a.name);
    await this.#audit('agent-identity.delete', a, by, {});
    return { name: a.name, endedTasks };
  }

  async #audit(kind: string, a: AgentIdentity, by: Operator, fields: Record<string, JsonValue>): Promise<void> {
    this.onChange();
    await this.deps.audit.append({ kind, actors: { agent: a.spiffeId, approver: partyOf(by) }, details: { name: a.name, ...fields } });
    this.deps.logger.info({ event: kind, agent: a.name, by: by.id }, kind);
  }
}
